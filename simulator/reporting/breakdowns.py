"""Per-layer figures of chosen points: stacked energy and cycles, and rooflines.

* **Energy** per layer, stacked by the categories of :mod:`simulator.sweep.breakdown` (PE
  arithmetic, PE registers and network, vector unit, each SRAM, DRAM, format metadata,
  leakage); the stacks sum to each layer's ``energy_pj``.
* **Cycles** per layer: compute (the array's closed form) and stall (waiting for data).
* **Roofline** per architecture (Williams, Waterman, Patterson, CACM 2009): attained
  effectual GOPS (2 ops per effectual MAC over the layer's time) against operational
  intensity (effectual ops per DRAM byte read or written), under the roofs
  ``min(peak, intensity x DRAM bandwidth)``; peak = 2 x PEs x MACs per PE per cycle x clock.
  GEMM layers only; a layer that moves no DRAM byte has no intensity and is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simulator.reporting.figures import colours, figure, scale
from simulator.sweep.breakdown import CATEGORIES

CATEGORY_LABELS = {"arith": "PE arithmetic", "pe_local": "PE registers + network",
                   "vector": "vector unit", "ifmap": "ifmap SRAM", "filter": "filter SRAM",
                   "ofmap": "ofmap SRAM", "dram": "DRAM", "metadata": "format metadata",
                   "leakage": "leakage", "other": "other"}


def _title(point: pd.Series) -> str:
    return f"{point['workload']} on {point['arch_label']}  [{point['point_hash'][:10]}]"


def _bars(ax: Any, layers: pd.DataFrame, stacks: Sequence[tuple[str, str, Any]],
          div: float) -> None:
    x = np.arange(len(layers))
    bottom = np.zeros(len(layers))
    for col, label, colour in stacks:
        v = layers[col].to_numpy(dtype=float) / div
        ax.bar(x, v, bottom=bottom, color=colour, label=label, width=0.8)
        bottom += v
    ax.set_xticks(x, layers["layer"], rotation=60, ha="right", fontsize=7)
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.grid(True, axis="y", alpha=0.25)


def layer_energy(layers: pd.DataFrame, points: pd.DataFrame) -> Any:
    """Stacked per-layer energy of each point in ``points`` (one panel each)."""
    cols = [f"energy_{c}_pj" for c in CATEGORIES]
    sel = layers[layers["point_hash"].isin(points["point_hash"])]
    used = [c for c in cols if c in sel and float(sel[c].abs().sum()) > 0]
    div, unit = scale(sel["energy_pj"], "pJ")
    pal = colours(len(CATEGORIES))
    stacks = [(c, CATEGORY_LABELS[c[7:-3]], pal[cols.index(c)]) for c in used]
    fig = figure(max(7.0, 0.28 * sel.groupby("point_hash").size().max() + 4), 2.9 * len(points)
                 + 0.8)
    axes = fig.subplots(len(points), 1, squeeze=False)[:, 0]
    for ax, (_, pt) in zip(axes, points.iterrows(), strict=True):
        _bars(ax, sel[sel["point_hash"] == pt["point_hash"]], stacks, div)
        ax.set_ylabel(f"energy ({unit})")
        ax.set_title(f"{_title(pt)}: {pt['energy_uj']:.4g} µJ", fontsize=9)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, ncols=min(len(stacks), 5),
               loc="outside lower center")
    fig.suptitle("Energy per layer by component")
    return fig


def layer_cycles(layers: pd.DataFrame, points: pd.DataFrame) -> Any:
    """Stacked per-layer compute and stall cycles of each point in ``points``."""
    sel = layers[layers["point_hash"].isin(points["point_hash"])]
    div, unit = scale(sel["total_cycles"], "cycles")
    pal = colours(2)
    stacks = [("compute_cycles", "compute", pal[0]), ("stall_cycles", "stall (waiting for data)",
                                                       pal[1])]
    fig = figure(max(7.0, 0.28 * sel.groupby("point_hash").size().max() + 4), 2.9 * len(points)
                 + 0.8)
    axes = fig.subplots(len(points), 1, squeeze=False)[:, 0]
    for ax, (_, pt) in zip(axes, points.iterrows(), strict=True):
        _bars(ax, sel[sel["point_hash"] == pt["point_hash"]], stacks, div)
        ax.set_ylabel(unit)
        ax.set_title(f"{_title(pt)}: {pt['total_cycles']:,.0f} cycles", fontsize=9)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, ncols=2,
               loc="outside lower center")
    fig.suptitle("Cycles per layer: compute and stall")
    return fig


def roofline(layers: pd.DataFrame, points: pd.DataFrame, max_panels: int = 6) -> Any:
    """One roofline panel per architecture of ``points`` (the first ``max_panels``)."""
    archs = list(points["arch_label"].drop_duplicates())
    shown = archs[:max_panels]
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig = figure(4.6 * cols + 1.8, 3.9 * rows + 0.7)
    axes = fig.subplots(rows, cols, squeeze=False)
    workloads = list(points["workload"].drop_duplicates())
    pal = dict(zip(workloads, colours(len(workloads)), strict=True))
    for ax in axes.ravel()[len(shown):]:
        ax.set_visible(False)
    for ax, arch in zip(axes.ravel(), shown, strict=False):
        pts = points[points["arch_label"] == arch]
        pt = pts.iloc[0]
        lay = layers[layers["point_hash"].isin(pts["point_hash"]) & (layers["unit"]
                                                                      != "vector_unit")]
        moved = (lay["dram_read_bytes"] + lay["dram_write_bytes"]).to_numpy(dtype=float)
        ops = 2.0 * lay["effectual_macs"].to_numpy(dtype=float)
        secs = lay["total_cycles"].to_numpy(dtype=float) / (float(pt["clock_mhz"]) * 1e6)
        keep = (moved > 0) & (secs > 0)
        oi = ops[keep] / moved[keep]
        gops = ops[keep] / secs[keep] / 1e9
        peak = float(pt["peak_tops"]) * 1e3
        bw = float(pt["dram_bandwidth_gb_per_s"])
        lo = min(float(oi.min()) if len(oi) else 1.0, peak / bw) / 4
        hi = max(float(oi.max()) if len(oi) else 10.0, peak / bw) * 4
        xs = np.geomspace(lo, hi, 200)
        ax.plot(xs, np.minimum(peak, xs * bw), color="black", lw=1.5, label="roof")
        ax.axvline(peak / bw, color="grey", lw=0.8, ls=":")
        wl = lay["workload"].to_numpy()[keep]
        for w in workloads:
            m = wl == w
            if m.any():
                ax.scatter(oi[m], gops[m], s=22, color=pal[w], alpha=0.85, label=str(w),
                           zorder=3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("operational intensity (effectual ops / DRAM byte)")
        ax.set_ylabel("attained performance (GOPS)")
        ax.set_title(f"{arch}\npeak {peak:,.0f} GOPS, DRAM {bw:g} GB/s", fontsize=8)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="lower right")
    more = f" ({len(shown)} of {len(archs)} architectures)" if len(archs) > len(shown) else ""
    fig.suptitle(f"Roofline per architecture, one point per layer{more}")
    return fig
