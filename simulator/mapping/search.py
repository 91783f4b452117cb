"""The per-layer tiling search: loop order and tile sizes of M, K and N (:mod:`.nest`) chosen
for the architecture's objective, exhaustively over a pruned candidate set, vectorised.

**Candidates.** All six tile-loop orders; per spatial axis the tile sizes ``ceil(U / j)``
units for ``j`` on a geometric grid (1, 2, 4, 8, ... tiles, and one unit per tile); per
streamed axis ``ceil(S / j)`` elements on the same grid (:mod:`.candidates`). That is
at most a few thousand candidates per GEMM, each evaluated in closed form at once (numpy);
the first candidate is the dataflow's fixed order (one fold per tile, whole stream), so ties
keep SCALE-Sim's mapping. Deterministic: no sampling, no time limit. Of the loop orders that
differ only in where a loop of one tile spanning its dimension sits, only the first is
evaluated: it moves the same traffic at the same cost, so the choice is the same (tested
against the whole enumeration, ``MappingContext.distinct_candidates=False``).

**Estimate of a candidate**: :mod:`.estimate` (latency, energy or their product, the
architecture's objective). :func:`choose_all` searches several GEMMs in one stacked pass
(the simulation's layers before it runs them, :func:`simulator.simulation.simulate`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.mapping.candidates import Candidates, candidate_geometries, level_arrays
from simulator.mapping.estimate import (
    ArrayModel,
    GemmEstimate,
    callables,
    estimate,
    first_minimum,
    numbers,
    per_candidate,
    per_gemm,
)
from simulator.mapping.nest import (
    DIM_INDEX,
    DIMS,
    Grid,
    Nest,
    OperandBytes,
    Storage,
    Traffic,
    traffic,
)
from simulator.mapping.options import MappingContext


@dataclass(frozen=True, slots=True)
class Choice:
    """The chosen nest, each operand's storage, and the search's own estimate of it."""

    nest: Nest
    storage: Mapping[str, Storage]
    latency_cycles: float
    energy_pj: float
    #: candidates of the enumeration (:func:`.candidates._candidates`; fewer are evaluated)
    candidates: int


@dataclass(frozen=True, slots=True)
class Problem:
    """One GEMM's search: :func:`choose`'s arguments."""

    grid: Grid
    model: ArrayModel
    sizes: Mapping[str, float]
    nbytes: Mapping[str, OperandBytes]
    capacity: Mapping[str, float]
    half: Mapping[str, float]
    word_bytes: Mapping[str, float]
    ctx: MappingContext
    first: Nest
    key: tuple[object, ...] | None = None

    def memo_key(self) -> tuple[object, ...] | None:
        """What the choice depends on (``key`` and the context), if ``key`` and a memo."""
        if self.key is None or self.ctx.memo is None:
            return None
        c = self.ctx
        costs = tuple((f.name, tuple(sorted(v.items())) if isinstance(v, Mapping) else v)
                      for f in dataclasses.fields(c.costs)
                      for v in (getattr(c.costs, f.name),))
        return (self.key, c.params, costs, c.resident, c.keep_output,
                tuple(sorted(self.capacity.items())), tuple(sorted(self.half.items())))


def choose(grid: Grid, model: ArrayModel, sizes: Mapping[str, float],
           nbytes: Mapping[str, OperandBytes], capacity: Mapping[str, float],
           half: Mapping[str, float], word_bytes: Mapping[str, float], ctx: MappingContext,
           first: Nest, key: tuple[object, ...] | None = None) -> Choice:
    """Evaluate every candidate (module docstring) and return the best for the objective.

    ``key``, when given, names everything the result depends on (the caller's duty): the
    result is then memoised in ``ctx.memo`` (tested equal to a run without the memo).
    ``ctx.distinct_candidates=False`` evaluates the whole enumeration (the long way of
    :func:`.candidates._candidates`)."""
    return choose_all([Problem(grid, model, sizes, nbytes, capacity, half, word_bytes, ctx,
                               first, key)])[0]


def choose_all(problems: Sequence[Problem]) -> list[Choice]:
    """:func:`choose` of every problem, the candidates of those not in their memo evaluated
    in one stacked pass (:mod:`.estimate`; tested equal to one search each). Problems of
    equal memo key are searched once; each choice is memoised as :func:`choose` does."""
    out: list[Choice | None] = [None] * len(problems)
    todo: dict[object, list[int]] = {}
    keyed: set[object] = set()
    for i, p in enumerate(problems):
        k = p.memo_key()
        hit = p.ctx.memo.get(k) if k is not None and p.ctx.memo is not None else None
        if isinstance(hit, Choice):
            out[i] = hit
            continue
        if k is not None:
            keyed.add(k)
        todo.setdefault(k if k is not None else ("unkeyed", i), []).append(i)
    if todo:
        chosen = _search([problems[idx[0]] for idx in todo.values()])
        for (tk, idx), c in zip(todo.items(), chosen, strict=True):
            memo = problems[idx[0]].ctx.memo
            if tk in keyed and memo is not None:
                memo[tk] = c  # type: ignore[index]
            for i in idx:
                out[i] = c
    return [c for c in out if c is not None]


#: distinct tile sizes per GEMM (each with its loop orders: ~16 candidates on ResNet-50)
#: evaluated first, whose best bounds the rest (:func:`_search`)
_FIRST = 4
#: the traffic floor's margin below the compulsory bytes, far above float rounding (1e-16)
_LOOSE = 1.0 - 1e-9


def _search(problems: Sequence[Problem]) -> list[Choice]:
    """Every candidate of every problem, stacked (:mod:`.estimate`), and the first minimum
    of each problem's objective.

    **Bound, then evaluate.** A candidate's compute cycles, array-side energy and idle
    PE-cycles depend on its tile sizes alone (:data:`Axes`); its traffic is at least the
    compulsory traffic (each input read once, each output written once, nothing spilled; x
    ``1 - 1e-9``). The estimate at that traffic floor, by the same formulas (rounding is
    monotone, so it is a lower bound in floating point too), bounds each candidate's
    objective from below at the cost of a few array operations per distinct tile sizes. The
    candidates of the :data:`_FIRST` lowest-bound tile sizes of each problem are evaluated;
    every candidate whose bound exceeds the best of them cannot be the minimum (any
    evaluated candidates would do: their best is at least the minimum), and the rest are
    evaluated in their order, so the first minimum is the whole enumeration's
    (``tests/test_search.py``: every mapping equal with ``distinct_candidates=False``, which
    evaluates all). Applies where
    every price is finite and non-negative, the bytes finite and the DRAM bandwidth positive,
    to searches of more than ``MappingContext.bound_above`` candidates (the layers searched
    together before a simulation runs them, :func:`simulator.simulation.simulate`) of grids
    not seen before. A grid seen before (the sweep's points of one array shape) keeps the
    level arrays of all its candidates (:meth:`Candidates.all_levels`) and is evaluated whole,
    one problem at a time: reading them costs less than bounding."""
    geos = candidate_geometries([(p.grid, p.first, p.ctx, p.ctx.distinct_candidates)
                                 for p in problems])
    out: list[Choice | None] = [None] * len(problems)
    fresh = [i for i, (_, seen) in enumerate(geos) if not seen]
    for group in _groups(fresh, [len(geos[i][0].orders) for i in fresh]):
        for i, c in zip(group, _stacked([problems[i] for i in group],
                                        [geos[i][0] for i in group]), strict=True):
            out[i] = c
    for i, (g, seen) in enumerate(geos):
        if seen:
            out[i] = _whole(problems[i], g)
    return [c for c in out if c is not None]


def _whole(p: Problem, g: Candidates) -> Choice:
    """Every candidate of one problem whose grid was seen before, from its kept level arrays,
    with the problem's numbers as scalars (numpy broadcasts them: the stacked arithmetic)."""
    geo = g.all_levels()
    tr = traffic(None, geo, p.sizes, p.nbytes, p.capacity, p.half, p.ctx.resident)
    gemm = _gemm(p)
    v = numbers(gemm)
    port, own = callables([gemm], v, geo, np.zeros(1, dtype=np.int64),
                          np.array([len(g.orders)]))
    lat, energy, objective = estimate(v, geo, tr, port, own)
    b = int(np.argmin(objective))
    return _choice(g, b, tr, lat, energy, b)


def _gemm(p: Problem) -> GemmEstimate:
    return GemmEstimate(p.model, p.ctx.costs, p.word_bytes, p.sizes, p.grid.stream,
                        p.ctx.params.objective)


def _choice(g: Candidates, r: int, tr: Traffic, lat: np.ndarray, energy: np.ndarray,
            b: int) -> Choice:
    """Candidate ``r`` of ``g``, evaluated at row ``b`` of ``tr``, ``lat`` and ``energy``."""
    nest = Nest(tuple(DIMS[j] for j in g.orders[r]),  # type: ignore[arg-type]
                {d: int(g.per_tile[r, DIM_INDEX[d]]) for d in DIMS})
    storage = {op: Storage(int(tr.levels[op][b]), float(tr.held[op][b])) for op in tr.levels}
    return Choice(nest, storage, float(lat[b]), float(energy[b]), g.total)


#: candidates stacked in one evaluation at most (memory: ~0.5 kB each, so ~30 MB), unless
#: one problem alone has more
_STACK = 65_536


def _groups(items: Sequence[int], sizes: Sequence[int]) -> list[list[int]]:
    """``items`` in order, cut into runs of at most :data:`_STACK` total ``sizes`` (a larger
    item alone)."""
    out: list[list[int]] = []
    total = 0
    for item, size in zip(items, sizes, strict=True):
        if not out or total + size > _STACK:
            out.append([])
            total = 0
        out[-1].append(item)
        total += size
    return out


def _stacked(problems: Sequence[Problem], geos: Sequence[Candidates]) -> list[Choice]:
    """:func:`_search` of problems of grids not seen before, their candidates stacked (the
    level arrays derived for the candidates evaluated only). What depends on tile sizes
    only (the :data:`Axes`, the fold and port cycles, the array-side energy, the lower
    bound) is computed once per distinct tile sizes of a grid (``Candidates.mesh_of``) and
    read by each candidate of them."""
    lengths = np.array([len(g.orders) for g in geos])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    m_lengths = np.array([len(g.axes[0]) for g in geos])
    m_starts = np.concatenate([[0], np.cumsum(m_lengths)[:-1]])
    orders = np.concatenate([g.orders for g in geos])
    mesh_of = np.concatenate([g.mesh_of + m for g, m in zip(geos, m_starts, strict=True)])
    axes = [np.concatenate([g.axes[k] for g in geos]) for k in range(4)]
    sizes = np.stack([g.axes[4] for g in geos])
    ops = ("ifmap", "filter", "ofmap")
    buffers = per_gemm([{f"{x}_{op}": v for op in ops for x, v in (
        ("size", p.sizes[op]), ("dram", p.nbytes[op].dram), ("hold", p.nbytes[op].hold),
        ("final", p.nbytes[op].final), ("capacity", p.capacity[op]), ("half", p.half[op]),
        ("resident", op in p.ctx.resident))} for p in problems])
    gemms = [_gemm(p) for p in problems]
    table = per_gemm([numbers(g) for g in gemms])
    n, ext, _, positions = axes
    at_axes = {"folds": np.prod(positions, axis=1).astype(np.float64),
               "positions_f": positions.astype(np.float64), "n_f": n.astype(np.float64),
               "ext_f": ext.astype(np.float64)}
    every = per_candidate(table, m_lengths)  # per mesh row
    port, own = callables(gemms, every, at_axes, m_starts, m_lengths)

    def evaluate(rows: np.ndarray) -> tuple[Traffic, np.ndarray, np.ndarray, np.ndarray,
                                            np.ndarray, np.ndarray]:
        """The exact estimate of candidates ``rows`` (ascending)."""
        of = np.searchsorted(starts, rows, side="right") - 1
        n_rows = np.bincount(of, minlength=len(problems))
        at = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
        m = mesh_of[rows]
        geo = level_arrays(orders[rows], axes[0][m], axes[1][m], axes[2][m], axes[3][m],
                           sizes[of])
        col = per_candidate(buffers, n_rows)

        def column(name: str) -> Any:  # one value per candidate, against the (n, 4) levels
            return col[name][:, None]

        tr = traffic(None, geo, {op: column(f"size_{op}") for op in ops},
                     {op: OperandBytes(column(f"dram_{op}"), column(f"hold_{op}"),
                                       column(f"final_{op}")) for op in ops},
                     {op: column(f"capacity_{op}") for op in ops},
                     {op: column(f"half_{op}") for op in ops},
                     {op: col[f"resident_{op}"] > 0 for op in ops})
        lat, energy, objective = estimate(per_candidate(table, n_rows), geo, tr, port[m],
                                          own[m])
        return tr, lat, energy, objective, at, n_rows

    if all(p.ctx.distinct_candidates for p in problems) and \
            len(orders) > min(p.ctx.bound_above for p in problems):
        # the estimate at the traffic floor (compulsory bytes, x _LOOSE), a lower bound,
        # per mesh row (it depends on tile sizes only)
        col = per_candidate(buffers, m_lengths)
        floor = {op: np.where(col[f"resident_{op}"] > 0, 0.0, col[f"size_{op}"] * col[
            f"{'final' if op == 'ofmap' else 'dram'}_{op}"] * _LOOSE) for op in ops}
        at_floor = Traffic({"ifmap": floor["ifmap"], "filter": floor["filter"],
                            "psum": np.zeros(len(axes[0]))}, floor["ofmap"], {}, {})
        _, _, bound = estimate(every, at_axes, at_floor, port, own)
        rows = _survivors(bound, mesh_of, [_prunable(p) for p in problems], m_starts,
                          m_lengths, evaluate)
    else:
        rows = np.arange(len(orders))
    tr, lat, energy, objective, at, n_rows = evaluate(rows)
    return [_choice(g, int(rows[b]) - s, tr, lat, energy, int(b))
            for g, s, b in zip(geos, starts, first_minimum(objective, at, n_rows), strict=True)]


def _survivors(bound: np.ndarray, mesh_of: np.ndarray, prunable: Sequence[bool],
               m_starts: np.ndarray, m_lengths: np.ndarray,
               evaluate: Callable[[np.ndarray], tuple[Any, ...]]) -> np.ndarray:
    """The candidates whose lower bound (``bound``: per distinct tile sizes of a problem,
    ``mesh_of``: each candidate's) does not exceed the best objective of the candidates of
    their problem's :data:`_FIRST` lowest-bound tile sizes (:func:`_search`), ascending;
    every candidate of a problem that is not ``prunable``."""
    problem = np.repeat(np.arange(len(m_starts)), m_lengths)  # per distinct tile sizes
    order = np.lexsort((bound, problem))  # by problem, then bound (ties: enumeration order)
    picked = np.zeros(len(bound), dtype=bool)
    picked[order[np.arange(len(order)) - m_starts[problem[order]] < _FIRST]] = True
    *_, objective, at, _ = evaluate(np.flatnonzero(picked[mesh_of]))
    best = np.minimum.reduceat(objective, at)[problem]
    keep = (bound <= best) | np.isnan(best) | ~np.repeat(np.array(prunable, dtype=bool),
                                                            m_lengths)
    return np.flatnonzero(keep[mesh_of])


def _prunable(p: Problem) -> bool:
    """Whether the bound of :func:`_search` applies to ``p`` (finite, non-negative prices
    and bytes, a positive DRAM bandwidth)."""
    c = p.ctx.costs
    prices = [c.dram_read_per_byte, c.dram_write_per_byte, c.mac, c.mac_idle, c.rf_write,
              c.leak_per_cycle, *c.sram_read.values(), *c.sram_write.values()]
    numbers = [x for b in p.nbytes.values() for x in (b.dram, b.hold, b.final)]
    return (all(math.isfinite(x) and x >= 0 for x in prices + numbers)
            and c.dram_bytes_per_cycle > 0)
