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
from simulator.frontend.group_quant import KVCacheParams
from simulator.frontend.imported import ImportedLayer, ImportResult
from simulator.frontend.lowrank import set_module, split_layer, splittable
from simulator.frontend.methods import (
    Compressed,
    SparsityParams,
)
from simulator.frontend.qat import install_act_quant, qat
from simulator.frontend.rank_search import choose_ranks
from simulator.frontend.recipe import Recipe, RecipeError, Step
from simulator.frontend.torch import import_torch
from simulator.frontend.trace_builder import (
    CompressionResult,
    TraceExtras,
    build_trace,
    record_fields,
)
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
from simulator.frontend.work import Work, weight_view
from simulator.workload.trace import Accuracy, Trace


def _ops(layers: dict[str, ImportedLayer]) -> dict[str, str]:
    return {n: la.spec["op"] for n, la in layers.items()}


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
    set_module(model, owner, LUTLinear(out.weight, bias, out.extra["input_map"],
                                        np.median(flat, axis=0)))
    record_fields(info, lay.name, out)


def _apply_weight_step(model: nn.Module, lay: ImportedLayer, step: Step,
                       info: dict[str, dict[str, Any]], params: Any = None) -> None:
    view = weight_view(model, lay)
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


def compress(model: nn.Module, recipe: Recipe, data: TaskData, *, name: str = "model",
             progress: Progress = noop, seed: int = 0) -> CompressionResult:
    """Apply ``recipe`` to a copy of ``model``; measure accuracy; return the trace."""
    with single_thread():
        return _compress(model, recipe, data, name=name, progress=progress, seed=seed)


def _compress(model: nn.Module, recipe: Recipe, data: TaskData, *, name: str,
              progress: Progress, seed: int) -> CompressionResult:
    base = copy.deepcopy(model).eval()
    before = _trace_of(base, data, name, None, None, None, progress)  # fails early if untraceable
    labelled = data.y_test is not None
    baseline_acc = (evaluate(base, data.x_test, data.y_test, progress, phase="evaluate baseline")
                    if data.y_test is not None else None)
    work = Work(base, copy.deepcopy(base), data, recipe, progress, seed, before.imported)
    ft = recipe.finetune
    for step in recipe.steps:
        if step.method.model_level:
            step.method.fn(work, step)
            continue
        layers = work.layers
        picked = [layers[n] for n in step.targets(list(layers), recipe.source, work.aliases,
                                                  _ops(layers))]
        # layers sharing one parameter block (a module called twice) are compressed once
        unique = list({(la.param, la.rows): la for la in picked}.values())
        stage = step.method.stage
        if stage == "lowrank":
            kept = [la for la in unique if not splittable(work.model, la)]
            if kept:
                work.notes.append(f"{step.path} ({step.method.name}): left whole (not an "
                                  f"nn.Linear / nn.Conv2d module of its own): "
                                  f"{', '.join(la.name for la in kept)}")
            ranks = choose_ranks(work, step, [la for la in unique if splittable(work.model, la)])
            for la in unique:
                if splittable(work.model, la) and (ranks is None or ranks[la.name] is not None):
                    split_layer(work.model, la, step, recipe, work.aliases,
                                None if ranks is None else ranks[la.name])
            work.refresh()
            layers = work.layers
        elif stage == "lut":
            for la in unique:
                _lut_layer(work.model, la, step, recipe, work.info, data.calibration)
            _finetune(work.model, data, ft, _masks(work.model, list(work.pruned.values())),
                      progress, seed, f"fine-tune {step.path}")
        elif stage == "activation":
            if isinstance(step.params, KVCacheParams):
                raise RecipeError(recipe.source, [(f"{step.path}.method", f"{step.method.name!r}"
                                                   f" sets an LLM spec's KV cache; run it on a "
                                                   f"decoder spec (workloads/llm/)")])
            install_act_quant(work.model, picked, step, data.calibration)
            bits = int(step.params.bits)  # type: ignore[attr-defined]
            work.act_bits.update({la.name: bits for la in picked})
            progress("calibrate", 1, 1)
            last_act = all(s.method.stage != "activation" for s in recipe.steps[step.index + 1:])
            if ft.qat and ft.activations and ft.epochs > 0 and last_act:  # both at once
                qat(work.model, data, ft, work.quantised,
                    _masks(work.model, list(work.pruned.values())), progress, seed,
                    f"quantisation-aware fine-tune {step.path} (activations and weights)")
                for wstep, targets in work.quantised:
                    for la in targets:
                        _apply_weight_step(work.model, la, wstep, work.info)
        elif stage == "prune":
            iters = step.params.iterations if isinstance(step.params, SparsityParams) else 1
            for it in range(1, iters + 1):
                params = step.params
                if isinstance(params, SparsityParams) and iters > 1:
                    params = params.model_copy(update={"sparsity": params.sparsity * it / iters})
                for la in unique:
                    _apply_weight_step(work.model, la, step, work.info, params)
                work.pruned.update({la.name: la for la in picked})
                _finetune(work.model, data, ft, _masks(work.model, list(work.pruned.values())),
                          progress, seed + it, f"fine-tune {step.path} ({it}/{iters})")
        else:
            if stage == "quantise" and ft.qat and ft.epochs > 0:
                qat(work.model, data, ft, [(step, unique)],
                    _masks(work.model, list(work.pruned.values())), progress, seed,
                    f"quantisation-aware fine-tune {step.path}")
            for la in unique:
                _apply_weight_step(work.model, la, step, work.info)
            if stage == "quantise":
                work.quantised.append((step, unique))
            if stage == "structure":  # fine-tuned keeping the structure (projected steps)
                _finetune(work.model, data, ft, _masks(work.model, list(work.pruned.values())),
                          progress, seed, f"fine-tune {step.path}",
                          after_step=_projector(work.model, step, unique))
        for la in picked:  # a shared block's other layers get the same operand fields
            for other in layers.values():
                if (other.param, other.rows) == (la.param, la.rows) and other.name != la.name \
                        and la.name in work.info:
                    work.info[other.name] = dict(work.info[la.name])
        if stage == "lowrank":
            _finetune(work.model, data, ft, _masks(work.model, list(work.pruned.values())),
                      progress, seed, f"fine-tune {step.path}")
    acc = _accuracy(base, work.model, data, baseline_acc, progress, work.accuracy)
    notes = ([acc.warning] if acc.warning else []) + work.notes
    if not labelled:
        notes.append(f"no labels: agreement with the uncompressed model on {data.name}")
    after = _trace_of(work.model, data, name, work, recipe, acc, progress)
    return CompressionResult(after.trace, before.trace, work.model, notes + before.notes + [
        n for n in after.notes if n not in before.notes], dict(work.aliases))


def _projector(model: nn.Module, step: Step, targets: list[ImportedLayer]) -> Any:
    """After each optimiser step, re-apply a structure step (keeps circulant blocks)."""
    def project() -> None:
        with torch.no_grad():
            for la in targets:
                w = weight_view(model, la)
                w.copy_(torch.from_numpy(step.method.fn(w.detach().numpy().copy(),
                                                        step.params).weight))
    return project


#: below this many samples an accuracy or agreement figure gets a warning (a 95 % binomial
#: interval at p = 0.9 is +-6 points at 100 samples, +-15 at 16)
MIN_SAMPLES = 100


def _accuracy(base: nn.Module, work: nn.Module, data: TaskData, baseline: float | None,
              progress: Progress, given: float | None = None) -> Accuracy:
    """Top-1 accuracy with labels; else agreement (top-1, output cosine) with the uncompressed
    model on the inputs; perplexity for token-id inputs of a language model."""
    x = data.x_test
    n = len(x)
    warn = (f"only {n} samples (< {MIN_SAMPLES}): accuracy / agreement are uncertain by "
            f"several points" if n < MIN_SAMPLES else None)
    if data.y_test is not None:
        comp = given if given is not None else evaluate(work, x, data.y_test, progress,
                                                        phase="evaluate compressed")
        return Accuracy(baseline, comp, data.name, n, warning=warn)
    ob, oc = outputs(base, x), outputs(work, x)
    agree, cos = agreement(ob, oc)
    ppl = None
    if not torch.is_floating_point(x) and x.dim() == 2 and ob.dim() == 3:
        ppl = (perplexity(ob, x), perplexity(oc, x))
    return Accuracy(None, None, f"agreement with the uncompressed model on {data.name}", n,
                    agree, cos, ppl, warn)


def _finetune(model: nn.Module, data: TaskData, ft: Any, masks: dict[str, torch.Tensor],
              progress: Progress, seed: int, phase: str, after_step: Any = None) -> None:
    if ft.epochs <= 0:
        return
    if data.x_train is None or data.y_train is None:
        raise SimulatorError(f"recipe asks for fine-tuning ({ft.epochs} epochs) but the data "
                             f"{data.name!r} has no training set")
    train(model, data.x_train, data.y_train, epochs=ft.epochs, lr=ft.lr,
          batch_size=ft.batch_size, seed=seed, masks=masks, progress=progress, phase=phase,
          after_step=after_step)


@dataclass
class _Traced:
    trace: Trace
    notes: list[str]
    imported: ImportResult


def _trace_of(model: nn.Module, data: TaskData, name: str, work: Work | None,
              recipe: Recipe | None, acc: Accuracy | None, progress: Progress) -> _Traced:
    from simulator.frontend.lutnet import traced_as_linear

    samples = work.mask_samples if work is not None else 0
    with traced_as_linear(model):  # a LUTNet layer is traced as the binarised GEMM it replaces
        imported: ImportResult = import_torch(model, data.calibration,
                                              lambda: progress("trace", 1, 1), data.batch_dim,
                                              mask_samples=samples)
    extras = None if work is None else TraceExtras(
        work.info, work.act_bits, work.approx, work.mask_layers, work.exits)
    return _Traced(build_trace(imported, name, "torch", extras, recipe, acc),
                   imported.notes, imported)
