"""Fold classes: a layer's folds as a few classes with multiplicities, never one by one.

Along the innermost loop of a nest that is not trivial, consecutive folds are identical but
for their first and last iteration (which start or finish an operand's reuse or a partial
sum, and hold the edge chunk): a decode GEMV on an 8x8 array has ~700 k folds in runs of 512
such folds. :func:`fold_classes` builds the fold table (:func:`~simulator.mapping.nest.
fold_table`) of the same nest on a grid whose innermost loop has three iterations (first,
one middle, last) and gives each row its multiplicity (``n - 2`` for the middle one);
:func:`build_tiles_segments` then groups the classes into exactly the tiles that
:func:`~simulator.mapping.tiles.build_tiles` builds from every fold, with per-tile sums in
closed form (prefix sums over the classes' pieces), for several layers' tables in one pass
(the layers a simulation maps ahead, :func:`simulator.simulation.simulate`), each getting its
own tiles. Cost: O(classes + tiles), not O(folds).

**When it applies** (else the caller uses every fold, the long way): the innermost non-trivial
loop is either the innermost within-tile loop over a tile's units (each tile's units become
first, one middle and last; the tiles of one dimension hold equal counts but the last) or,
when every within-tile loop runs over one unit, a tile loop; no partial sums are read back
(read-after-write pins a fold to its producer), and no zero-skipping lane work (each fold's
busiest lane differs).
Exactness is tested fold against class (``tests/test_fold_classes.py``): identical tiles,
cycles and counts on random layers and nests.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping

import numpy as np

from simulator.mapping.nest import DIMS, Axis, FoldTable, Grid, Nest, OperandBytes, Storage
from simulator.mapping.nest import fold_table as full_fold_table
from simulator.mapping.schedule import TileSchedule, union_sorted, whole_up_to
from simulator.mapping.tiles import TARGET_TILES

#: Fewest iterations of the innermost loop for which classes are worth building.
MIN_RUN = 4


def fold_classes(grid: Grid, nest: Nest, storage: Mapping[str, Storage],
                 nbytes: Mapping[str, OperandBytes]) -> tuple[FoldTable, np.ndarray] | None:
    """The fold table of ``nest`` with its innermost run of identical folds collapsed
    (module docstring) and each row's multiplicity, or ``None`` when that does not apply."""
    tiles = {d: grid.axes[d].tiles(nest.per_tile[d]) for d in DIMS}
    busy_within = [d for d in grid.within if int(tiles[d][1].max()) > 1]
    if busy_within:
        return _within_classes(grid, nest, storage, nbytes, busy_within[-1], tiles)
    inner = [d for d in nest.order if len(tiles[d][0]) > 1]
    if not inner:
        return None
    d = inner[-1]
    n = len(tiles[d][0])
    if n < MIN_RUN:
        return None
    axis = grid.axes[d]
    if axis.units is None:
        per = min(nest.per_tile[d], axis.size)
        last = axis.size - per * (n - 1)
        reduced = Axis(2 * per + last)
    else:
        units = axis.units[[0, 1, n - 1]]
        reduced = Axis(int(units.sum()), units)
    small = dataclasses.replace(grid, axes={**grid.axes, d: reduced})
    ft = full_fold_table(small, nest, storage, nbytes)
    mult = np.where(ft.tile[d] == 1, n - 2, 1).astype(np.int64)
    return (ft, mult) if _raw_ok(ft, mult, d) else None


def _raw_ok(ft: FoldTable, mult: np.ndarray, d: str) -> bool:
    """Read-after-write survives the classes: partial sums are read back only by single
    folds from single folds, and ``d`` does not merge output slices (K only)."""
    raw = ft.producer >= 0
    if not raw.any():
        return True
    return d == "K" and bool(np.all(mult[raw] == 1)) and bool(np.all(mult[ft.producer[raw]] == 1))


def _within_classes(grid: Grid, nest: Nest, storage: Mapping[str, Storage],
                    nbytes: Mapping[str, OperandBytes], d: str,
                    tiles: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
                    ) -> tuple[FoldTable, np.ndarray] | None:
    """Classes along the innermost within-tile loop ``d`` (the folds over a tile's units of
    ``d``): each tile's units become first, one middle, last (a tile of fewer than three
    units keeps them), the middle one standing for the tile's ``count - 2``."""
    first, count, _ = tiles[d]
    per = int(count.max())
    if per < MIN_RUN:
        return None
    units = grid.axes[d].units
    assert units is not None  # a within-tile loop runs over a spatial axis
    # per tile its first, second and last unit (all of a tile of fewer than three)
    k = np.minimum(count, 3)
    tile_of = np.repeat(np.arange(len(first)), k)
    j = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    c = count[tile_of]
    pick = first[tile_of] + np.where(j < 2, j, c - 1)
    mid_count = np.where((c >= 3) & (j == 1), c - 2, 1)
    small_units = units[pick]
    small = dataclasses.replace(grid, axes={**grid.axes, d: Axis(int(small_units.sum()),
                                                                 small_units)})
    ft = full_fold_table(small, dataclasses.replace(nest, per_tile={**nest.per_tile, d: 3}),
                         storage, nbytes)
    mult = mid_count.astype(np.int64)[ft.unit[d]]
    return (ft, mult) if _raw_ok(ft, mult, d) else None


def build_tiles_segments(busy: np.ndarray, loads: Mapping[str, np.ndarray],
                         stores: np.ndarray, producer: np.ndarray, mult: np.ndarray,
                         capacity: Mapping[str, np.ndarray], head: Mapping[str, np.ndarray],
                         tail: np.ndarray, store_tail: np.ndarray, rows: np.ndarray
                         ) -> list[TileSchedule]:
    """:func:`~simulator.mapping.tiles.build_tiles` over fold classes (row ``r`` stands for
    ``mult[r]`` consecutive identical folds; ``producer``: the row whose stores a row's
    partial-sum loads read, both single folds), in closed form: the piece rules are that
    function's, per class, the grouping the same. Several layers' class tables at once
    (``rows[s]`` rows each, one table after another; ``producer`` indexes the stacked rows;
    ``capacity``: each buffer's tile room per table): every table gets exactly the tiles it
    gets alone, since every step is elementwise per row, each table's grouping is its own and
    its running sums start at its first row (``tests/test_fold_classes.py`` runs both, and
    classes against every fold)."""
    seg_lo = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
    margin = {"ifmap": 1.0, "filter": 1.0, "ofmap": 2.0}
    cap_s = {b: np.where(capacity[b] > 2 * margin[b], capacity[b] - margin[b], capacity[b])
             for b in margin}
    cap = {b: np.repeat(c, rows) for b, c in cap_s.items()}  # per row
    h = {op: np.minimum(head[op], loads[op]) for op in loads}
    st = np.minimum(store_tail, stores)
    buffer_of = {"ifmap": "ifmap", "filter": "filter", "psum": "ofmap"}
    whole, need = {}, {}

    with np.errstate(divide="ignore", invalid="ignore"):  # a buffer with no room left
        for op, b in (("ifmap", "ifmap"), ("filter", "filter")):
            whole[op] = h[op] <= cap[b] / 2
            need[op] = np.where(whole[op], (loads[op] - h[op]) /
                                np.maximum(cap[b] - h[op], 1e-9), loads[op] / cap[b])
        edge = np.maximum(h["psum"], st)
        whole["psum"] = edge <= cap["ofmap"] / 2
        rest_o = loads["psum"] - h["psum"] + stores - st
        total_o = loads["psum"] + stores
        need["psum"] = np.where(
            whole["psum"], np.where(total_o <= cap["ofmap"], total_o / cap["ofmap"],
                                    np.maximum(rest_o / np.maximum(cap["ofmap"] - edge, 1e-9),
                                               1.5)),
            total_o / cap["ofmap"])
    p = np.ones(len(busy), dtype=np.int64)
    for op, ratio in need.items():
        c = cap[buffer_of[op]]
        ok = np.isfinite(c) & (c > 0)
        p = np.where(ok, np.maximum(p, np.ceil(np.where(ok, ratio, 1.0) - 1e-9)
                                    .astype(np.int64)), p)
    share = 1.0 / p
    tl = np.where(whole["ifmap"] & whole["filter"] & whole["psum"], np.minimum(tail, busy), busy)
    rest_c = busy - tl
    q, rr = rest_c // p, rest_c % p

    every = np.arange(len(busy))

    def at(idx: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Gather per-class values at ``idx`` (all classes in order: no copy)."""
        return (lambda a: a) if idx is every else (lambda a: a[idx])

    def piece(k: np.ndarray, idx: np.ndarray, ends: bool = True) -> dict[str, np.ndarray]:
        """Piece ``k[i]`` of a fold of class ``idx[i]``, as build_tiles computes it (``ends``:
        also its busy cycles, head and tail, else the bytes only)."""
        g = at(idx)
        pr, sh = g(p), g(share)
        first, last = k == 0, k == pr - 1
        out = {"busy": g(q) + (k < g(rr)) + np.where(last, g(tl), 0)} if ends else {}
        hd = np.zeros(len(idx))
        for op, v in loads.items():
            hr, keep = g(h[op]), g(whole[op])
            hp = np.where(keep, np.where(first, hr, 0.0), hr * sh)
            out[op] = hp + (g(v) - hr) * sh
            if ends:
                hd = hd + np.where(first | ~keep, hp, 0.0)
        s_r = g(st)
        p_st = np.where(g(whole["psum"]), np.where(last, s_r, 0.0), s_r * sh)
        out["stores"] = (g(stores) - s_r) * sh + p_st
        if ends:
            out.update(head=hd, st=p_st, tail=np.where(last, g(tl), 0))
        return out

    def prefix(x: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Sums over the first ``x`` pieces (``0 <= x <= p``) of one fold of class ``idx``."""
        g = at(idx)
        sh, full = g(share), x == g(p)
        out = {"busy": x * g(q) + np.minimum(x, g(rr)) + np.where(full, g(tl), 0)}
        for op, v in loads.items():
            hr = g(h[op])
            kept = np.where(x >= 1, hr, 0.0)
            out[op] = x * ((g(v) - hr) * sh) + np.where(g(whole[op]), kept, x * (hr * sh))
        s_r = g(st)
        out["stores"] = x * ((g(stores) - s_r) * sh) + np.where(
            g(whole["psum"]), np.where(full, s_r, 0.0), x * (s_r * sh))
        return out

    mp = mult * p
    n_p = np.add.reduceat(mp, seg_lo)
    # the first, second and last piece of every class at once (rows of a (3, classes) array:
    # elementwise the same arithmetic as one call each); each table's largest
    ends = piece(np.stack([np.zeros_like(p), np.minimum(1, p - 1), p - 1]), every, False)
    largest = {b: np.maximum.reduceat((ends["psum"] + ends["stores"] if b == "ofmap"
                                       else ends[b]).max(axis=0), seg_lo).tolist()
               for b in ("ifmap", "filter", "ofmap")}
    first_piece = np.cumsum(mp) - mp
    off = first_piece[seg_lo]
    parts = []
    for s, n in enumerate(n_p.tolist()):
        group = max(1, -(-n // TARGET_TILES))
        for b in ("ifmap", "filter", "ofmap"):
            room, big = float(cap_s[b][s]), largest[b][s]
            if math.isfinite(room) and room > 0 and big > 0:
                group = min(group, max(1, int(room // (big * (1 + 1e-12)))))
        parts.append(np.arange(0, n, group, dtype=np.int64) + off[s])
    starts = np.concatenate(parts)
    raw = producer >= 0
    if raw.any():  # a fold reading partial sums back starts a tile
        starts = union_sorted(starts, first_piece[raw])
    stops = np.append(starts[1:], int(mp.sum()))
    # where every tile starts and stops: class, whole folds before it in the class, pieces
    # into one (a stop in its tile's table: the end of the class before, where it falls on
    # a class's start)
    row = np.concatenate([np.searchsorted(first_piece, starts, side="right"),
                          np.searchsorted(first_piece, stops, side="left")]) - 1
    j = np.concatenate([starts, stops]) - first_piece[row]
    whole_folds, x = j // p[row], j % p[row]
    # one fold of every class whole, and the pieces into one at each start and stop, in one
    # call (elementwise the same arithmetic as two)
    n_c, n_t = len(p), len(starts)
    both = prefix(np.concatenate([p, x]), np.concatenate([every, row]))
    names = ["busy", *loads, "stores"]
    ints = {}
    for k in names:
        fold_sum, within = both[k][:n_c], both[k][n_c:]
        per = fold_sum * mult
        before = np.zeros_like(per)  # a class's table's running sum up to it
        for lo, n in zip(seg_lo.tolist(), rows.tolist(), strict=True):
            if n > 1:
                before[lo + 1:lo + n] = np.cumsum(per[lo:lo + n - 1])
        cum = before[row] + whole_folds * fold_sum[row] + within
        ints[k] = (cum[n_t:] - cum[:n_t]).astype(np.int64) if k == "busy" else \
            whole_up_to(cum[n_t:]) - whole_up_to(cum[:n_t])
    all_loads = ints["ifmap"] + ints["filter"] + ints["psum"]
    # the first piece of every tile and its last (one call for both)
    last_idx = stops - 1
    e_row = np.searchsorted(first_piece, last_idx, side="right") - 1
    ends_t = piece(np.concatenate([x[:n_t], (last_idx - first_piece[e_row]) % p[e_row]]),
                   np.concatenate([row[:n_t], e_row]))
    first_of = {k: v[:n_t] for k, v in ends_t.items()}
    last_of = {k: v[n_t:] for k, v in ends_t.items()}
    t_lo = np.searchsorted(starts, off)
    after = _after(starts, first_piece, mp, producer)
    after = np.where(after >= 0, after - t_lo[np.searchsorted(off, starts, side="right") - 1],
                     -1)
    schedule = TileSchedule(
        busy_cycles=ints["busy"], ifmap_load_bytes=ints["ifmap"],
        filter_load_bytes=ints["filter"], psum_load_bytes=ints["psum"],
        store_bytes=ints["stores"],
        head_load_bytes=np.minimum(all_loads, np.ceil(first_of["head"] - 1e-9)
                                   .astype(np.int64)),
        tail_cycles=np.minimum(ints["busy"], last_of["tail"]),
        store_tail_bytes=np.minimum(ints["stores"], np.ceil(last_of["st"] - 1e-9)
                                    .astype(np.int64)),
        psum_after=after)
    if len(rows) == 1:
        return [schedule]
    bounds = np.append(t_lo, n_t).tolist()
    return [TileSchedule(**{f.name: getattr(schedule, f.name)[a:b]
                            for f in dataclasses.fields(TileSchedule)})
            for a, b in itertools.pairwise(bounds)]


def _after(starts: np.ndarray, first_piece: np.ndarray, pieces: np.ndarray,
           producer: np.ndarray) -> np.ndarray:
    """Per tile, the tile holding the last piece of the fold whose partial sums its first
    fold reads back (``-1``: none), as build_tiles records it."""
    out = np.full(len(starts), -1, dtype=np.int64)
    raw = np.flatnonzero(producer >= 0)
    if len(raw):
        prod = producer[raw]
        last = first_piece[prod] + pieces[prod] - 1
        out[np.searchsorted(starts, first_piece[raw])] = \
            np.searchsorted(starts, last, side="right") - 1
    return out
