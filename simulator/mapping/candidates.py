"""The tiling search's candidates (:mod:`.search`): their enumeration (loop orders x tile
sizes, one per class of orders that differ only in where one-tile loops sit) and, as arrays
vectorised over candidates, what each one's loop order and tile sizes make of a GEMM's axes
and of the four storage levels of its nest (:mod:`.nest`): what :func:`.nest.traffic` and
the estimate (:mod:`.estimate`) read. Nothing here depends on a buffer, an operand's bytes
or a price, so a grid's candidates are derived once and shared
(:func:`candidate_geometries`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from simulator.mapping.nest import DIM_INDEX, DIMS, IRRELEVANT, OPERAND_DIMS, ORDERS, Grid, Nest
from simulator.mapping.options import MappingContext


def candidate_arrays(grid: Grid, orders: np.ndarray,
                     per_tile: np.ndarray) -> dict[str, np.ndarray]:
    """Per-candidate geometry: tile counts ``n``, largest tile extents ``ext``, units per
    tile ``within``, fold ``positions`` (each ``(n_cand, 3)`` in :data:`DIMS` order) and the
    position of every dimension in the loop order, ``pos`` (1 = outermost); and what
    :func:`.nest.traffic` reads of them at each of the four levels, which depends on no buffer
    or operand (per dimension ``j``, shape ``(3, n_cand, 4)``): ``inside`` (loop ``j`` inside
    the level), ``extent`` (an operand's extent along ``j`` there: the whole dimension or one
    tile), ``rep`` (fetches of an operand irrelevant to ``j``), ``reuse`` (it is kept across
    ``j``'s iterations), ``stream_rep`` (``(3, n_cand, 1)``: its fetches when it streams);
    ``fetched_once`` (``(n_cand, 4)``: no loop outside the level iterates); ``area_<op>``
    (``(n_cand, 4)``: the elements of an operand kept at each level, 0 where it streams);
    ``trivial``
    (``(n_cand, 3)``: one tile spans the dimension), ``tie`` (``(n_cand, 4)``, levels inner
    first: ``1 + 1e-12 x`` the non-trivial loops inside the level); and, for the search's
    estimate, ``folds`` and float copies ``positions_f``, ``n_f``, ``ext_f``."""
    n, ext, within, positions, full = axis_arrays(grid, per_tile)
    return level_arrays(orders, n, ext, within, positions,
                        np.broadcast_to(full, (len(per_tile), 3)))


def axis_arrays(grid: Grid, per_tile: np.ndarray) -> tuple[np.ndarray, ...]:
    """What each candidate's tile sizes make of the grid's axes (``(n_cand, 3)`` each, in
    :data:`DIMS` order): tile counts, largest tile extents, units per tile and fold positions;
    and the axes' sizes (``(3,)``, float64). The long way of :func:`stacked_axis_arrays`."""
    ax = [grid.axes[d] for d in DIMS]
    cols = range(3)
    return (np.stack([ax[j].tile_count(per_tile[:, j]) for j in cols], axis=1),
            np.stack([ax[j].max_extent(per_tile[:, j]) for j in cols], axis=1),
            np.stack([ax[j].within_units(per_tile[:, j]) for j in cols], axis=1),
            np.stack([ax[j].positions(per_tile[:, j]) for j in cols], axis=1),
            np.array([a.size for a in ax], dtype=np.float64))


def stacked_axis_arrays(grids: Sequence[Grid], per_tiles: Sequence[np.ndarray]
                        ) -> tuple[np.ndarray, ...]:
    """:func:`axis_arrays` of several grids' candidates, one grid's after another, in one
    pass: each axis's size, unit count and cumulative unit extents become per-candidate
    arrays and :class:`~.nest.Axis`'s integer formulas apply elementwise (the same integers:
    ``tests/test_search.py``); the sizes per candidate (``(n_cand, 3)``, float64)."""
    lengths = [len(p) for p in per_tiles]
    g = np.repeat(np.arange(len(grids)), lengths)
    pt = np.concatenate(per_tiles)
    axes = [grid.axes[d] for grid in grids for d in DIMS]
    size = np.array([a.size for a in axes], dtype=np.int64).reshape(-1, 3)
    streamed = np.array([a.units is None for a in axes]).reshape(-1, 3)
    units = np.array([a.n_units for a in axes], dtype=np.int64).reshape(-1, 3)
    # every spatial axis's cumulative unit extents in one flat array, after a leading 0
    cums = [np.cumsum(a.units) for a in axes if a.units is not None]
    starts = np.zeros(len(axes), dtype=np.int64)
    starts[~streamed.reshape(-1)] = 1 + np.concatenate([[0], np.cumsum(
        [len(c) for c in cums])[:-1]]) if cums else 0
    flat = np.concatenate([np.zeros(1, dtype=np.int64), *cums])
    at_s, at_u, at_z = streamed[g], units[g], size[g]
    total = np.where(at_s, at_z, at_u)
    n = -(-total // np.minimum(pt, total))
    spatial = np.minimum(pt, at_u)
    ext = np.where(at_s, np.minimum(pt, at_z),
                   flat[np.where(at_s, 0, starts.reshape(-1, 3)[g] + spatial - 1)])
    return (n, ext, np.where(at_s, 1, spatial), np.where(at_s, n, at_u),
            at_z.astype(np.float64))


def level_arrays(orders: np.ndarray, n: np.ndarray, ext: np.ndarray, within: np.ndarray,
                 positions: np.ndarray, full: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`candidate_arrays` from :func:`axis_arrays`' per-candidate quantities, with
    ``full`` the sizes of each candidate's axes (``(n_cand, 3)``): candidates of different
    grids in one call (:func:`.search.choose_all`) get what one call per grid would give
    (every operation is elementwise per candidate)."""
    pos = np.empty_like(orders)  # the inverse permutation of each order (its argsort)
    np.put_along_axis(pos, orders, np.arange(1, 4, dtype=orders.dtype)[None, :], axis=1)
    n_cand = n.shape[0]
    level = np.arange(4)[None, None, :]
    # loads(l) = product of the tile counts of the loops at positions <= l
    ordered_n = np.take_along_axis(n, orders, axis=1).astype(np.float64)
    loads = np.concatenate([np.ones((n_cand, 1)), np.cumprod(ordered_n, axis=1)], axis=1)
    inside = pos.T[:, :, None] > level
    extent = np.where(inside, full.T[:, :, None], ext.T[:, :, None])
    reuse = (inside & (n.T[:, :, None] > 1)) | (within.T[:, :, None] > 1)
    # a dimension of one tile spanning it all is *trivial*: whether its loop is inside a
    # level changes nothing below, so levels differing only in trivial loops are one option;
    # ties between options go to the one with fewer non-trivial loops inside (:func:`.nest.traffic`)
    trivial = (n == 1) & (ext == full)
    counted = inside & ~trivial.T[:, :, None]
    inner_loops = counted[0].astype(np.int64) + counted[1] + counted[2]
    return {"n": n, "ext": ext, "within": within, "positions": positions, "pos": pos,
            "orders": orders, "inside": inside,
            "extent": extent,
            "rep": np.where(~inside, n.T[:, :, None], 1).astype(np.float64),
            "reuse": reuse,
            # per operand, the elements its buffer keeps at each level (0: it streams)
            # (x 0 or 1: the extents are finite and positive, so the product is where's)
            **{f"area_{op}": extent[DIM_INDEX[a]] * extent[DIM_INDEX[b]]
               * reuse[DIM_INDEX[IRRELEVANT[op]]] for op, (a, b) in OPERAND_DIMS.items()},
            "stream_rep": positions.T[:, :, None].astype(np.float64),
            "fetched_once": loads <= 1, "trivial": trivial,
            "tie": (1 + 1e-12 * inner_loops)[:, ::-1],
            # in float64 for the search's estimate (:mod:`.search`): folds, and per dimension
            # fold positions, tile counts and largest tile extents
            "folds": np.prod(positions, axis=1).astype(np.float64),
            "positions_f": positions.astype(np.float64), "n_f": n.astype(np.float64),
            "ext_f": ext.astype(np.float64)}


_RATIO = 2.0


def tile_choices(total: int) -> np.ndarray:
    """``ceil(total / j)`` for ``j`` on a geometric grid from 1 to ``total`` (distinct)."""
    js, j = [1], 1.0
    while j < total:
        j *= _RATIO
        js.append(min(total, math.ceil(j)))
    vals = {-(-total // k) for k in js} | {1, total}
    return np.array(sorted(vals, reverse=True), dtype=np.int64)


def default_nest(grid: Grid, outer: str, inner: str) -> Nest:
    """The dataflow's fixed order: one fold per tile, the whole stream per fold."""
    stream = grid.stream
    order = (outer, inner, stream) if stream else (outer, inner,
                                                   next(d for d in DIMS if d not in
                                                        (outer, inner)))
    per = {d: (grid.axes[d].size if grid.axes[d].streamed else 1) for d in DIMS}
    return Nest(order, per)


def _first_of_class() -> np.ndarray:
    """``(8, 6)``: for each set of trivial dimensions (bit ``j`` set: dimension ``DIMS[j]``
    is one tile spanning it), whether each of :data:`ORDERS` is the first of the orders that
    agree on the sequence of the non-trivial loops."""
    out = np.zeros((8, len(ORDERS)), dtype=bool)
    for pattern in range(8):
        seen: set[tuple[str, ...]] = set()
        for i, order in enumerate(ORDERS):
            key = tuple(d for d in order if not pattern >> DIM_INDEX[d] & 1)
            out[pattern, i] = key not in seen
            seen.add(key)
    return out


_FIRST_OF_CLASS = _first_of_class()
#: :data:`~.nest.ORDERS` as dimension indices
_ORDER_INDEX = np.array([[DIM_INDEX[d] for d in o] for o in ORDERS])
_ORDER_INDEX.flags.writeable = False


def _candidates(grid: Grid, first: Nest, search: bool, distinct: bool = True
                ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """The candidates' loop orders and tile sizes, in the search's order (the fixed order
    first, then every order x the tile-size mesh), how many that enumeration has, and the
    distinct tile sizes behind them: the mesh with the fixed order's sizes as row 0
    (``(n_mesh, 3)``) and each candidate's row of it (``per_tile == mesh[mesh_of]``).

    ``distinct`` drops every candidate whose loop order differs from an earlier one's of the
    same tile sizes only in where trivial loops (one tile spanning the dimension) sit: its
    traffic, levels' effect and estimate are the earlier one's (:func:`~.nest.traffic`'s ties
    count non-trivial loops), so the first minimum, the choice, is the same (tested against
    ``distinct=False``, the whole enumeration)."""
    base_o = np.array([[DIM_INDEX[d] for d in first.order]])
    base_t = np.array([[first.per_tile[d] for d in DIMS]])
    if not search:
        return base_o, base_t, 1, base_t, np.zeros(1, dtype=np.int64)
    axes = [grid.axes[d] for d in DIMS]
    totals = [a.size if a.streamed else a.n_units for a in axes]
    choices = [tile_choices(t) for t in totals]
    orders = _ORDER_INDEX
    if not distinct:
        mesh = np.stack(np.meshgrid(*choices, indexing="ij"), axis=-1).reshape(-1, 3)
        total = 1 + len(orders) * len(mesh)
        o = np.repeat(orders, len(mesh), axis=0)
        t = np.tile(mesh, (len(orders), 1))
        of = np.concatenate([[0], np.tile(np.arange(1, len(mesh) + 1), len(orders))])
        return (np.concatenate([base_o, o]), np.concatenate([base_t, t]), total,
                np.concatenate([base_t, mesh]), of)
    # the same mesh as np.meshgrid's (the long way above), by broadcasting
    cube = np.empty((*(len(c) for c in choices), 3), dtype=np.int64)
    cube[..., 0] = choices[0][:, None, None]
    cube[..., 1] = choices[1][None, :, None]
    cube[..., 2] = choices[2][None, None, :]
    mesh = cube.reshape(-1, 3)
    total = 1 + len(orders) * len(mesh)
    spans = [a.streamed or int(a.units.sum()) == a.size for a in axes]  # type: ignore[union-attr]
    # each mesh row's trivial dimensions as bits, from each dimension's choices broadcast
    # as the mesh is (mesh[:, j] is choices[j] along axis j)
    bit = [(choices[j] >= totals[j]) * ((1 << j) * spans[j]) for j in range(3)]
    pattern = (bit[0][:, None, None] + bit[1][None, :, None] + bit[2][None, None, :]).reshape(-1)
    keep_o, keep_m = np.nonzero(_FIRST_OF_CLASS[pattern].T)  # order-major, as enumerated
    return (np.concatenate([base_o, orders[keep_o]]), np.concatenate([base_t, mesh[keep_m]]),
            total, np.concatenate([base_t, mesh]), np.concatenate([[0], keep_m + 1]))


def grid_key(grid: Grid) -> tuple[object, ...]:
    """A grid's content (every axis's size and units, the within-tile order), hashable."""
    return (tuple((a.size, None if a.units is None else (a.units.dtype.str, a.units.tobytes()))
                  for a in (grid.axes[d] for d in DIMS)), grid.within)


#: tile counts, largest extents, units per tile and fold positions of each row of tile
#: sizes (``(n, 3)`` each, :func:`axis_arrays`) and the grid's sizes (``(3,)``)
Axes = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(slots=True)
class Candidates:
    """A grid's candidates (read-only arrays): loop orders, tile sizes, the enumeration's
    size, their distinct tile sizes' row ``mesh_of`` (:func:`_candidates`) and the
    :data:`Axes` of those rows (what depends on tile sizes only is derived once per row,
    not per loop order: ~4x fewer on ResNet-50) and, once a search of a grid seen before
    needs them, all their level arrays (:func:`level_arrays`)."""

    orders: np.ndarray
    per_tile: np.ndarray
    total: int
    mesh_of: np.ndarray
    axes: Axes
    levels: dict[str, np.ndarray] | None = None

    def all_levels(self) -> dict[str, np.ndarray]:
        """The level arrays of every candidate, derived once."""
        if self.levels is None:
            n, ext, within, positions, full = self.axes
            m = self.mesh_of
            self.levels = level_arrays(self.orders, n[m], ext[m], within[m], positions[m],
                                       np.broadcast_to(full, (len(self.orders), 3)))
            for arr in self.levels.values():
                arr.flags.writeable = False
        return self.levels


def candidate_geometries(grids: Sequence[tuple[Grid, Nest, MappingContext, bool]]
                         ) -> list[tuple[Candidates, bool]]:
    """The candidates of each grid (:func:`_candidates`) and what their tile sizes make of
    its axes (:func:`axis_arrays`), and whether they came from ``ctx.geometry``
    (an equal grid searched before: they depend on nothing else; tested equal to deriving
    them again), else derived (and kept there)."""
    out: list[tuple[Candidates, bool] | None] = []
    misses: dict[tuple[object, ...], list[int]] = {}
    for i, (grid, first, ctx, distinct) in enumerate(grids):
        key = ("candidates", grid_key(grid), first.order, tuple(sorted(first.per_tile.items())),
               ctx.params.search, distinct)
        hit = ctx.geometry.get(key) if ctx.geometry is not None else None
        out.append(None if hit is None else (cast(Candidates, hit), True))
        if hit is None:
            misses.setdefault(key, []).append(i)
    if misses:
        found = [(*_candidates(grids[idx[0]][0], grids[idx[0]][1],
                               grids[idx[0]][2].params.search, grids[idx[0]][3]), idx)
                 for idx in misses.values()]
        if all(grids[idx[0]][3] for idx in misses.values()):  # in one pass
            stacked = stacked_axis_arrays([grids[f[5][0]][0] for f in found],
                                          [f[3] for f in found])
            bounds = np.cumsum([0] + [len(f[3]) for f in found])
            per_grid = [cast(Axes, tuple(a[lo:hi] if k < 4 else a[lo] for k, a in
                                         enumerate(stacked)))
                        for lo, hi in itertools.pairwise(bounds)]
        else:  # the long way, one grid at a time
            per_grid = [cast(Axes, axis_arrays(grids[f[5][0]][0], f[3])) for f in found]
        for mkey, (orders, per_tile, total, _, mesh_of, idx), axes in zip(
                misses, found, per_grid, strict=True):
            for arr in (orders, per_tile, mesh_of, *axes):
                arr.flags.writeable = False
            derived = Candidates(orders, per_tile, total, mesh_of, axes)
            memo = grids[idx[0]][2].geometry
            if memo is not None:
                memo.put(mkey, derived)
            for i in idx:
                out[i] = (derived, False)
    return [g for g in out if g is not None]
