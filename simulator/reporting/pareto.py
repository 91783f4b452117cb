"""Pareto fronts: the points no other point beats on every objective.

Point ``j`` *dominates* ``i`` when it is at least as good on every objective and strictly
better on one; the front is the set of points nobody dominates (equal points are both on it).
Rows with a NaN objective are never on the front. Two objectives take the sort-and-sweep
path, ``O(n log n)`` (Kung, Luccio, Preparata, JACM 1975); more take the pairwise test in
blocks, ``O(n^2)`` comparisons; a test runs both on the same frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

Sense = Literal["min", "max"]


def _costs(df: pd.DataFrame, objectives: Mapping[str, Sense]) -> np.ndarray:
    if not objectives:
        raise ValueError("at least one objective is needed")
    bad = {k: v for k, v in objectives.items() if v not in ("min", "max")}
    if bad:
        raise ValueError(f"objective senses must be 'min' or 'max' (got {bad})")
    cols = [df[c].to_numpy(dtype=float) * (1.0 if s == "min" else -1.0)
            for c, s in objectives.items()]
    return np.column_stack(cols) if cols else np.empty((len(df), 0))


def _front_pairwise(c: np.ndarray, block: int = 1024) -> np.ndarray:
    on = np.ones(len(c), dtype=bool)
    for start in range(0, len(c), block):
        part = c[start:start + block]                       # (b, k) candidates
        le = np.all(c[None, :, :] <= part[:, None, :], axis=2)  # (b, n): j no worse than i
        lt = np.any(c[None, :, :] < part[:, None, :], axis=2)   # j strictly better somewhere
        on[start:start + block] = ~np.any(le & lt, axis=1)
    return on


def _front_2d(c: np.ndarray) -> np.ndarray:
    """Sort by the first objective, then sweep the best second objective seen so far."""
    on = np.zeros(len(c), dtype=bool)
    order = np.lexsort((c[:, 1], c[:, 0]))
    a, b = c[order, 0], c[order, 1]
    best = np.inf
    i = 0
    n = len(order)
    while i < n:  # one group of equal first objective at a time
        j = i
        while j < n and a[j] == a[i]:
            j += 1
        low = b[i]  # lexsort: the group's smallest second objective comes first
        if low < best:
            on[order[i:j][b[i:j] == low]] = True
            best = low
        i = j
    return on


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, Sense],
                 method: Literal["auto", "pairwise"] = "auto") -> pd.Series:
    """A boolean Series (``df``'s index): True for rows on the Pareto front.

    ``objectives`` maps column names to ``"min"`` or ``"max"``, e.g.
    ``{"energy_uj": "min", "accuracy": "max"}``."""
    c = _costs(df, objectives)
    ok = ~np.isnan(c).any(axis=1)
    out = np.zeros(len(df), dtype=bool)
    valid = c[ok]
    if len(valid):
        fast = method == "auto" and valid.shape[1] == 2
        out[ok] = _front_2d(valid) if fast else _front_pairwise(valid)
    return pd.Series(out, index=df.index, name="pareto")
