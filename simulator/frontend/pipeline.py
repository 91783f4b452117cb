"""``compress(model, recipe, data) -> CompressionResult``: apply a recipe, measure, trace.

Order (Deep Compression, Han et al. ICLR 2016): low-rank splits, pruning (each pruning step
optionally iterated and followed by masked fine-tuning: pruned weights stay zero), weight
sharing, weight quantisation (post-training, biases kept at accumulator precision) and
calibrated activation quantisation. Baseline and compressed top-1 accuracy are measured on
the held-out set, then the compressed model is traced (:mod:`simulator.frontend.torch`).
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from simulator.errors import SimulatorError
from simulator.frontend.methods import (
    ActParams,
    Compressed,
    SparsityParams,
    act_scale,
    quantise_activation,
)
from simulator.frontend.recipe import Recipe, RecipeError, Step
from simulator.frontend.torch import ImportResult, import_torch
from simulator.network_spec import parse_network
from simulator.trace import Accuracy, Trace
from simulator.workload import Operand, Workload

#: ``progress(phase, done, total)``: called as training / calibration / evaluation advance.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TaskData:
    """Inputs for :func:`compress`: a held-out test set, a calibration batch, optional training
    data (needed only for fine-tuning). Tensors: inputs ``x`` as the model takes them, integer
    class labels ``y``."""

    name: str
    x_test: torch.Tensor
    y_test: torch.Tensor
    calibration: torch.Tensor
    x_train: torch.Tensor | None = None
    y_train: torch.Tensor | None = None


@dataclass
class CompressionResult:
    trace: Trace
    baseline: Trace
    model: nn.Module
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """Per GEMM layer: weight density, bits and storage, activation density, before/after."""
        return size_table(self.baseline, self.trace)


def _noop(phase: str, done: int, total: int) -> None:
    return None


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: these models are tiny, and intra-op threads on a shared
    2-core machine cost 20x in contention (measured 3.4 ms vs 68 ms per training step)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, progress: Progress = _noop,
             batch_size: int = 256, phase: str = "evaluate") -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    model.eval()
    correct = 0
    n = len(x)
    with torch.no_grad():
        for i in range(0, n, batch_size):
            correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
            progress(phase, min(i + batch_size, n), n)
    return correct / n if n else math.nan


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
          batch_size: int = 64, seed: int = 0, masks: dict[str, torch.Tensor] | None = None,
          progress: Progress = _noop, phase: str = "train",
          quantise: Callable[[], dict[str, torch.Tensor]] | None = None) -> None:
    """Adam on cross-entropy, deterministic for a seed; ``masks`` keep pruned weights at zero.

    ``quantise`` (quantisation-aware training): called before each forward pass, it
    quantises weights in place and returns their float copies, restored before the optimiser
    step -- the straight-through estimator (Bengio et al. 2013; as in BWN/TWN training).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    mods = dict(model.named_modules())
    n = len(x)
    steps = epochs * math.ceil(n / batch_size)
    done = 0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            shadow = quantise() if quantise is not None else {}
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            with torch.no_grad():  # straight-through: the step updates the float weights
                for key, w in shadow.items():
                    _param(mods[key]).copy_(w)
            opt.step()
            if masks:
                with torch.no_grad():
                    for name, m in masks.items():
                        _param(mods[name]).mul_(m)
            done += 1
            progress(phase, done, steps)
    model.eval()


def _param(mod: nn.Module, attr: str = "weight") -> torch.Tensor:
    value = getattr(mod, attr)
    assert isinstance(value, torch.Tensor), f"{type(mod).__name__}.{attr}"
    return value


def _targets(model: nn.Module, step: Step, recipe: Recipe,
             aliases: dict[str, str]) -> list[str]:
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    errors = []
    for pat in step.layers + step.exclude:
        if not any(fnmatch.fnmatchcase(n, pat) or fnmatch.fnmatchcase(aliases.get(n, n), pat)
                   for n in names):
            field_ = "layers" if pat in step.layers else "exclude"
            errors.append((f"{step.path}.{field_}", f"layer {pat!r} not found; the model's "
                                                    f"layers are {', '.join(names)}"))
    if errors:
        raise RecipeError(recipe.source, errors)

    def hit(n: str, pats: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(aliases.get(n, n), p)
                   for p in pats)

    return [n for n in names if hit(n, step.layers) and not hit(n, step.exclude)]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def _lowrank(model: nn.Module, name: str, step: Step, recipe: Recipe,
             aliases: dict[str, str]) -> None:
    mod = model.get_submodule(name)
    w = _param(mod).detach().numpy()
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
        _param(second, "bias").data = _param(mod, "bias").detach().clone()
    _set_module(model, name, nn.Sequential(first, second))
    aliases[f"{name}.0"] = aliases[f"{name}.1"] = aliases.get(name, name)


def _apply_weight_step(model: nn.Module, name: str, step: Step,
                       info: dict[str, dict[str, Any]], params: Any = None) -> None:
    mod = model.get_submodule(name)
    w = _param(mod).detach().numpy()
    try:
        out: Compressed = step.method.fn(w, params if params is not None else step.params)
    except ValueError as exc:
        raise SimulatorError(f"{step.path} ({step.method.name}) on layer {name!r}: {exc}"
                             ) from None
    with torch.no_grad():
        _param(mod).copy_(torch.from_numpy(out.weight))
        if out.structure == "filter" and mod.bias is not None:
            keep = torch.from_numpy(np.asarray(out.extra["filters_kept"]))
            bias = _param(mod, "bias")
            bias.mul_(keep.to(bias.dtype))
    fields = info.setdefault(name, {})
    for key in ("structure", "scheme", "bits", "codebook_size"):
        value = getattr(out, key)
        if value is not None:
            fields[key] = value
    if out.codebook_size is not None:
        fields.setdefault("scheme", "fp")


def _masks(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    return {n: (_param(model.get_submodule(n)) != 0).float() for n in names}


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
             progress: Progress = _noop, seed: int = 0) -> CompressionResult:
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
        targets = _targets(work, step, recipe, aliases)
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
                w = _param(model.get_submodule(n))
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


def build_trace(imported: ImportResult, name: str, source: str,
                info: dict[str, dict[str, Any]], act_bits: dict[str, int],
                recipe: Recipe | None, acc: Accuracy | None) -> Trace:
    """Lower imported layers through the network-spec path and attach their operands."""
    wl = parse_network({"name": name, "source": source,
                        "layers": [lay.spec for lay in imported.layers]}, source=name)
    layers = []
    out_bits: dict[str, int | None] = {}
    for lay, low in zip(imported.layers, wl.layers, strict=True):
        f = info.get(lay.name, {})
        weight = low.weight
        if lay.weight is not None:
            mask = lay.weight != 0
            weight = Operand(bits=f.get("bits"), density=float(mask.mean()),
                             mask=mask if not mask.all() else None,
                             structure=f.get("structure", "unstructured"),
                             scheme=f.get("scheme", "int"),
                             codebook_size=f.get("codebook_size"))
        act = Operand(bits=act_bits.get(lay.name), density=lay.act_density if lay.act_mask
                      is None else float(lay.act_mask.mean()), mask=lay.act_mask)
        layers.append(replace(low, weight=weight, activation=act))
        out_bits[lay.name] = None
    # a layer's stored output is the next layer's (quantised) input
    names = [lay.name for lay in imported.layers]
    for prev, nxt in itertools.pairwise(names):
        out_bits[prev] = act_bits.get(nxt)
    return Trace(Workload(name, tuple(layers), source=source), source=source,  # type: ignore[arg-type]
                 recipe=None if recipe is None else dict(recipe.raw), accuracy=acc,
                 output_bits=out_bits,
                 calibration_density={lay.name: lay.act_density for lay in imported.layers})


def weight_kib(op: Operand, elements: int) -> float:
    """Weight storage in KiB: nonzeros x bits (32 when unquantised), plus the codebook."""
    bits = op.bits if op.bits is not None else 32
    book = (op.codebook_size or 0) * 32
    return (elements * op.density * bits + book) / 8 / 1024


def size_table(before: Trace, after: Trace) -> pd.DataFrame:
    """One row per layer of ``after`` (matched by name to ``before`` where present)."""
    prior = {lay.name: lay for lay in before.workload.layers}
    rows = []
    for lay in after.workload.layers:
        b = prior.get(lay.name)
        gemm = lay.kind == "gemm"
        rows.append({
            "layer": lay.name, "op": lay.op,
            "w_density_before": b.weight.density if b is not None and gemm else math.nan,
            "w_density_after": lay.weight.density if gemm else math.nan,
            "w_bits_after": lay.weight.bits if gemm and lay.weight.bits else "-",
            "w_scheme": (f"{lay.weight.scheme}/{lay.weight.structure}" if gemm else "-"),
            "w_kib_before": (weight_kib(b.weight, b.filter_elements) if b is not None and gemm
                             else math.nan),
            "w_kib_after": weight_kib(lay.weight, lay.filter_elements) if gemm else math.nan,
            "a_density_before": before.calibration_density.get(lay.name, math.nan),
            "a_density_after": after.calibration_density.get(lay.name, math.nan),
            "a_bits_after": lay.activation.bits or "-",
        })
    return pd.DataFrame(rows)
