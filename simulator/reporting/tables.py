"""The summary table of a sweep: one row per point, as CSV, Markdown and LaTeX.

Columns: the point (``point_hash``), its workload (``network``, ``workload``, ``recipe``), its
architecture (every input axis), then ``accuracy`` (fraction), ``energy_uj`` per inference,
``latency_us``, ``total_cycles``, ``tops_per_w``, ``area_mm2``, ``edp_j_s``, the Pareto flags
(:func:`pareto_flags`) and ``error``. The CSV carries every number at full precision (it reads
back equal to the store); Markdown and LaTeX round to 4 significant digits and shorten hashes
to 10 characters, for reading.

Pareto flags are computed within each ``network`` (accuracies of different tasks do not
compare): ``pareto_acc_energy`` (max accuracy, min energy per inference), ``pareto_acc_latency``
(max accuracy, min latency) for points with an accuracy, ``pareto_energy_latency`` (min both)
for all points.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulator.files import write_atomic
from simulator.frontend._deps import require
from simulator.reporting.pareto import Sense, pareto_front
from simulator.reporting.results import Results

METRICS = ["accuracy", "energy_uj", "latency_us", "total_cycles", "tops_per_w", "area_mm2",
           "edp_j_s"]
FLAGS: dict[str, dict[str, Sense]] = {"pareto_acc_energy": {"accuracy": "max", "energy_uj": "min"},
         "pareto_acc_latency": {"accuracy": "max", "latency_us": "min"},
         "pareto_energy_latency": {"energy_uj": "min", "latency_us": "min"}}


def pareto_flags(points: pd.DataFrame) -> pd.DataFrame:
    """The :data:`FLAGS` columns of ``points`` (False for failed points), per network."""
    out = pd.DataFrame(False, index=points.index, columns=list(FLAGS))
    ok = points[points["error"].isna()]
    for _, group in ok.groupby("network", sort=False, dropna=False):
        for flag, objectives in FLAGS.items():
            out.loc[group.index, [flag]] = pareto_front(group, objectives).to_frame(flag)
    return out


def summary(results: Results) -> pd.DataFrame:
    """One row per point (module docstring), in point order."""
    p = results.points
    cols = ["point_hash", "network", "workload", "recipe", *results.axes]
    table = p[[c for c in cols if c in p.columns]].copy()
    for m in METRICS:
        table[m] = p[m] if m in p.columns else float("nan")
    table = table.join(pareto_flags(p))
    table["error"] = p["error"]
    return table.loc[p.sort_values(["sweep", "point_index"], kind="stable").index]


def _readable(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    out["point_hash"] = out["point_hash"].str[:10]
    out["error"] = out["error"].fillna("").str.slice(0, 60)
    return out


def write_tables(results: Results, out: Path, stem: str = "summary") -> list[Path]:
    """``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex`` in ``out`` (atomically)."""
    table = summary(results)
    readable = _readable(table)
    require("jinja2")  # pandas' LaTeX writer
    files = {
        f"{stem}.csv": table.to_csv(index=False),
        f"{stem}.md": readable.to_markdown(index=False, floatfmt=".4g") + "\n",
        f"{stem}.tex": readable.to_latex(index=False, float_format="%.4g", na_rep="--",
                                         escape=True),
    }
    out.mkdir(parents=True, exist_ok=True)
    return [write_atomic(out / name, text) for name, text in files.items()]
