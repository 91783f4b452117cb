"""Baseline and compressed side by side on one architecture: per original layer and for the
model, the stored weights, their bytes, MACs, DRAM traffic, cycles, energy and accuracy.

A compressed layer counts towards the baseline layer it came from (a low-rank split's halves
``conv2.0`` + ``conv2.1`` towards ``conv2``, :attr:`CompressionResult.origins`); a distilled
student's layers keep the teacher's names; layers with no baseline counterpart (an early
exit's classifier) stand on their own rows. With early exits the model's cycles and energy
are also given as expected per inference at the operating threshold, weighted by the measured
exit rates (:func:`simulator.dynamic.exit_report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from simulator.arch.config import ArchConfig
from simulator.dynamic import exit_report
from simulator.frontend.trace_builder import CompressionResult, weight_kib
from simulator.simulation import simulate
from simulator.workload.layer import Layer


def stored_weights(layer: Layer) -> float:
    """Weight values a layer stores: its nonzeros, or one vector per circulant block."""
    op = layer.weight
    if op.structure == "circulant" and op.block:
        return layer.filter_elements / op.block
    return layer.filter_elements * op.density


@dataclass(frozen=True)
class Comparison:
    """``layers``: one row per baseline GEMM layer (and per new one); ``model``: one row per
    figure (``baseline``, ``compressed``, ``ratio``)."""

    layers: pd.DataFrame
    model: pd.DataFrame


def _sums(rows: pd.DataFrame, layers: dict[str, Layer]) -> dict[str, float]:
    return {"weights": sum(stored_weights(layers[n]) for n in rows["layer"]),
            "weight_kib": sum(weight_kib(layers[n].weight, layers[n].filter_elements)
                              for n in rows["layer"]),
            "macs": float(rows["macs"].sum()), "cycles": float(rows["total_cycles"].sum()),
            "dram_bytes": float((rows["dram_read_bytes"] + rows["dram_write_bytes"]).sum()),
            "energy_uj": float(rows["energy_pj"].sum()) / 1e6}


def compare(arch: ArchConfig, result: CompressionResult) -> Comparison:
    """Simulate the baseline and the compressed trace on ``arch`` (module docstring)."""
    base = simulate(arch, result.baseline.workload)
    comp = simulate(arch, result.trace.workload)
    b_layers = {la.name: la for la in result.baseline.workload.layers}
    c_layers = {la.name: la for la in result.trace.workload.layers}
    bdf, cdf = base.layers, comp.layers
    gemm_b = bdf[bdf["op"].isin(("conv2d", "linear", "matmul"))]
    gemm_c = cdf[cdf["op"].isin(("conv2d", "linear", "matmul"))]
    origin = gemm_c["layer"].map(lambda n: result.origins.get(n, n))
    rows = []
    for name in [*gemm_b["layer"], *[n for n in origin.unique() if n not in b_layers]]:
        before = gemm_b[gemm_b["layer"] == name]
        after = gemm_c[origin == name]
        b = _sums(before, b_layers) if len(before) else {}
        a = _sums(after, c_layers) if len(after) else {}
        rows.append({"layer": name, "became": ", ".join(after["layer"]) or "-",
                     **{f"{k}_before": b.get(k, math.nan) for k in a or b},
                     **{f"{k}_after": a.get(k, math.nan) for k in a or b}})
    order = ["layer", "became"] + [f"{k}_{w}" for k in ("weights", "weight_kib", "macs",
                                                         "dram_bytes", "cycles", "energy_uj")
                                   for w in ("before", "after")]
    layers = pd.DataFrame(rows).reindex(columns=order)
    acc = result.trace.accuracy
    figures: list[tuple[str, Any, Any]] = [
        ("top-1 accuracy", None if acc is None else acc.baseline,
         None if acc is None else acc.compressed),
        ("stored weights", sum(stored_weights(la) for la in b_layers.values()
                               if la.kind == "gemm" and la.filter_is_weight),
         sum(stored_weights(la) for la in c_layers.values()
             if la.kind == "gemm" and la.filter_is_weight)),
        ("weight KiB", sum(weight_kib(la.weight, la.filter_elements)
                           for la in b_layers.values() if la.kind == "gemm"),
         sum(weight_kib(la.weight, la.filter_elements)
             for la in c_layers.values() if la.kind == "gemm")),
        ("MACs", base.totals["macs"], comp.totals["macs"]),
        ("DRAM bytes", base.totals["dram_read_bytes"] + base.totals["dram_write_bytes"],
         comp.totals["dram_read_bytes"] + comp.totals["dram_write_bytes"]),
        ("cycles", base.totals["total_cycles"], comp.totals["total_cycles"]),
        ("energy uJ", base.totals["energy_uj"], comp.totals["energy_uj"]),
    ]
    wl = result.trace.workload
    if wl.exits is not None:
        t = exit_report(comp, wl).thresholds.iloc[wl.exits.operating]
        figures += [(f"cycles per inference, exits at threshold {t['threshold']:g}",
                     base.totals["total_cycles"], t["mean_cycles"]),
                    ("energy uJ per inference, exits", base.totals["energy_uj"],
                     t["mean_energy_uj"])]
    model = pd.DataFrame([{"figure": f, "baseline": b, "compressed": c,
                           "ratio": (c / b if isinstance(b, (int, float)) and b
                                     and isinstance(c, (int, float)) else math.nan)}
                          for f, b, c in figures])
    return Comparison(layers, model)
