"""The per-layer tiling search: loop order and tile sizes of M, K and N (:mod:`.nest`) chosen
for the architecture's objective, exhaustively over a pruned candidate set, vectorised.

**Candidates.** All six tile-loop orders; per spatial axis the tile sizes ``ceil(U / j)``
units for ``j`` on a geometric grid (1, 2, 4, 8, ... tiles, and one unit per tile); per
streamed axis ``ceil(S / j)`` elements on the same grid. That is
at most a few thousand candidates per GEMM, each evaluated in closed form at once (numpy);
the first candidate is the dataflow's fixed order (one fold per tile, whole stream), so ties
keep SCALE-Sim's mapping. Deterministic: no sampling, no time limit. Of the loop orders that
differ only in where a loop of one tile spanning its dimension sits, only the first is
evaluated: it moves the same traffic at the same cost, so the choice is the same (tested
against the whole enumeration, ``MappingContext.distinct_candidates=False``).

**Estimate of a candidate** (per GEMM, x ``count``): DRAM bytes from :func:`.nest.traffic`;
compute cycles ``folds x max(fold cycles, SRAM-port cycles)`` (SCALE-Sim's closed form per
fold: tiling the stream costs one fill and drain per piece); latency
``max(compute, DRAM bytes / bandwidth) + spilled bytes / bandwidth + DRAM latency`` (a spilled
partial sum waits for its own write); energy = DRAM and DMA-side SRAM words at the table's
prices + array-side SRAM words and stationary-operand register writes (they grow with the
stream pieces) + MACs, idle PE-cycles and leakage over the estimated latency. ``latency``,
``energy`` or ``edp`` (their product) is minimised.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from simulator.mapping.nest import (
    DIM_INDEX,
    DIMS,
    IRRELEVANT,
    ORDERS,
    Grid,
    Nest,
    OperandBytes,
    Storage,
    Traffic,
    candidate_arrays,
    traffic,
)
from simulator.mapping.options import MappingContext, MappingCosts

_RATIO = 2.0


def tile_choices(total: int) -> np.ndarray:
    """``ceil(total / j)`` for ``j`` on a geometric grid from 1 to ``total`` (distinct)."""
    js, j = [1], 1.0
    while j < total:
        j *= _RATIO
        js.append(min(total, math.ceil(j)))
    vals = {-(-total // k) for k in js} | {1, total}
    return np.array(sorted(vals, reverse=True), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class ArrayModel:
    """What the search needs of a dataflow's folds (per GEMM).

    ``base_cycles`` per fold + ``stream_scale`` per streamed element (SCALE-Sim's closed
    form), or for dataflows without a streamed axis ``work_cycles`` in total; ``port``: the
    SRAM-port-limited cycles of a fold for each candidate's stream tile extent (``None``: no
    port limit). Array side, every fold reads its slice of each input and writes (and after
    the first, reads back) its partial sums, so an operand is read once per fold position
    along its irrelevant dimension: ``words`` is the SRAM words per element so moved, and the
    ``stationary`` operand is also written into the PE registers each time
    (:mod:`simulator.cost.actions`). ``array_pj`` replaces that count (per candidate's stream
    pieces -> pJ) for dataflows that move data otherwise (row-stationary)."""

    pes: int
    macs: int
    count: int
    base_cycles: float
    stream_scale: float = 1.0
    work_cycles: float = 0.0
    port: Callable[[np.ndarray], np.ndarray] | None = None
    words: Mapping[str, float] = field(default_factory=dict)
    stationary: str = ""
    array_pj: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """The chosen nest, each operand's storage, and the search's own estimate of it."""

    nest: Nest
    storage: Mapping[str, Storage]
    latency_cycles: float
    energy_pj: float
    #: candidates of the enumeration (:func:`_candidates`; fewer are evaluated)
    candidates: int


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


def _candidates(grid: Grid, first: Nest, search: bool, distinct: bool = True
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """The candidates' loop orders and tile sizes, in the search's order (the fixed order
    first, then every order x the tile-size mesh), and how many that enumeration has.

    ``distinct`` drops every candidate whose loop order differs from an earlier one's of the
    same tile sizes only in where trivial loops (one tile spanning the dimension) sit: its
    traffic, levels' effect and estimate are the earlier one's (:func:`~.nest.traffic`'s ties
    count non-trivial loops), so the first minimum, the choice, is the same (tested against
    ``distinct=False``, the whole enumeration)."""
    base_o = np.array([[DIM_INDEX[d] for d in first.order]])
    base_t = np.array([[first.per_tile[d] for d in DIMS]])
    if not search:
        return base_o, base_t, 1
    axes = [grid.axes[d] for d in DIMS]
    totals = [a.size if a.streamed else a.n_units for a in axes]
    choices = [tile_choices(t) for t in totals]
    orders = np.array([[DIM_INDEX[d] for d in o] for o in ORDERS])
    if not distinct:
        mesh = np.stack(np.meshgrid(*choices, indexing="ij"), axis=-1).reshape(-1, 3)
        total = 1 + len(orders) * len(mesh)
        o = np.repeat(orders, len(mesh), axis=0)
        t = np.tile(mesh, (len(orders), 1))
        return np.concatenate([base_o, o]), np.concatenate([base_t, t]), total
    # the same mesh as np.meshgrid's (the long way above), by broadcasting
    cube = np.empty((*(len(c) for c in choices), 3), dtype=np.int64)
    cube[..., 0] = choices[0][:, None, None]
    cube[..., 1] = choices[1][None, :, None]
    cube[..., 2] = choices[2][None, None, :]
    mesh = cube.reshape(-1, 3)
    total = 1 + len(orders) * len(mesh)
    spans = [a.streamed or int(a.units.sum()) == a.size for a in axes]  # type: ignore[union-attr]
    pattern = sum((mesh[:, j] >= totals[j]) * (1 << j) * spans[j] for j in range(3))
    keep_o, keep_m = np.nonzero(_FIRST_OF_CLASS[pattern].T)  # order-major, as enumerated
    return (np.concatenate([base_o, orders[keep_o]]), np.concatenate([base_t, mesh[keep_m]]),
            total)


def grid_key(grid: Grid) -> tuple[object, ...]:
    """A grid's content (every axis's size and units, the within-tile order), hashable."""
    return (tuple((a.size, None if a.units is None else (a.units.dtype.str, a.units.tobytes()))
                  for a in (grid.axes[d] for d in DIMS)), grid.within)


def candidate_geometry(grid: Grid, first: Nest, ctx: MappingContext, distinct: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int]:
    """The candidates' loop orders, tile sizes, :func:`~.nest.candidate_arrays` and the
    enumeration's size (:func:`_candidates`): from ``ctx.geometry`` when an equal grid was
    searched before (they depend on nothing else; tested equal to deriving them again), else
    derived (and kept there, read-only)."""
    memo = ctx.geometry
    key = ("candidates", grid_key(grid), first.order, tuple(sorted(first.per_tile.items())),
           ctx.params.search, distinct)
    if memo is not None:
        hit = memo.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
    orders, per_tile, total = _candidates(grid, first, ctx.params.search, distinct)
    geo = candidate_arrays(grid, orders, per_tile)
    if memo is not None:
        for arr in (orders, per_tile, *geo.values()):
            arr.flags.writeable = False
        memo.put(key, (orders, per_tile, geo, total))
    return orders, per_tile, geo, total


def choose(grid: Grid, model: ArrayModel, sizes: Mapping[str, float],
           nbytes: Mapping[str, OperandBytes], capacity: Mapping[str, float],
           half: Mapping[str, float], word_bytes: Mapping[str, float], ctx: MappingContext,
           first: Nest, key: tuple[object, ...] | None = None) -> Choice:
    """Evaluate every candidate (module docstring) and return the best for the objective.

    ``key``, when given, names everything the result depends on (the caller's duty): the
    result is then memoised in ``ctx.memo`` (tested equal to a run without the memo).
    ``ctx.distinct_candidates=False`` evaluates the whole enumeration (the long way of
    :func:`_candidates`)."""
    if key is not None and ctx.memo is not None:
        costs = tuple((f.name, tuple(sorted(v.items())) if isinstance(v, Mapping) else v)
                      for f in dataclasses.fields(ctx.costs)
                      for v in (getattr(ctx.costs, f.name),))
        full = (key, ctx.params, costs, ctx.resident, ctx.keep_output,
                tuple(sorted(capacity.items())), tuple(sorted(half.items())))
        hit = ctx.memo.get(full)
        if hit is None:
            hit = ctx.memo[full] = choose(grid, model, sizes, nbytes, capacity, half,
                                          word_bytes, ctx, first)
        assert isinstance(hit, Choice)
        return hit
    orders, per_tile, geo, total = candidate_geometry(grid, first, ctx,
                                                      ctx.distinct_candidates)
    tr = traffic(grid, geo, sizes, nbytes, capacity, half, ctx.resident)
    lat, energy = _estimate(grid, model, geo, tr, word_bytes, sizes, ctx)
    objective = {"latency": lat, "energy": energy, "edp": lat * energy}[ctx.params.objective]
    best = int(np.argmin(objective))
    order = tuple(DIMS[j] for j in orders[best])
    nest = Nest(order, {d: int(per_tile[best, DIM_INDEX[d]]) for d in DIMS})  # type: ignore[arg-type]
    storage = {op: Storage(int(tr.levels[op][best]), float(tr.held[op][best]))
               for op in tr.levels}
    return Choice(nest, storage, float(lat[best]), float(energy[best]), total)


def _array_pj(model: ArrayModel, geo: Mapping[str, np.ndarray], sizes: Mapping[str, float],
              c: MappingCosts) -> np.ndarray:
    """Array-side SRAM and stationary-register energy of every candidate (ArrayModel)."""
    pos = geo["positions_f"]
    out = np.zeros(pos.shape[0])
    for op in ("ifmap", "filter"):
        reads = sizes[op] * pos[:, DIM_INDEX[IRRELEVANT[op]]]
        out = out + reads * model.words.get(op, 0.0) * c.sram_read.get(op, 0.0)
        if model.stationary == op:
            out = out + reads * c.rf_write
    k = pos[:, DIM_INDEX["K"]]
    w = model.words.get("ofmap", 0.0) * sizes["ofmap"]
    return out + w * (k * c.sram_write.get("ofmap", 0.0) + (k - 1) * c.sram_read.get("ofmap",
                                                                                     0.0))


def _estimate(grid: Grid, model: ArrayModel, geo: Mapping[str, np.ndarray],
              tr: Traffic, word_bytes: Mapping[str, float], sizes: Mapping[str, float],
              ctx: MappingContext) -> tuple[np.ndarray, np.ndarray]:
    """(latency cycles, energy pJ) of every candidate (module docstring)."""
    c = ctx.costs
    folds = geo["folds"]
    stream = grid.stream
    if stream is not None:
        j = DIM_INDEX[stream]
        pieces = geo["n_f"][:, j]
        ext = geo["ext_f"][:, j]
        fold = model.base_cycles + model.stream_scale * ext
        if model.port is not None:
            fold = np.maximum(fold, model.port(ext))
        compute = model.count * folds * fold
    else:
        pieces = np.ones(len(folds))
        compute = model.count * (folds * model.base_cycles + model.work_cycles)
    reads = sum(tr.reads.values())
    dram = model.count * (reads + tr.writes)
    spill = model.count * 2 * tr.reads["psum"]
    bw = c.dram_bytes_per_cycle
    lat = (np.maximum(compute, dram / bw) + spill / bw + c.dram_latency_cycles
           if math.isfinite(bw) else compute + 0.0)
    e = model.count * (reads * c.dram_read_per_byte + tr.writes * c.dram_write_per_byte)
    dma = {"ifmap": tr.reads["ifmap"], "filter": tr.reads["filter"], "ofmap": tr.reads["psum"]}
    for buf, loaded in dma.items():
        e = e + model.count * loaded / word_bytes[buf] * c.sram_write.get(buf, 0.0)
    e = e + model.count * tr.writes / word_bytes["ofmap"] * c.sram_read.get("ofmap", 0.0)
    if model.array_pj is not None:
        e = e + model.count * model.array_pj(pieces)
    else:
        e = e + model.count * _array_pj(model, geo, sizes, c)
    idle = np.maximum(model.pes * compute - model.count * model.macs, 0.0)
    e = e + model.count * model.macs * c.mac + idle * c.mac_idle + lat * c.leak_per_cycle
    return lat, e
