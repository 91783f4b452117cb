"""``compress(model, recipe, data) -> CompressionResult``: apply a recipe, measure, trace.

Order (Deep Compression, Han et al. ICLR 2016): low-rank splits, pruning (each pruning step
optionally iterated and followed by masked fine-tuning: pruned weights stay zero), weight
sharing, weight quantisation (post-training, biases kept at accumulator precision) and
calibrated activation quantisation. Baseline and compressed top-1 accuracy are measured on
the held-out set, then the compressed model is traced (:mod:`simulator.frontend.torch`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from simulator.errors import SimulatorError
from simulator.frontend.imported import ImportedLayer, ImportResult
from simulator.frontend.methods import (
    ActParams,
    Compressed,
    SparsityParams,
    act_scale,
    quantise_activation,
)
from simulator.frontend.recipe import Recipe, RecipeError, Step
from simulator.frontend.torch import import_torch
from simulator.frontend.trace_builder import CompressionResult, build_trace, record_fields
from simulator.frontend.training import (
    Progress,
    TaskData,
    agreement,
    evaluate,
    noop,
    outputs,
    param,
    perplexity,
    single_thread,
    train,
)
from simulator.workload.trace import Accuracy, Trace


def _targets(imported: ImportResult) -> dict[str, ImportedLayer]:
    """The layers a recipe step may select: GEMMs computed with a model parameter."""
    return {la.name: la for la in imported.layers if la.param is not None}


def _ops(layers: dict[str, ImportedLayer]) -> dict[str, str]:
    return {n: la.spec["op"] for n, la in layers.items()}


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
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


def _lowrank(model: nn.Module, lay: ImportedLayer, step: Step, recipe: Recipe,
             aliases: dict[str, str]) -> None:
    assert lay.param is not None
    name = lay.param.removesuffix(".weight")
    mod = model.get_submodule(name)
    assert isinstance(mod, (nn.Conv2d, nn.Linear))
    w = param(mod).detach().numpy()
    a, b = step.method.fn(w, step.params)
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
    _set_module(model, name, nn.Sequential(first, second))
    aliases[f"{name}.0"] = aliases[f"{name}.1"] = aliases.get(lay.name, lay.name)


def _weight_view(model: nn.Module, lay: ImportedLayer) -> torch.Tensor:
    """The layer's weight as a view of its parameter, in the (out, in) / conv layout."""
    assert lay.param is not None
    p = model.get_parameter(lay.param)
    w = p.t() if lay.transposed else p
    if lay.rows is not None:
        w = w[lay.rows[0]:lay.rows[1]]
    if lay.weight is not None and tuple(w.shape) != tuple(lay.weight.shape):
        raise SimulatorError(f"layer {lay.name!r}: its weight {list(lay.weight.shape)} is not "
                             f"a plain view of parameter {lay.param!r} {list(p.shape)}; it "
                             f"cannot be compressed in place")
    return w


def _lut_layer(model: nn.Module, lay: ImportedLayer, step: Step, recipe: Recipe,
               info: dict[str, dict[str, Any]], calibration: torch.Tensor) -> None:
    """Replace the nn.Linear that owns ``lay``'s weight by a LUTNet layer
    (:mod:`simulator.frontend.lutnet`), initialised from its weights and calibrated inputs."""
    from simulator.frontend.lutnet import LUTLinear

    owner = lay.param.removesuffix(".weight") if lay.param else ""
    mod = model.get_submodule(owner) if owner and splittable(model, lay) else None
    if not isinstance(mod, nn.Linear):
        raise RecipeError(recipe.source, [(f"{step.path}.layers", f"layer {lay.name!r}: a "
                                           f"LUTNet layer replaces a whole nn.Linear module")])
    seen: list[np.ndarray] = []
    handle = mod.register_forward_pre_hook(lambda m, args: seen.append(args[0].numpy()))
    with torch.no_grad():
        model(calibration)
    handle.remove()
    try:
        out: Compressed = step.method.fn(param(mod).detach().numpy(), step.params)
    except ValueError as exc:
        raise SimulatorError(f"{step.path} ({step.method.name}) on layer {lay.name!r}: {exc}"
                             ) from None
    bias = None if mod.bias is None else param(mod, "bias").detach().numpy()
    flat = seen[0].reshape(-1, seen[0].shape[-1])
    _set_module(model, owner, LUTLinear(out.weight, bias, out.extra["input_map"],
                                        np.median(flat, axis=0)))
    record_fields(info, lay.name, out)


def _apply_weight_step(model: nn.Module, lay: ImportedLayer, step: Step,
                       info: dict[str, dict[str, Any]], params: Any = None) -> None:
    view = _weight_view(model, lay)
    w = view.detach().numpy().copy()
    try:
        out: Compressed = step.method.fn(w, params if params is not None else step.params)
    except ValueError as exc:
        raise SimulatorError(f"{step.path} ({step.method.name}) on layer {lay.name!r}: {exc}"
                             ) from None
    with torch.no_grad():
        view.copy_(torch.from_numpy(out.weight))
        bias_name = lay.param.removesuffix("weight") + "bias" if lay.param else ""
        bias = dict(model.named_parameters()).get(bias_name)
        if out.structure == "filter" and bias is not None and lay.rows is None:
            keep = torch.from_numpy(np.asarray(out.extra["filters_kept"]))
            bias.mul_(keep.to(bias.dtype))
    record_fields(info, lay.name, out)


def _masks(model: nn.Module, layers: list[ImportedLayer]) -> dict[str, torch.Tensor]:
    params = {la.param for la in layers if la.param is not None}
    return {n: (model.get_parameter(n) != 0).float() for n in sorted(params)}


def _install_act_quant(model: nn.Module, targets: list[ImportedLayer], params: ActParams,
                       calibration: torch.Tensor) -> None:
    """Fake-quantise the inputs of the modules that own the targets' weights (calibrated)."""
    mods = sorted({la.param.rpartition(".")[0] for la in targets if la.param})
    seen: dict[str, np.ndarray] = {}
    handles = []
    for n in mods:
        def grab(mod: nn.Module, args: tuple[Any, ...], n: str = n) -> None:
            seen.setdefault(n, args[0].detach().numpy())
        handles.append(model.get_submodule(n).register_forward_pre_hook(grab))
    with torch.no_grad():
        model(calibration)
    for h in handles:
        h.remove()
    for n in mods:
        if n not in seen:
            continue
        scale, unsigned = act_scale(seen[n], params)

        def fake_quant(mod: nn.Module, args: tuple[Any, ...], scale: float = scale,
                       unsigned: bool = unsigned) -> tuple[Any, ...]:
            q = quantise_activation(args[0].detach().numpy(), scale, unsigned, params.bits)
            return (torch.from_numpy(q.astype(np.float32)), *args[1:])

        model.get_submodule(n).register_forward_pre_hook(fake_quant)


def compress(model: nn.Module, recipe: Recipe, data: TaskData, *, name: str = "model",
             progress: Progress = noop, seed: int = 0) -> CompressionResult:
    """Apply ``recipe`` to a copy of ``model``; measure accuracy; return the trace."""
    with single_thread():
        return _compress(model, recipe, data, name=name, progress=progress, seed=seed)


def _compress(model: nn.Module, recipe: Recipe, data: TaskData, *, name: str,
              progress: Progress, seed: int) -> CompressionResult:
    base = copy.deepcopy(model).eval()
    before = _trace_of(base, data, name, {}, {}, None, None, progress)  # fails early if untraceable
    labelled = data.y_test is not None
    baseline_acc = (evaluate(base, data.x_test, data.y_test, progress, phase="evaluate baseline")
                    if data.y_test is not None else None)
    work = copy.deepcopy(base)
    info: dict[str, dict[str, Any]] = {}
    act_bits: dict[str, int] = {}
    aliases: dict[str, str] = {}
    pruned: dict[str, ImportedLayer] = {}
    ft = recipe.finetune
    step_notes: list[str] = []
    layers = _targets(before.imported)
    for step in recipe.steps:
        picked = [layers[n] for n in step.targets(list(layers), recipe.source, aliases,
                                                  _ops(layers))]
        # layers sharing one parameter block (a module called twice) are compressed once
        unique = list({(la.param, la.rows): la for la in picked}.values())
        stage = step.method.stage
        if stage == "lowrank":
            kept = [la for la in unique if not splittable(work, la)]
            if kept:
                step_notes.append(f"{step.path} ({step.method.name}): left whole (not an "
                                  f"nn.Linear / nn.Conv2d module of its own): "
                                  f"{', '.join(la.name for la in kept)}")
            for la in unique:
                if splittable(work, la):
                    _lowrank(work, la, step, recipe, aliases)
            layers = _targets(import_torch(work, data.calibration, batch_dim=data.batch_dim))
        elif stage == "lut":
            for la in unique:
                _lut_layer(work, la, step, recipe, info, data.calibration)
            _finetune(work, data, ft, _masks(work, list(pruned.values())), progress, seed,
                      f"fine-tune {step.path}")
        elif stage == "activation":
            if not isinstance(step.params, ActParams):
                raise RecipeError(recipe.source, [(f"{step.path}.method", f"{step.method.name!r}"
                                                   f" sets an LLM spec's KV cache; run it on a "
                                                   f"decoder spec (workloads/llm/)")])
            _install_act_quant(work, picked, step.params, data.calibration)
            act_bits.update({la.name: step.params.bits for la in picked})
            progress("calibrate", 1, 1)
        elif stage == "prune":
            iters = step.params.iterations if isinstance(step.params, SparsityParams) else 1
            for it in range(1, iters + 1):
                params = step.params
                if isinstance(params, SparsityParams) and iters > 1:
                    params = params.model_copy(update={"sparsity": params.sparsity * it / iters})
                for la in unique:
                    _apply_weight_step(work, la, step, info, params)
                pruned.update({la.name: la for la in picked})
                _finetune(work, data, ft, _masks(work, list(pruned.values())), progress,
                          seed + it, f"fine-tune {step.path} ({it}/{iters})")
        else:
            if stage == "quantise" and ft.qat and ft.epochs > 0:
                _qat(work, data, ft, step, unique, _masks(work, list(pruned.values())),
                     progress, seed)
            for la in unique:
                _apply_weight_step(work, la, step, info)
        for la in picked:  # a shared block's other layers get the same operand fields
            for other in layers.values():
                if (other.param, other.rows) == (la.param, la.rows) and other.name != la.name \
                        and la.name in info:
                    info[other.name] = dict(info[la.name])
        if stage == "lowrank":
            _finetune(work, data, ft, _masks(work, list(pruned.values())), progress, seed,
                      f"fine-tune {step.path}")
    acc = _accuracy(base, work, data, baseline_acc, progress)
    notes = ([acc.warning] if acc.warning else []) + step_notes
    if not labelled:
        notes.append(f"no labels: agreement with the uncompressed model on {data.name}")
    after = _trace_of(work, data, name, info, act_bits, recipe, acc, progress)
    return CompressionResult(after.trace, before.trace, work, notes + before.notes + [
        n for n in after.notes if n not in before.notes])


#: below this many samples an accuracy or agreement figure gets a warning (a 95 % binomial
#: interval at p = 0.9 is +-6 points at 100 samples, +-15 at 16)
MIN_SAMPLES = 100


def _accuracy(base: nn.Module, work: nn.Module, data: TaskData, baseline: float | None,
              progress: Progress) -> Accuracy:
    """Top-1 accuracy with labels; else agreement (top-1, output cosine) with the uncompressed
    model on the inputs; perplexity for token-id inputs of a language model."""
    x = data.x_test
    n = len(x)
    warn = (f"only {n} samples (< {MIN_SAMPLES}): accuracy / agreement are uncertain by "
            f"several points" if n < MIN_SAMPLES else None)
    if data.y_test is not None:
        comp = evaluate(work, x, data.y_test, progress, phase="evaluate compressed")
        return Accuracy(baseline, comp, data.name, n, warning=warn)
    ob, oc = outputs(base, x), outputs(work, x)
    agree, cos = agreement(ob, oc)
    ppl = None
    if not torch.is_floating_point(x) and x.dim() == 2 and ob.dim() == 3:
        ppl = (perplexity(ob, x), perplexity(oc, x))
    return Accuracy(None, None, f"agreement with the uncompressed model on {data.name}", n,
                    agree, cos, ppl, warn)


def _finetune(model: nn.Module, data: TaskData, ft: Any, masks: dict[str, torch.Tensor],
              progress: Progress, seed: int, phase: str) -> None:
    if ft.epochs <= 0:
        return
    if data.x_train is None or data.y_train is None:
        raise SimulatorError(f"recipe asks for fine-tuning ({ft.epochs} epochs) but the data "
                             f"{data.name!r} has no training set")
    train(model, data.x_train, data.y_train, epochs=ft.epochs, lr=ft.lr,
          batch_size=ft.batch_size, seed=seed, masks=masks, progress=progress, phase=phase)


def _qat(model: nn.Module, data: TaskData, ft: Any, step: Step, targets: list[ImportedLayer],
         masks: dict[str, torch.Tensor], progress: Progress, seed: int) -> None:
    """Quantisation-aware fine-tuning of ``step``'s targets (straight-through estimator)."""
    if data.x_train is None or data.y_train is None:
        raise SimulatorError(f"recipe asks for quantisation-aware fine-tuning but the data "
                             f"{data.name!r} has no training set")

    def quantise() -> dict[str, torch.Tensor]:
        shadow: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for la in targets:
                assert la.param is not None
                shadow.setdefault(la.param, model.get_parameter(la.param).detach().clone())
                w = _weight_view(model, la)
                w.copy_(torch.from_numpy(step.method.fn(w.detach().numpy().copy(),
                                                        step.params).weight))
        return shadow

    train(model, data.x_train, data.y_train, epochs=ft.epochs, lr=ft.lr,
          batch_size=ft.batch_size, seed=seed, masks=masks, progress=progress,
          phase=f"quantisation-aware fine-tune {step.path}", quantise=quantise)


@dataclass
class _Traced:
    trace: Trace
    notes: list[str]
    imported: ImportResult


def _trace_of(model: nn.Module, data: TaskData, name: str, info: dict[str, dict[str, Any]],
              act_bits: dict[str, int], recipe: Recipe | None, acc: Accuracy | None,
              progress: Progress) -> _Traced:
    from simulator.frontend.lutnet import traced_as_linear

    with traced_as_linear(model):  # a LUTNet layer is traced as the binarised GEMM it replaces
        imported: ImportResult = import_torch(model, data.calibration,
                                              lambda: progress("trace", 1, 1), data.batch_dim)
    return _Traced(build_trace(imported, name, "torch", info, act_bits, recipe, acc),
                   imported.notes, imported)


