"""Knowledge distillation (Hinton, Vinyals, Dean, "Distilling the knowledge in a neural
network", arXiv:1503.02531, 2015): a smaller student trained from the teacher's soft labels.

The student is a given architecture (``student: package.module:factory``) or the teacher at a
width multiplier: every ``nn.Conv2d`` / ``nn.Linear`` the step selects keeps
``max(1, round(width * out))`` output channels (never the model's last layer, its classes),
and every conv, linear and batch norm is rebuilt as its lazy version so the input widths follow
(a model with other layers tied to a width, e.g. a LayerNorm after a narrowed linear, is a
clear error asking for ``student:``). Names stay the teacher's, so the report sets each
layer's teacher and student cost side by side. The student starts from seeded random weights
and is trained on the training set with (Hinton et al. section 2)

    L = alpha T^2 KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) CE(z_s, y)

(the ``T^2`` keeps the soft term's gradients at the scale of the hard one's as ``T`` grows).
Without labels the teacher's top-1 stands in for ``y``. The trace is the student's network,
its accuracy the student's, the baseline the teacher's.

Registered in :data:`simulator.frontend.methods.METHODS` as a model-level method (torch is
imported only when it runs).
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

from pydantic import Field, model_validator

from simulator.errors import SimulatorError
from simulator.frontend.methods import Params, method


class DistillParams(Params):
    width: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    student: str | None = None
    temperature: Annotated[float, Field(gt=0.0, le=100.0)] = 4.0
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    epochs: Annotated[int, Field(ge=0, le=10_000, strict=True)] = 30
    lr: Annotated[float, Field(gt=0.0)] = 3e-3
    batch_size: Annotated[int, Field(gt=0, strict=True)] = 64
    seed: int = 0

    @model_validator(mode="after")
    def _one_student(self) -> DistillParams:
        if (self.width is None) == (self.student is None):
            raise ValueError("give exactly one of width (a multiplier of the teacher's "
                             "channels) or student ('package.module:factory')")
        return self


def kd_loss(student: Any, teacher: Any, labels: Any, temperature: float, alpha: float) -> Any:
    """Hinton et al.'s objective (module docstring) on logits ``(batch, classes)``."""
    from torch.nn import functional as F

    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1),
                    reduction="batchmean") * (t * t)
    return alpha * soft + (1 - alpha) * F.cross_entropy(student, labels)


def narrowed(teacher: Any, narrow: set[str], width: float, example: Any, seed: int,
             own: set[str] | None = None) -> Any:
    """The teacher rebuilt with lazy convs, linears and batch norms, the modules in ``narrow``
    at ``width`` of their output channels, materialised on ``example`` (module docstring).
    ``own``: the conv / linear modules called as layers of their own (a weight its parent
    reads directly, as nn.MultiheadAttention's out_proj, is left as it is); default all."""
    import copy

    import torch
    from torch import nn

    torch.manual_seed(seed)
    student = copy.deepcopy(teacher)
    for name, mod in list(student.named_modules()):
        new: nn.Module | None = None
        if isinstance(mod, (nn.Conv2d, nn.Linear)) and own is not None and name not in own:
            continue
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1:
                raise SimulatorError(f"distill width: {name!r} is a grouped convolution "
                                     f"(groups={mod.groups}); give a student architecture "
                                     f"(student: 'package.module:factory')")
            out = max(1, round(width * mod.out_channels)) if name in narrow \
                else mod.out_channels
            new = nn.LazyConv2d(out, mod.kernel_size, mod.stride, mod.padding,  # type: ignore[arg-type]
                                mod.dilation, bias=mod.bias is not None,  # type: ignore[arg-type]
                                padding_mode=mod.padding_mode)
        elif isinstance(mod, nn.Linear):
            out = max(1, round(width * mod.out_features)) if name in narrow \
                else mod.out_features
            new = nn.LazyLinear(out, bias=mod.bias is not None)
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            lazy = nn.LazyBatchNorm1d if isinstance(mod, nn.BatchNorm1d) else nn.LazyBatchNorm2d
            new = lazy(mod.eps, mod.momentum, mod.affine, mod.track_running_stats)
        if new is not None:
            parent, _, attr = name.rpartition(".")
            setattr(student.get_submodule(parent) if parent else student, attr, new)
    student.eval()
    try:
        with torch.no_grad():
            student(example)
    except Exception as exc:  # the model ties a width to a layer that is not rebuilt
        raise SimulatorError(f"distill width {width:g}: the narrowed model does not run "
                             f"({type(exc).__name__}: {exc}); give a student architecture "
                             f"(student: 'package.module:factory')") from None
    return student


def _factory(ref: str) -> Any:
    mod_name, _, attr = ref.partition(":")
    try:
        out = getattr(importlib.import_module(mod_name), attr)()
    except Exception as exc:  # user code
        raise SimulatorError(f"distill student {ref!r}: {type(exc).__name__}: {exc}") from None
    return out[0] if isinstance(out, tuple) else out


@method("distill", "distill", "Hinton, Vinyals, Dean, 'Distilling the knowledge in a neural "
        "network', arXiv:1503.02531, 2015 (soft targets at temperature T)", DistillParams,
        model_level=True)
def distill(work: Any, step: Any) -> None:
    """Replace the model by a student trained on the teacher's soft labels (module
    docstring)."""
    import torch

    from simulator.frontend.training import outputs, train

    p: DistillParams = step.params
    data, teacher = work.data, work.model
    x = data.x_train if data.x_train is not None else data.calibration
    if data.x_train is None:
        work.notes.append(f"{step.path} (distill): no training set; the student learns on "
                          f"the calibration inputs")
    soft = outputs(teacher, x)
    y = data.y_train if data.y_train is not None and data.x_train is not None \
        else soft.argmax(-1)
    if p.student is not None:
        torch.manual_seed(p.seed)
        student = _factory(p.student)
    else:
        cands = {n: la.spec["op"] for n, la in work.layers.items()}
        last = list(cands)[-1]  # the classes
        picked = set(work.select(step, cands)) - {last}
        mods = {work.layers[n].param.removesuffix(".weight") for n in picked}
        assert p.width is not None
        own = {la.module for la in work.layers.values()
               if la.param and la.module == la.param.removesuffix(".weight")}
        student = narrowed(teacher, mods, p.width, data.calibration[:2], p.seed, own)
    train(student, x, y, epochs=p.epochs, lr=p.lr, batch_size=p.batch_size, seed=p.seed,
          progress=work.progress, phase=f"distil {step.path}",
          loss=lambda out, lab, idx: kd_loss(out, soft[idx], lab, p.temperature, p.alpha))
    work.model = student.eval()
    work.refresh()
