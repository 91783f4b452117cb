"""Reports from result stores: tables (CSV, Markdown, LaTeX) and figures (PNG, SVG).

``write_report(["results/edge"], "report/")`` writes

========================================  ==================================================
``summary.{csv,md,tex}``                  one row per point (:mod:`~.tables`)
``accuracy_vs_energy.*``                  accuracy vs energy per inference, Pareto front, one
                                          row of panels per network (points with accuracy)
``accuracy_vs_latency.*``                 the same against latency
``efficiency_vs_area.*``                  TOPS/W vs area, Pareto front per network
``layer_energy.*``, ``layer_cycles.*``    stacked per-layer breakdowns of the chosen points
``roofline.*``                            one roofline per architecture of the chosen points
========================================  ==================================================

Chosen points: those given (hash prefixes), else the lowest-energy point of each workload (at
most four). The accuracy figures are left out when no point has an accuracy. Needs the
``plot`` extra (matplotlib, jinja2) and the ``sweep`` extra to read stores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from simulator.errors import OutputError
from simulator.files import check_output_dir, replace_dir_atomic, write_atomic
from simulator.reporting.breakdowns import layer_cycles, layer_energy, roofline
from simulator.reporting.diff import diff_points, explain
from simulator.reporting.figures import ACC_ENERGY, ACC_LATENCY, EFFICIENCY_AREA, save, tradeoff
from simulator.reporting.pareto import pareto_front
from simulator.reporting.results import ReportError, Results, load_results
from simulator.reporting.tables import summary, write_tables

REPORT_FORMAT = "approxsim-report/1"
MANIFEST = "report.json"

__all__ = ["ReportError", "Results", "diff_points", "explain", "load_results", "pareto_front",
           "summary", "write_diff", "write_report"]


def chosen(results: Results, refs: Sequence[str] = (), limit: int = 4) -> pd.DataFrame:
    """The points named by ``refs``, else the lowest-energy point of each workload."""
    if refs:
        return pd.DataFrame([results.point(r) for r in refs])
    ok = results.ok
    if ok.empty:
        raise ReportError("no point ran without error; nothing to draw")
    best = ok.loc[ok.groupby("workload", sort=False)["energy_uj"].idxmin()]
    return best.head(limit)


def _style(results: Results) -> str | None:
    return results.axes[0] if results.axes else None


def write_report(stores: Sequence[str | Path], out: str | Path, *,
                 formats: Sequence[str] = ("png", "svg"),
                 points: Sequence[str] = ()) -> list[Path]:
    """Write the tables and figures of the module docstring into the directory ``out``, as one
    set: built beside it and swapped in whole (:func:`~simulator.files.replace_dir_atomic`),
    with a ``report.json`` naming the stores and files. An existing ``out`` is replaced only
    if it is an approxsim report (or empty), never a user's folder. Returns the files."""
    results = load_results(stores)
    sel = chosen(results, points)  # every bad --point before any work
    dest = Path(out)
    check_output_dir(dest.parent)
    if dest.exists() and not _replaceable(dest):
        raise OutputError(f"{dest}: exists and is not an approxsim report (no {MANIFEST}); "
                          f"not replaced")
    names: list[str] = []

    def fill(tmp: Path) -> None:
        names.extend(p.name for p in _write(results, sel, tmp, formats))
        manifest = {"format": REPORT_FORMAT, "stores": [str(p) for p in results.paths],
                    "files": names}
        write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    replace_dir_atomic(dest, fill, _replaceable)
    return [dest / n for n in names]


def _replaceable(d: Path) -> bool:
    return (d / MANIFEST).is_file() or (d.is_dir() and not any(d.iterdir()))


def _write(results: Results, sel: pd.DataFrame, dest: Path,
           formats: Sequence[str]) -> list[Path]:
    paths = write_tables(results, dest)
    ok = results.ok
    name = ", ".join(p.name for p in results.paths)
    hue = "recipe" if ok["recipe"].notna().any() else "workload"
    style = _style(results)
    if ok["accuracy"].notna().any():
        acc = ok[ok["accuracy"].notna()]
        for stem, panel, what in (("accuracy_vs_energy", ACC_ENERGY, "energy per inference"),
                                  ("accuracy_vs_latency", ACC_LATENCY, "latency")):
            fig = tradeoff(acc, [panel], f"Accuracy vs {what} ({name})", hue=hue, style=style)
            paths += save(fig, dest, stem, formats)
    fig = tradeoff(ok, [EFFICIENCY_AREA], f"Efficiency vs area ({name})", hue=hue,
                   style=style, label_front=False)
    paths += save(fig, dest, "efficiency_vs_area", formats)
    paths += save(layer_energy(results.layers, sel), dest, "layer_energy", formats)
    paths += save(layer_cycles(results.layers, sel), dest, "layer_cycles", formats)
    paths += save(roofline(results.layers, sel), dest, "roofline", formats)
    return paths


def write_diff(stores: Sequence[str | Path], a: str, b: str,
               out: str | Path | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """:func:`diff_points` of A and B; with ``out``, also ``diff_<a>_<b>.{csv,md}``."""
    diff = diff_points(load_results(stores), a, b)
    if out is None:
        return diff, []
    dest = check_output_dir(out)
    stem = f"diff_{diff.attrs['a'][:10]}_{diff.attrs['b'][:10]}"
    md = (f"# {explain(diff)}\n\nA = `{diff.attrs['a']}`, B = `{diff.attrs['b']}`; deltas are "
          f"B - A (energy in pJ).\n\n" + diff.to_markdown(index=False, floatfmt=".4g") + "\n")
    return diff, [write_atomic(dest / f"{stem}.csv", diff.to_csv(index=False)),
                  write_atomic(dest / f"{stem}.md", md)]
