"""The tiling search's candidates as arrays (:mod:`.search`): what each candidate's loop
order and tile sizes make of a GEMM's axes and of the four storage levels of its nest
(:mod:`.nest`), vectorised over candidates; what :func:`.nest.traffic` and the estimate
(:mod:`.estimate`) read. Nothing here depends on a buffer, an operand's bytes or a price,
so a grid's candidates are derived once and shared (:func:`.search.candidate_geometries`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.mapping.nest import DIM_INDEX, DIMS, IRRELEVANT, OPERAND_DIMS, Grid


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
