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
from simulator.frontend.imported import ImportResult
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
    evaluate,
    noop,
    param,
    single_thread,
    train,
)
from simulator.workload.trace import Accuracy, Trace


def _weighted(model: nn.Module) -> list[str]:
    """Names of the model's conv and linear modules (what recipe steps select from)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def _lowrank(model: nn.Module, name: str, step: Step, recipe: Recipe,
             aliases: dict[str, str]) -> None:
    mod = model.get_submodule(name)
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
    aliases[f"{name}.0"] = aliases[f"{name}.1"] = aliases.get(name, name)


def _apply_weight_step(model: nn.Module, name: str, step: Step,
                       info: dict[str, dict[str, Any]], params: Any = None) -> None:
    mod = model.get_submodule(name)
    w = param(mod).detach().numpy()
    try:
        out: Compressed = step.method.fn(w, params if params is not None else step.params)
    except ValueError as exc:
        raise SimulatorError(f"{step.path} ({step.method.name}) on layer {name!r}: {exc}"
                             ) from None
    with torch.no_grad():
        param(mod).copy_(torch.from_numpy(out.weight))
        if out.structure == "filter" and mod.bias is not None:
            keep = torch.from_numpy(np.asarray(out.extra["filters_kept"]))
            bias = param(mod, "bias")
            bias.mul_(keep.to(bias.dtype))
    record_fields(info, name, out)


def _masks(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    return {n: (param(model.get_submodule(n)) != 0).float() for n in names}


def _install_act_quant(model: nn.Module, targets: list[str], params: ActParams,
                       calibration: torch.Tensor) -> None:
    seen: dict[str, np.ndarray] = {}
    handles = []
    for n in targets:
        def grab(mod: nn.Module, args: tuple[Any, ...], n: str = n) -> None:
            seen.setdefault(n, args[0].detach().numpy())
        handles.append(model.get_submodule(n).register_forward_pre_hook(grab))
    with torch.no_grad():
        model(calibration)
    for h in handles:
        h.remove()
    for n in targets:
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
    baseline_acc = evaluate(base, data.x_test, data.y_test, progress, phase="evaluate baseline")
    work = copy.deepcopy(base)
    info: dict[str, dict[str, Any]] = {}
    act_bits: dict[str, int] = {}
    aliases: dict[str, str] = {}
    pruned: set[str] = set()
    ft = recipe.finetune
    for step in recipe.steps:
        targets = step.targets(_weighted(work), recipe.source, aliases)
        stage = step.method.stage
        if stage == "lowrank":
            for n in targets:
                _lowrank(work, n, step, recipe, aliases)
        elif stage == "activation":
            assert isinstance(step.params, ActParams)
            _install_act_quant(work, targets, step.params, data.calibration)
            act_bits.update({n: step.params.bits for n in targets})
            progress("calibrate", 1, 1)
        elif stage == "prune":
            iters = step.params.iterations if isinstance(step.params, SparsityParams) else 1
            for it in range(1, iters + 1):
                params = step.params
                if isinstance(params, SparsityParams) and iters > 1:
                    params = params.model_copy(update={"sparsity": params.sparsity * it / iters})
                for n in targets:
                    _apply_weight_step(work, n, step, info, params)
                pruned.update(targets)
                _finetune(work, data, ft, _masks(work, sorted(pruned)), progress, seed + it,
                          f"fine-tune {step.path} ({it}/{iters})")
        else:
            if stage == "quantise" and ft.qat and ft.epochs > 0:
                _qat(work, data, ft, step, targets, _masks(work, sorted(pruned)), progress,
                     seed)
            for n in targets:
                _apply_weight_step(work, n, step, info)
        if stage == "lowrank":
            _finetune(work, data, ft, _masks(work, sorted(pruned)), progress, seed,
                      f"fine-tune {step.path}")
    compressed_acc = evaluate(work, data.x_test, data.y_test, progress,
                              phase="evaluate compressed")
    acc = Accuracy(baseline_acc, compressed_acc, data.name, len(data.x_test))
    after = _trace_of(work, data, name, info, act_bits, recipe, acc, progress)
    return CompressionResult(after.trace, before.trace, work, after.notes)


def _finetune(model: nn.Module, data: TaskData, ft: Any, masks: dict[str, torch.Tensor],
              progress: Progress, seed: int, phase: str) -> None:
    if ft.epochs <= 0:
        return
    if data.x_train is None or data.y_train is None:
        raise SimulatorError(f"recipe asks for fine-tuning ({ft.epochs} epochs) but the data "
                             f"{data.name!r} has no training set")
    train(model, data.x_train, data.y_train, epochs=ft.epochs, lr=ft.lr,
          batch_size=ft.batch_size, seed=seed, masks=masks, progress=progress, phase=phase)


def _qat(model: nn.Module, data: TaskData, ft: Any, step: Step, targets: list[str],
         masks: dict[str, torch.Tensor], progress: Progress, seed: int) -> None:
    """Quantisation-aware fine-tuning of ``step``'s targets (straight-through estimator)."""
    if data.x_train is None or data.y_train is None:
        raise SimulatorError(f"recipe asks for quantisation-aware fine-tuning but the data "
                             f"{data.name!r} has no training set")

    def quantise() -> dict[str, torch.Tensor]:
        shadow = {}
        with torch.no_grad():
            for n in targets:
                w = param(model.get_submodule(n))
                shadow[n] = w.detach().clone()
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


def _trace_of(model: nn.Module, data: TaskData, name: str, info: dict[str, dict[str, Any]],
              act_bits: dict[str, int], recipe: Recipe | None, acc: Accuracy | None,
              progress: Progress) -> _Traced:
    imported: ImportResult = import_torch(model, data.calibration,
                                          lambda: progress("trace", 1, 1))
    return _Traced(build_trace(imported, name, "torch", info, act_bits, recipe, acc),
                   imported.notes)


