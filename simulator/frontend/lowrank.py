"""Low rank: a layer's weight matrix split by truncated SVD into two layers in the model
(Denton et al., NeurIPS 2014), on nn.Linear / nn.Conv2d modules: ``conv k x k C -> r`` then
``conv 1 x 1 r -> N``, or ``linear K -> r`` then ``linear r -> N``."""

from __future__ import annotations

import torch
from torch import nn

from simulator.frontend.imported import ImportedLayer
from simulator.frontend.recipe import Recipe, RecipeError, Step
from simulator.frontend.training import param


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def splittable(model: nn.Module, lay: ImportedLayer) -> bool:
    """Low rank replaces a module by two: only whole nn.Linear / nn.Conv2d weights."""
    if not lay.param or not lay.param.endswith(".weight") or lay.rows is not None:
        return False
    owner = lay.param.removesuffix(".weight")
    mod = model.get_submodule(owner)
    # (a weight its parent reads directly, as nn.MultiheadAttention's out_proj, stays whole)
    return isinstance(mod, (nn.Conv2d, nn.Linear)) and not lay.transposed \
        and lay.module == owner


def split_layer(model: nn.Module, lay: ImportedLayer, step: Step, recipe: Recipe,
                aliases: dict[str, str], rank: int | None = None) -> None:
    """Replace the layer's module by its two factors at ``rank`` (default: the step's)."""
    assert lay.param is not None
    name = lay.param.removesuffix(".weight")
    mod = model.get_submodule(name)
    assert isinstance(mod, (nn.Conv2d, nn.Linear))
    w = param(mod).detach().numpy()
    params = step.params if rank is None else step.params.model_copy(
        update={"rank": rank, "max_accuracy_drop": None, "max_energy_fraction": None})
    a, b = step.method.fn(w, params)
    r = a.shape[0]
    first: nn.Module
    second: nn.Module
    if isinstance(mod, nn.Conv2d):
        if mod.groups != 1:
            raise RecipeError(recipe.source, [(f"{step.path}.layers", f"layer {name!r}: low "
                                                                      f"rank needs groups=1")])
        first = nn.Conv2d(mod.in_channels, r, mod.kernel_size, mod.stride,  # type: ignore[arg-type]
                          mod.padding, mod.dilation, bias=False)  # type: ignore[arg-type]
        second = nn.Conv2d(r, mod.out_channels, 1, bias=mod.bias is not None)
        first.weight.data = torch.from_numpy(a.reshape(r, *w.shape[1:]).copy())
        second.weight.data = torch.from_numpy(b.reshape(w.shape[0], r, 1, 1).copy())
    else:
        first = nn.Linear(w.shape[1], r, bias=False)
        second = nn.Linear(r, w.shape[0], bias=mod.bias is not None)
        first.weight.data = torch.from_numpy(a.copy())
        second.weight.data = torch.from_numpy(b.copy())
    if mod.bias is not None:
        param(second, "bias").data = param(mod, "bias").detach().clone()
    set_module(model, name, nn.Sequential(first, second))
    aliases[f"{name}.0"] = aliases[f"{name}.1"] = aliases.get(lay.name, lay.name)
