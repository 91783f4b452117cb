"""From imported layers to a workload trace: lowering through the network-spec path, the
operands the compression produced, and the before/after size table (torch-free, so the ONNX
route needs no torch)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from simulator.frontend.imported import ImportResult
from simulator.frontend.methods import Compressed
from simulator.frontend.recipe import Recipe
from simulator.workload.approx import FunctionApprox, approx_fields
from simulator.workload.layer import Operand, Workload
from simulator.workload.spec import parse_network
from simulator.workload.trace import Accuracy, Trace

#: operand fields a compression method sets (:class:`~simulator.frontend.methods.Compressed`)
FIELDS = ("structure", "scheme", "bits", "codebook_size", "scale_bits", "dequantize", "block",
          "filter_bits")


@dataclass
class CompressionResult:
    trace: Trace
    baseline: Trace
    model: Any  # the compressed torch.nn.Module (None for ONNX)
    notes: list[str] = field(default_factory=list)
    #: a compressed layer's name -> the baseline layer it came from (a low-rank split's
    #: halves ``conv2.0``, ``conv2.1`` -> ``conv2``); absent: the same name
    origins: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Per GEMM layer: weight density, bits and storage, activation density, before/after."""
        return size_table(self.baseline, self.trace)


def record_fields(info: dict[str, dict[str, Any]], name: str, out: Compressed) -> None:
    """Remember the operand fields ``out`` sets for layer ``name`` (later steps win)."""
    fields = info.setdefault(name, {})
    fields.update({k: getattr(out, k) for k in FIELDS if getattr(out, k) is not None})
    if out.codebook_size is not None:
        fields.setdefault("scheme", "fp")


@dataclass
class TraceExtras:
    """What the recipe's steps add to the imported layers (:class:`~simulator.frontend.work.
    Work`): operand fields and activation bits by layer, approximated functions by module,
    the layers whose per-sample masks are kept, and the early exits."""

    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    act_bits: dict[str, int] = field(default_factory=dict)
    approx: dict[str, FunctionApprox] = field(default_factory=dict)
    mask_layers: set[str] = field(default_factory=set)
    exits: Any = None  # simulator.frontend.work.Exits


def build_trace(imported: ImportResult, name: str, source: str, extras: TraceExtras | None,
                recipe: Recipe | None, acc: Accuracy | None) -> Trace:
    """Lower imported layers through the network-spec path and attach their operands."""
    ex = extras if extras is not None else TraceExtras()
    info, act_bits = ex.info, ex.act_bits
    specs = []
    for lay in imported.layers:
        spec = dict(lay.spec)
        fn = ex.approx.get(lay.module) if lay.module else None
        if fn is not None and spec.get("op") == "vector":
            spec["approx"] = approx_fields(fn)
        specs.append(spec)
    net: dict[str, Any] = {"name": name, "source": source, "layers": specs}
    if ex.exits is not None:
        e = ex.exits
        of = {h: [la.name for la in imported.layers if la.module.split(".")[0] == h]
              for h in e.heads}
        net["early_exit"] = {"exits": [of[h][-1] for h in e.heads] + [imported.layers[-1].name],
                             "criterion": e.criterion, "thresholds": e.thresholds,
                             "rates": e.rates, "accuracy": e.accuracy, "samples": e.samples,
                             "operating": e.operating, "heads": [of[h] for h in e.heads]}
    wl = parse_network(net, source=name)
    layers = []
    out_bits: dict[str, int | None] = {}
    for lay, low in zip(imported.layers, wl.layers, strict=True):
        f = {**lay.fields, **info.get(lay.name, {})}  # the model's own, then the recipe's
        weight = low.weight
        if lay.weight is not None:
            mask = lay.weight != 0
            fb = f.get("filter_bits")
            weight = Operand(bits=f.get("bits"), density=float(mask.mean()),
                             mask=mask if not mask.all() else None,
                             structure=f.get("structure", "unstructured"),
                             scheme=f.get("scheme", "int"),
                             codebook_size=f.get("codebook_size"),
                             scale_bits=float(f.get("scale_bits", 0.0)),
                             dequantize=bool(f.get("dequantize", False)),
                             block=f.get("block"),
                             filter_bits=None if fb is None else tuple(int(b) for b in fb))
        a_bits = act_bits.get(lay.name, lay.act_bits)
        mask_set = lay.act_mask_set if lay.name in ex.mask_layers else None
        act = Operand(bits=a_bits, density=lay.act_density if lay.act_mask
                      is None else float(lay.act_mask.mean()), mask=lay.act_mask,
                      mask_set=mask_set)
        layers.append(replace(low, weight=weight, activation=act))
        out_bits[lay.name] = None
    # a layer's stored output is the next layer's (quantised) input
    names = [lay.name for lay in imported.layers]
    given = {lay.name: act_bits.get(lay.name, lay.act_bits) for lay in imported.layers}
    for prev, nxt in itertools.pairwise(names):
        out_bits[prev] = given[nxt]
    return Trace(Workload(name, tuple(layers), source=source, exits=wl.exits),
                 source=source,  # type: ignore[arg-type]
                 recipe=None if recipe is None else dict(recipe.raw), accuracy=acc,
                 output_bits=out_bits,
                 calibration_density={lay.name: lay.act_density for lay in imported.layers})


def weight_kib(op: Operand, elements: int) -> float:
    """Weight storage in KiB: nonzeros x bits (32 when unquantised; the mean of per-filter
    bits), plus the codebook and the quantisation scales / zero points (``scale_bits`` per
    value); block-circulant weights keep one value per block row (``elements / b``)."""
    bits: float = op.bits if op.bits is not None else 32
    if op.filter_bits:
        bits = sum(op.filter_bits) / len(op.filter_bits)
    values = elements * op.density
    if op.structure == "circulant" and op.block:
        values = elements / op.block
    book = (op.codebook_size or 0) * 32
    return (values * bits + book + elements * op.scale_bits) / 8 / 1024


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
