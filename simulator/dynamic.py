"""Input-dependent cost: early exits weighted by their measured rates, and layers simulated
with the activation masks of each input sample.

* :func:`exit_report`: a workload with exits (:class:`~simulator.workload.dynamic.ExitPlan`)
  is simulated whole (every exit's head included); a sample that leaves at exit ``i`` costs
  the cycles and energy of ``layers[: ends[i]]``. For each threshold the report gives the
  distribution over the held-out samples, not only its mean: per exit its rate, cycles and
  energy, and per threshold the mean, standard deviation, median, 90th percentile and maximum
  cycles, the mean energy, the accuracy, and the mean's ratio to running every sample to the
  end (``full_cycles``: the network without its heads, as the baseline runs it).
* :func:`simulate_samples`: each layer whose activation carries a mask set
  (``Operand.mask_set``, per calibration sample) is simulated once per sample with that
  sample's mask, inside the whole network: what a layer costs depends on what its neighbours
  leave on chip (``residency:``, :mod:`simulator.simulation`), so each sample is one
  simulation of every layer (the tiling search memoised within it). The report gives, per
  layer and for the network, the mean, spread, minimum and maximum of cycles, load imbalance
  and energy over the inputs (``base``: the whole workload with its layers' own masks).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.arch.config import ArchConfig
from simulator.cost.table import EnergyTable
from simulator.errors import SimulatorError
from simulator.report import Report
from simulator.simulation import simulate
from simulator.workload.layer import Workload


@dataclass(frozen=True)
class ExitReport:
    """``exits``: one row per (threshold, exit); ``thresholds``: one row per threshold."""

    exits: pd.DataFrame
    thresholds: pd.DataFrame


def _quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value whose cumulative weight reaches ``q`` (values ascending)."""
    cum = np.cumsum(weights)
    return float(values[min(int(np.searchsorted(cum, q - 1e-12)), len(values) - 1)])


def exit_report(report: Report, workload: Workload) -> ExitReport:
    """Exit-weighted cycles and energy of ``report`` (a simulation of ``workload``)."""
    plan = workload.exits
    if plan is None:
        raise SimulatorError(f"workload {workload.name!r} has no early exits")
    df = report.layers
    cyc = np.cumsum(df["total_cycles"].to_numpy(dtype=np.int64))
    en = np.cumsum(df["energy_pj"].to_numpy(dtype=float))
    ends = np.asarray(plan.ends) - 1
    # the baseline runs the backbone only: every layer but the exits' heads
    heads = {n for head in plan.head_layers for n in head}
    keep = ~df["layer"].isin(heads).to_numpy()
    full_cycles = int(df["total_cycles"][keep].sum())
    full_pj = float(df["energy_pj"][keep].sum())
    rows, summary = [], []
    for t, (thr, rates) in enumerate(zip(plan.thresholds, plan.rates, strict=True)):
        r = np.asarray(rates)
        c, e = cyc[ends].astype(float), en[ends]
        for i, name in enumerate(plan.names):
            rows.append({"threshold": thr, "exit": i, "layer": name, "rate": r[i],
                         "cycles": int(c[i]), "energy_uj": e[i] / 1e6})
        mean = float(r @ c)
        summary.append({
            "threshold": thr, "accuracy": plan.accuracy[t],
            "mean_cycles": mean, "std_cycles": math.sqrt(max(float(r @ (c - mean) ** 2), 0.0)),
            "p50_cycles": _quantile(c, r, 0.5), "p90_cycles": _quantile(c, r, 0.9),
            "max_cycles": float(c[r > 0].max()) if (r > 0).any() else 0.0,
            "mean_energy_uj": float(r @ e) / 1e6, "full_cycles": full_cycles,
            "cycles_vs_full": mean / full_cycles if full_cycles else math.nan,
            "energy_vs_full": float(r @ e) / full_pj if full_pj else math.nan})
    return ExitReport(pd.DataFrame(rows), pd.DataFrame(summary))


@dataclass(frozen=True)
class SampleReport:
    """``layers``: one row per (layer, sample) of the layers whose masks vary;
    ``summary``: per such layer, mean / std / min / max over samples; ``network``: one row
    per sample (the whole network's cycles and energy); ``base``: the whole workload's report
    (its layers' own masks)."""

    layers: pd.DataFrame
    summary: pd.DataFrame
    network: pd.DataFrame
    base: Report


_COLS = ["total_cycles", "compute_cycles", "load_imbalance", "effectual_macs", "energy_pj"]


def simulate_samples(arch: ArchConfig, workload: Workload,
                     energy_table: EnergyTable | None = None) -> SampleReport:
    """Simulate ``workload`` once per calibration sample of its mask sets (docstring)."""
    sets = {la.name: la.activation.mask_set for la in workload.layers
            if la.activation.mask_set is not None}
    if not sets:
        raise SimulatorError(f"workload {workload.name!r} carries no per-sample activation "
                             f"masks (compress with the sample_masks method)")
    n = min(len(m) for m in sets.values())
    base = simulate(arch, workload, energy_table)
    rows, net = [], []
    for s in range(n):
        layers = tuple(dataclasses.replace(la, activation=dataclasses.replace(
            la.activation, mask=sets[la.name][s], density=float(sets[la.name][s].mean())))
                       if la.name in sets else la for la in workload.layers)
        rep = simulate(arch, dataclasses.replace(workload, layers=layers), base.energy_table)
        df = rep.layers.set_index("layer")
        for name, m in sets.items():
            rows.append({"layer": name, "sample": s, "act_density": float(m[s].mean()),
                         **{c: df.at[name, c] for c in _COLS}})
        net.append({"sample": s, "total_cycles": int(df["total_cycles"].sum()),
                    "energy_pj": float(df["energy_pj"].sum())})
    per = pd.DataFrame(rows)
    summary = per.groupby("layer", sort=False)[["act_density", *_COLS]].agg(
        ["mean", "std", "min", "max"])
    summary.columns = [f"{col[0]}_{col[1]}" for col in summary.columns]
    return SampleReport(per, summary.reset_index(), pd.DataFrame(net), base)
