"""Results of one or more stores, read back as two tidy frames, and the points a user names.

``arch_label`` in a report is the architecture a point ran on, shown by its axis values
(``rows=16, weights=skip``: the last part of each dotted path), so two points of one sweep
differ visibly; stores of different sweeps keep their own columns (absent: empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simulator.errors import SimulatorError
from simulator.sweep.store import ResultStore


class ReportError(SimulatorError):
    """A report cannot be made as asked (no results, an unknown point, ...)."""


@dataclass(frozen=True)
class Results:
    """Points and layers of the stores at ``paths``; ``axes``: their input axes, in order."""

    points: pd.DataFrame
    layers: pd.DataFrame
    axes: tuple[str, ...]
    paths: tuple[Path, ...]

    @property
    def ok(self) -> pd.DataFrame:
        """The points that ran (no ``error``)."""
        return self.points[self.points["error"].isna()]

    def point(self, ref: str) -> pd.Series:
        """The point whose hash starts with ``ref`` (at least 6 characters)."""
        if len(ref) < 6:
            raise ReportError(f"point {ref!r}: give at least 6 characters of its hash")
        hit = self.points[self.points["point_hash"].str.startswith(ref)]
        if len(hit) == 0:
            raise ReportError(f"point {ref!r}: no point hash starts with it in "
                              f"{', '.join(map(str, self.paths))}")
        if len(hit) > 1:
            raise ReportError(f"point {ref!r}: ambiguous, {len(hit)} points match "
                              f"({', '.join(hit['point_hash'].str[:12])})")
        return hit.iloc[0]


def arch_label(row: pd.Series, axes: Sequence[str]) -> str:
    """``name=value`` of the point's axes (short names), or its architecture's name."""
    parts = [f"{a.rsplit('.', 1)[-1]}={row[a]}" for a in axes
             if a in row.index and pd.notna(row[a])]
    return ", ".join(parts) if parts else str(row.get("arch_name", "?"))


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """One dtype per column whatever the parts held: a part whose column was all empty reads
    back as untyped nulls, which would turn a float column into objects (and NaN into None)
    depending on how points were grouped into parts. Numbers become float64, text keeps
    ``None`` for missing."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        kind = pd.api.types.infer_dtype(s, skipna=True)
        if kind in ("floating", "integer", "mixed-integer-float"):
            out[col] = pd.to_numeric(s).astype(float)
        elif kind in ("string", "empty"):
            out[col] = pd.Series(s.astype(object).where(s.notna(), None), index=s.index,
                                 dtype=object)
    return out


def load_results(paths: Sequence[str | Path]) -> Results:
    """Read every store in ``paths``; a point hash present twice is an error."""
    if not paths:
        raise ReportError("no results store given")
    stores = [ResultStore.open(p) for p in paths]
    axes: list[str] = []
    for s in stores:
        axes += [a for a in s.axes if a not in axes]
    # in point order (store, then point_index), whatever order the points finished in
    points = pd.concat([s.points().assign(_store=i) for i, s in enumerate(stores)],
                       ignore_index=True)
    layers = pd.concat([s.layers().assign(_store=i) for i, s in enumerate(stores)],
                       ignore_index=True)
    if "point_index" in points:
        points = points.sort_values(["_store", "point_index"], kind="stable")
        points = points.drop(columns="_store").reset_index(drop=True)
    if "point_index" in layers:
        layers = layers.sort_values(["_store", "point_index"], kind="stable")
        layers = layers.drop(columns="_store").reset_index(drop=True)
    points, layers = _normalise(points), _normalise(layers)
    if len(points) == 0 or "error" not in points:
        raise ReportError(f"{', '.join(map(str, paths))}: no finished points yet")
    dup = points["point_hash"][points["point_hash"].duplicated()]
    if len(dup):
        raise ReportError(f"point {dup.iloc[0][:12]} is in more than one store; give each "
                          f"once")
    points = points.assign(arch_label=[arch_label(r, axes) for _, r in points.iterrows()])
    if len(layers):
        layers = layers.merge(points[["point_hash", "arch_label"]], on="point_hash",
                              how="left")
    return Results(points, layers, tuple(axes), tuple(Path(p) for p in paths))
