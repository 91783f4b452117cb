"""Group a layer's folds into the tiles the SimPy engine runs, soundly.

Input: per-fold busy cycles, DRAM loads per operand, stores and read-after-write producers
(:class:`~simulator.mapping.nest.FoldTable`, in execution order). Rules:

* **Sound tiles.** A tile's new bytes never exceed its buffer's tile capacity (half the
  buffer when double buffered): a fold whose streamed data alone exceeds it is cut into
  pieces (its first piece with what the fold needs to start, its last with what it stores
  at its end, the rest of its work and data split evenly; fold cycles are unchanged), and
  pieces are grouped ``g`` at a time with ``g * largest piece <= capacity`` for every buffer.
* **Granularity.** At most about :data:`TARGET_TILES` tiles per layer from that grouping (so
  the engine's cost does not grow with folds), and never coarser than the capacity allows.
* **Read-after-write.** A fold that reads back spilled partial sums starts a new tile, whose
  ``psum_after`` names the tile holding the fold that wrote them.
* **Streaming.** A tile's ``head_load_bytes`` are what its first fold needs to start,
  ``tail_cycles`` the work of its last fold after that fold's last data, ``store_tail_bytes``
  what its last fold stores at its end (the caller says what those are per fold; by default
  all of the fold's), for the engine's streaming (:mod:`simulator.engine`).

A fold's cycles are split into whole cycles; fractional bytes are rounded by
:func:`~simulator.mapping.schedule.to_int` (prefix sums rounded up), so the tiles' totals
are the folds' totals, rounded up once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from simulator.mapping.schedule import TileSchedule, to_int, union_sorted

#: Tiles per layer the grouping aims at when capacity allows coarser ones.
TARGET_TILES = 12


def build_tiles(busy: np.ndarray, loads: Mapping[str, np.ndarray], stores: np.ndarray,
                producer: np.ndarray, capacity: Mapping[str, float],
                head: Mapping[str, np.ndarray] | None = None, tail: np.ndarray | None = None,
                store_tail: np.ndarray | None = None) -> TileSchedule:
    """Tiles of a layer from its folds (module docstring). ``loads`` holds ``ifmap``,
    ``filter`` and ``psum`` bytes per fold; ``capacity`` the tile capacity of the ``ifmap``,
    ``filter`` and ``ofmap`` buffers (the ofmap buffer holds partial sums read back and the
    outputs being produced). Per fold, optionally: ``head`` bytes of each load needed before
    it starts, ``tail`` cycles after its last data arrives, ``store_tail`` bytes that leave
    after it ends (default: all of its loads, cycles and stores). A cut fold's first piece
    carries its head whole, its last piece its tail and store tail; the rest is shared evenly
    (a head or store tail that would fill half a buffer is shared too, and the fold's work
    then waits in its last piece)."""
    n = len(busy)
    if any(len(v) != n for v in (*loads.values(), stores, producer)):
        raise ValueError("fold arrays disagree in length")
    # whole bytes per tile: each rounded stream may gain up to one byte (to_int)
    margin = {"ifmap": 1.0, "filter": 1.0, "ofmap": 2.0}
    cap = {b: capacity[b] - margin[b] if capacity[b] > 2 * margin[b] else capacity[b]
           for b in margin}
    h = {op: loads[op] if head is None else np.minimum(head[op], loads[op]) for op in loads}
    st = stores if store_tail is None else np.minimum(store_tail, stores)
    buffer_of = {"ifmap": "ifmap", "filter": "filter", "psum": "ofmap"}
    whole, need = {}, {}
    for op, b in (("ifmap", "ifmap"), ("filter", "filter")):
        whole[op] = h[op] <= cap[b] / 2
        need[op] = np.where(whole[op], (loads[op] - h[op]) / np.maximum(cap[b] - h[op], 1e-9),
                            loads[op] / cap[b])
    edge = np.maximum(h["psum"], st)  # piece 0 keeps the psum head, the last the store tail
    whole["psum"] = edge <= cap["ofmap"] / 2
    rest_o = loads["psum"] - h["psum"] + stores - st
    total_o = loads["psum"] + stores
    need["psum"] = np.where(whole["psum"],  # one piece holds both edges, two hold one each
                            np.where(total_o <= cap["ofmap"], total_o / cap["ofmap"],
                                     np.maximum(rest_o / np.maximum(cap["ofmap"] - edge, 1e-9),
                                                1.5)),
                            total_o / cap["ofmap"])
    pieces = np.ones(n, dtype=np.int64)
    for op, ratio in need.items():
        c = cap[buffer_of[op]]
        if math.isfinite(c) and c > 0:
            pieces = np.maximum(pieces, np.ceil(ratio - 1e-9).astype(np.int64))
    owner = np.repeat(np.arange(n), pieces)
    share = 1.0 / pieces[owner]
    first_piece = np.cumsum(pieces) - pieces
    k = np.arange(len(owner)) - first_piece[owner]
    first, last = k == 0, k == pieces[owner] - 1
    # the fold's tail cycles run in its last piece, and all its work when what it needs to
    # start is itself cut over pieces (it cannot start before all of that is in); the rest
    # of its work is shared evenly
    tl = busy if tail is None else np.minimum(tail, busy)
    tl = np.where(whole["ifmap"] & whole["filter"] & whole["psum"], tl, busy)
    rest_c = (busy - tl)[owner]
    p_busy = (rest_c // pieces[owner] + (k < rest_c % pieces[owner])
              + np.where(last, tl[owner], 0))
    p_loads, p_head = {}, np.zeros(len(owner))
    for op, v in loads.items():
        keep = whole[op][owner]
        hp = np.where(keep, np.where(first, h[op][owner], 0.0), h[op][owner] * share)
        p_loads[op] = hp + (v - h[op])[owner] * share
        p_head = p_head + np.where(first | ~keep, hp, 0.0)
    keep_o = whole["psum"][owner]
    p_st = np.where(keep_o, np.where(last, st[owner], 0.0), st[owner] * share)
    p_stores = (stores - st)[owner] * share + p_st
    p_tail = np.where(last, tl[owner], 0)
    n_p = len(owner)
    group = max(1, -(-n_p // TARGET_TILES))
    per_piece = {"ifmap": p_loads["ifmap"], "filter": p_loads["filter"],
                 "ofmap": p_loads["psum"] + p_stores}
    for b, data in per_piece.items():
        largest = float(data.max()) if n_p else 0.0
        if math.isfinite(cap[b]) and cap[b] > 0 and largest > 0:
            group = min(group, max(1, int(cap[b] // (largest * (1 + 1e-12)))))
    raw = producer >= 0
    starts = union_sorted(np.arange(0, n_p, group), first_piece[raw])
    tile_of_piece = np.searchsorted(starts, np.arange(n_p), side="right") - 1
    ends = np.append(starts[1:], n_p) - 1

    def per_tile(values: np.ndarray) -> np.ndarray:
        return to_int(np.add.reduceat(values, starts))

    t_busy = np.add.reduceat(p_busy, starts)
    t_loads = {k: per_tile(v) for k, v in p_loads.items()}
    t_store = per_tile(p_stores)
    all_loads = t_loads["ifmap"] + t_loads["filter"] + t_loads["psum"]
    psum_after = np.full(len(starts), -1, dtype=np.int64)
    if raw.any():
        last_piece = first_piece + pieces - 1
        fold_of_start = owner[starts]
        prod = producer[fold_of_start]
        has = (prod >= 0) & (first_piece[fold_of_start] == starts)
        psum_after[has] = tile_of_piece[last_piece[prod[has]]]
    return TileSchedule(
        busy_cycles=t_busy, ifmap_load_bytes=t_loads["ifmap"],
        filter_load_bytes=t_loads["filter"], psum_load_bytes=t_loads["psum"],
        store_bytes=t_store,
        head_load_bytes=np.minimum(all_loads, np.ceil(p_head[starts] - 1e-9)
                                   .astype(np.int64)),
        tail_cycles=np.minimum(t_busy, p_tail[ends]),
        store_tail_bytes=np.minimum(t_store, np.ceil(p_st[ends] - 1e-9)
                                    .astype(np.int64)),
        psum_after=psum_after)
