"""Runs of repeated tiles: where a layer's tile sequence repeats a block of ``q`` tiles many
times in a row, and the shorter schedule that keeps a few blocks of each such run.

The engine (:func:`simulator.engine.run_tiles`) simulates the short schedule and adds, per
run, the removed blocks times the run's period, which it measures and verifies in the short
run's own events (a run whose events are not periodic around the cut is not shortened).
Here only the bookkeeping: which runs (:func:`find_runs`), the short schedule and the index
map for read-after-write dependencies (:func:`shorten`).

A run is a segment where tile ``t`` equals tile ``t + q`` in every field (the dependency as
a distance); the periods ``q`` tried are the short ones and the most frequent distances
between recurrences of a tile (a tile grouping of ``g`` folds over a nest that repeats every
``p`` folds repeats every ``lcm(p, g) / g`` tiles); runs are taken longest first, without
overlap. A run is not shortened if a read-after-write dependency reaches into its removed
part from outside it, or spans it.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass

import numpy as np

from simulator.mapping.schedule import TileSchedule

#: Periods always tried (tiles per block); longer ones come from the gaps between the
#: recurrences of each distinct tile (:func:`periods`), at most :data:`MAX_CANDIDATES`.
SHORT_PERIODS = 16
MAX_CANDIDATES = 48
#: Largest cyclicity (blocks per period of the engine's steady state) verified: a
#: latency-bound pipeline may alternate between two tiles' timings, etc.
CYCLICITY = 4
ALIGN = 12  # lcm(1, ..., CYCLICITY): removed blocks are a multiple of it


@dataclass(frozen=True, slots=True)
class Run:
    """Tiles ``[start, start + blocks * period)`` repeat a block of ``period`` tiles; the
    short schedule keeps the first ``head`` and the last ``tail`` blocks."""

    start: int
    period: int
    blocks: int
    head: int
    tail: int

    @property
    def removed(self) -> int:
        """Tiles left out of the short schedule."""
        return (self.blocks - self.head - self.tail) * self.period

    @property
    def cut(self) -> int:
        """First removed tile."""
        return self.start + self.head * self.period


def rows(t: TileSchedule) -> np.ndarray:
    """Every tile's fields as one row (the dependency as a distance, 0: none)."""
    idx = np.arange(t.n_tiles)
    dist = np.where(t.psum_after >= 0, idx - t.psum_after, 0)
    return np.stack([t.busy_cycles, t.ifmap_load_bytes, t.filter_load_bytes,
                     t.psum_load_bytes, t.store_bytes, t.head_load_bytes, t.tail_cycles,
                     t.store_tail_bytes, dist], axis=1)


def find_runs(t: TileSchedule, head: int, tail: int, window: int) -> list[Run]:
    """Runs worth shortening: at least ``head + tail + 2`` blocks, where ``head`` and
    ``tail`` blocks of at least ``window`` tiles each are kept (module docstring)."""
    n = t.n_tiles
    hb1, tb1 = _kept(1, head, tail, window)
    if n < max(2 * window, hb1 + tb1 + ALIGN + 2):
        return []
    ids = tile_ids(t)
    cands: list[tuple[int, int, int]] = []  # (-tiles, start, period)
    for q in periods(ids):
        if n <= 2 * q:
            continue
        hb, tb = _kept(q, head, tail, window)
        least = hb + tb + ALIGN + 2
        if n < least * q:
            continue
        eq = (ids[q:] == ids[:-q]).astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], eq, [0]])))
        blocks = (edges[1::2] - edges[::2] + q) // q
        long = blocks >= least
        cands.extend((-b * q, s, q) for s, b in zip(edges[::2][long].tolist(),
                                                    blocks[long].tolist(), strict=True))
    cands.sort()
    taken: list[tuple[int, int]] = []  # sorted, non-overlapping [start, end)
    out = []
    deps = _dependencies(t)
    for neg, s, q in cands:
        e = s - neg
        i = bisect.bisect_left(taken, (s, s))
        if (i > 0 and taken[i - 1][1] > s) or (i < len(taken) and taken[i][0] < e):
            continue
        hb, tb = _kept(q, head, tail, window)
        run = fit(Run(s, q, -neg // q, hb, tb))
        if run is None or _crossed(deps, run):
            continue
        taken.insert(i, (s, e))
        out.append(run)
    return sorted(out, key=lambda x: x.start)


def tile_ids(t: TileSchedule) -> np.ndarray:
    """One integer per tile, equal for tiles equal in every field (:func:`rows`)."""
    r = rows(t)
    order = np.lexsort(r.T[::-1])
    s = r[order]
    new = np.ones(len(s), dtype=bool)
    new[1:] = np.any(s[1:] != s[:-1], axis=1)
    ids = np.empty(len(s), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids


def periods(ids: np.ndarray) -> list[int]:
    """Candidate periods of the tiles ``ids`` (:func:`tile_ids`; module docstring)."""
    n = len(ids)
    order = np.argsort(ids, kind="stable")
    sid = ids[order]
    gaps: list[np.ndarray] = []
    for k in range(1, 5):  # distances to the k-th next occurrence of the same tile
        same = sid[k:] == sid[:-k]
        gaps.append((order[k:] - order[:-k])[same])
    dist = np.concatenate(gaps) if gaps else np.zeros(0, dtype=np.int64)
    dist = dist[(dist > SHORT_PERIODS) & (dist <= n // 3)]
    vals, counts = np.unique(dist, return_counts=True)
    top = vals[np.argsort(-counts, kind="stable")[:MAX_CANDIDATES]]
    return [*range(1, SHORT_PERIODS + 1), *sorted(int(v) for v in top)]


def _kept(q: int, head: int, tail: int, window: int) -> tuple[int, int]:
    """Blocks kept before and after the cut: enough to verify a period of up to
    :data:`CYCLICITY` blocks over ``window`` tiles on both sides of it."""
    per = -(-window // q)
    return max(head, per + 2 * CYCLICITY + 1), max(tail, per + 3 * CYCLICITY + 1)


def fit(run: Run) -> Run | None:
    """``run`` with its removed blocks a multiple of every cyclicity up to
    :data:`CYCLICITY` (more tail blocks kept), or None if too short for that."""
    removed = run.blocks - run.head - run.tail
    extra = removed % ALIGN
    if removed - extra < 2:
        return None
    return dataclasses.replace(run, tail=run.tail + extra)


def _dependencies(t: TileSchedule) -> tuple[np.ndarray, np.ndarray]:
    to = np.flatnonzero(t.psum_after >= 0)
    return t.psum_after[to], to


def _crossed(deps: tuple[np.ndarray, np.ndarray], run: Run) -> bool:
    """A dependency from outside the removed tiles into them, or over them."""
    src, dst = deps
    lo, hi = run.cut, run.cut + run.removed
    inside = (src >= lo) & (dst < hi)
    return bool(np.any((src < hi) & (dst >= lo) & ~inside))


def shorten(t: TileSchedule, runs: list[Run]) -> tuple[TileSchedule, np.ndarray]:
    """The schedule without the removed tiles of ``runs``, and for every kept tile its index
    in ``t``; dependencies follow their tiles."""
    keep = np.ones(t.n_tiles, dtype=bool)
    for run in runs:
        keep[run.cut: run.cut + run.removed] = False
    idx = np.flatnonzero(keep)
    new_of = np.cumsum(keep) - 1
    after = t.psum_after[idx]  # never into a removed part (find_runs)
    new_after = np.where(after >= 0, new_of[np.maximum(after, 0)], -1)
    short = dataclasses.replace(
        t, **{f.name: getattr(t, f.name)[idx] for f in dataclasses.fields(t)
              if f.name != "psum_after"}, psum_after=new_after.astype(np.int64))
    return short, idx
