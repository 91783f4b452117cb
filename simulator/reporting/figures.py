"""Trade-off figures with Pareto fronts: accuracy vs energy / latency, TOPS/W vs area.

matplotlib's object API only (``Figure``, no ``pyplot``: no global figure state). Every figure
has a title, axes with units, a legend, and its Pareto front drawn as a black step line through
ringed, labelled points. Files are written atomically in each asked format (PNG at 150 dpi,
SVG with text kept as text so labels can be searched and read back).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.files import write_atomic
from simulator.frontend._deps import require
from simulator.reporting.pareto import Sense, pareto_front

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
LABELS = {
    "energy_uj": "energy per inference (µJ)",
    "latency_us": "latency per inference (µs)",
    "accuracy": "top-1 accuracy (%)",
    "tops_per_w": "efficiency (TOPS/W)",
    "area_mm2": "area (mm²)",
}


def figure(width: float, height: float) -> Any:
    """A new constrained-layout ``matplotlib.figure.Figure`` (needs the ``plot`` extra)."""
    require("matplotlib")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Any, out: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """Write ``fig`` as ``out/<stem>.<fmt>`` for each format, atomically."""
    import matplotlib

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "approxsim"}):
            fig.savefig(buf, format=fmt, dpi=150)
        paths.append(write_atomic(out / f"{stem}.{fmt}", buf.getvalue()))
    return paths


def colours(n: int) -> list[Any]:
    """``n`` distinguishable colours: tab10, then tab20, without their greys (grey is the
    colour of marker-style legend entries)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 9 else "tab20"]
    greys = {7} if cmap.N == 10 else {14, 15}
    usable = [cmap(i) for i in range(cmap.N) if i not in greys]
    return [usable[i % len(usable)] for i in range(n)]


@dataclass(frozen=True, slots=True)
class Panel:
    """One scatter panel: ``x`` against ``y`` with the front of ``objectives``; ``logx`` /
    ``logy`` allow a log axis (used when the values span more than 20x)."""

    x: str
    y: str
    objectives: Mapping[str, Sense]
    logx: bool = True
    logy: bool = False


ACC_ENERGY = Panel("energy_uj", "accuracy", {"accuracy": "max", "energy_uj": "min"})
ACC_LATENCY = Panel("latency_us", "accuracy", {"accuracy": "max", "latency_us": "min"})
EFFICIENCY_AREA = Panel("area_mm2", "tops_per_w", {"tops_per_w": "max", "area_mm2": "min"},
                        logy=True)


def _values(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col] * 100.0 if col == "accuracy" else df[col]


def _value(row: pd.Series, col: str) -> float:
    return float(row[col]) * (100.0 if col == "accuracy" else 1.0)


def _wide(values: pd.Series) -> bool:
    """Log scale only for positive values spanning more than 20x (else ticks read badly)."""
    v = values.dropna()
    return bool(len(v)) and float(v.min()) > 0 and float(v.max()) / float(v.min()) > 20


def _panel(ax: Any, df: pd.DataFrame, panel: Panel, hue: str, style: str | None,
           hue_colour: Mapping[Any, Any], style_marker: Mapping[Any, str],
           label_front: bool) -> None:
    for key, group in df.groupby(hue, sort=False, dropna=False):
        for skey, sub in (group.groupby(style, sort=False, dropna=False) if style
                          else [(None, group)]):
            ax.scatter(_values(sub, panel.x), _values(sub, panel.y), s=36, alpha=0.85,
                       color=hue_colour[key], marker=style_marker.get(skey, "o"),
                       edgecolors="none", zorder=2)
    front = df[pareto_front(df, panel.objectives)].sort_values(panel.x)
    if len(front):
        ax.plot(_values(front, panel.x), _values(front, panel.y), color="black", lw=1.2,
                ls="--", drawstyle="steps-post", zorder=3, label="Pareto front")
        ax.scatter(_values(front, panel.x), _values(front, panel.y), s=110,
                   facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
        if label_front:  # one label per position: tied points (same x and y) share it
            at: dict[tuple[float, float], dict[str, list[str]]] = {}
            for _, r in front.iterrows():
                names = at.setdefault((_value(r, panel.x), _value(r, panel.y)), {})
                names.setdefault(str(r[hue]), []).extend([str(r[style])] if style else [])
            for xy, names in at.items():
                text = "; ".join(h + (f" / {', '.join(st)}" if st else "")
                                 for h, st in names.items())
                ax.annotate(text, xy, xytext=(5, 4), textcoords="offset points", fontsize=7,
                            zorder=5)
    if panel.logx and _wide(_values(df, panel.x)):
        ax.set_xscale("log")
    if panel.logy and _wide(_values(df, panel.y)):
        ax.set_yscale("log")
    ax.set_xlabel(LABELS.get(panel.x, panel.x))
    ax.set_ylabel(LABELS.get(panel.y, panel.y))
    ax.grid(True, which="both", alpha=0.25)


def tradeoff(points: pd.DataFrame, panels: Sequence[Panel], title: str, *,
             hue: str = "recipe", style: str | None = None, facet: str = "network",
             label_front: bool = True) -> Any:
    """Scatter panels (columns) per ``facet`` value (rows), each with its Pareto front.

    ``hue`` colours points, ``style`` picks their marker; both get a legend."""
    from matplotlib.lines import Line2D

    needed = {c for p in panels for c in (p.x, p.y)}
    df = points.dropna(subset=sorted(needed))
    if hue not in df or df[hue].isna().all():
        hue = "workload"
    if style is not None and (style not in df or df[style].nunique(dropna=False) < 2):
        style = None
    facets = list(df[facet].drop_duplicates()) if facet in df else [None]
    hues = list(df[hue].drop_duplicates())
    hue_colour = dict(zip(hues, colours(len(hues)), strict=True))
    styles = list(df[style].drop_duplicates()) if style else []
    style_marker = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(styles)}
    # facets in rows of the panels; with a single panel, facets side by side
    across = len(panels) == 1 and len(facets) > 1
    rows, cols = (1, len(facets)) if across else (max(len(facets), 1), len(panels))
    fig = figure(5.2 * cols + 2.6, 4.2 * rows + 0.8)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, fv in enumerate(facets):
        sub = df if fv is None else df[df[facet] == fv]
        for j, panel in enumerate(panels):
            ax = axes[0][i] if across else axes[i][j]
            _panel(ax, sub, panel, hue, style, hue_colour, style_marker, label_front)
            if fv is not None and len(facets) > 1:
                ax.set_title(f"{facet} {fv}", fontsize=10)
    handles = [Line2D([], [], ls="", marker="o", color=hue_colour[h], label=str(h))
               for h in hues]
    handles += [Line2D([], [], ls="", marker=style_marker[s], color="grey", label=str(s))
                for s in styles]
    handles.append(Line2D([], [], color="black", ls="--", marker="o", mfc="none",
                          label="Pareto front"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8,
               title=f"{hue}" + (f" / {style}" if style else ""), title_fontsize=8)
    fig.suptitle(title)
    if df.empty:
        for ax in axes.ravel():
            ax.text(0.5, 0.5, "no points with these columns", ha="center", va="center",
                    transform=ax.transAxes)
    return fig


def scale(values: pd.Series, unit: str) -> tuple[float, str]:
    """A divisor and a label so the largest of ``values`` reads between 1 and 1000."""
    top = float(values.abs().max()) if len(values) else 0.0
    if unit == "pJ":
        for div, name in ((1e6, "µJ"), (1e3, "nJ")):
            if top >= div:
                return div, name
        return 1.0, "pJ"
    exp = min(int(math.floor(math.log10(top) / 3) * 3), 9) if top > 0 else 0
    words = {3: "thousands", 6: "millions", 9: "billions"}
    return (10.0 ** exp, f"{unit} ({words[exp]})") if exp > 0 else (1.0, unit)
