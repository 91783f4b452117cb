"""Report tables the CLI prints beyond the per-layer table: energy by component, compute
units, early-exit distributions, per-sample spreads and baseline-vs-compressed comparisons
(through :mod:`simulator.console`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console

from simulator.console import note_hidden, print_frame
from simulator.dynamic import exit_report, simulate_samples


def print_energy(console: Console, report: Any) -> None:
    """Energy by component (and its share), then the energy totals."""
    table = report.energy_table
    by = report.energy.groupby("component", sort=False)["energy_pj"].sum()
    total = float(by.sum())
    df = pd.DataFrame({"component": by.index, "energy_uj": by.to_numpy() / 1e6,
                       "share": by.to_numpy() / total if total else 0.0,
                       "area_mm2": [table.area_mm2.get(c, float("nan")) for c in by.index]})
    print_frame(console, df, f"energy by component (table {table.name}, "
                             f"{table.technology_nm:g} nm; details: approxsim energy-table)")
    t = report.totals
    keys = ["energy_uj", "avg_power_mw", "tops", "tops_per_w", "area_mm2", "tops_per_mm2",
            "edp_j_s", "inferences_per_s"]
    print_frame(console, pd.DataFrame([{k: t[k] for k in keys}]), "energy totals")


def print_dynamic(console: Console, report: Any, workload: Any, arch: Any) -> None:
    """Per-unit utilisation (several compute units), the early-exit distribution (a workload
    with exits) and the spread over input samples (per-sample activation masks)."""
    if len(report.unit_pes) > 2:  # several PE arrays (and the vector unit)
        print_frame(console, report.units, "compute units (layers run one after another)")
    if workload.exits is not None:
        er = exit_report(report, workload)
        note_hidden(console, print_frame(console, er.thresholds,
                                         f"early exits ({workload.exits.criterion} "
                                         f"threshold, {workload.exits.samples} held-out "
                                         f"samples): cycles per inference"))
        op = workload.exits.thresholds[workload.exits.operating]
        print_frame(console, er.exits[er.exits["threshold"] == op],
                    f"exit distribution at the operating threshold {op:g}")
    if any(la.activation.mask_set is not None for la in workload.layers):
        sr = simulate_samples(arch, workload, report.energy_table)
        cols = ["layer", "act_density_mean", "act_density_std", "load_imbalance_mean",
                "load_imbalance_std", "load_imbalance_min", "load_imbalance_max",
                "total_cycles_mean", "total_cycles_std", "total_cycles_min", "total_cycles_max"]
        note_hidden(console, print_frame(console, sr.summary[cols],
                                         f"over {sr.network['sample'].nunique()} input samples"
                                         f" (per-sample activation masks)"))
        net = sr.network.agg({"total_cycles": ["mean", "std", "min", "max"],
                              "energy_pj": ["mean", "std", "min", "max"]}).T.reset_index()
        print_frame(console, net.rename(columns={"index": "network"}),
                    "network over the samples")


def print_comparison(console: Console, cmp: Any, arch: str) -> None:
    """Baseline and compressed side by side (:func:`simulator.frontend.compare.compare`)."""
    note_hidden(console, print_frame(console, cmp.layers, f"per layer on {arch}: before -> "
                                                          f"after"))
    print_frame(console, cmp.model, f"model on {arch}: baseline vs compressed")
