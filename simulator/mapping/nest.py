"""The temporal mapping of one GEMM: tile loops over M, K and N above the array's folds, and
where each operand's buffer keeps data. Closed forms, vectorised over candidates and folds.

**The nest.** A GEMM ``M x K @ K x N`` runs as folds of the array (:mod:`.dataflows`). Along
a *spatial* axis the folds cut the dimension into units (the array's chunks of rows or
columns, or a row-stationary pass's blocks); along the *streamed* axis a fold streams one
contiguous piece. A mapping is a loop order over the three dimensions and a tile size for
each: ``per_tile`` units of a spatial axis, or ``per_tile`` elements of the streamed axis (one
piece per tile, so the streamed axis is tiled too). Inside a tile the folds run over the
tile's units in the dataflow's order (``Grid.within``). There are ``n_d`` tiles along ``d``.

**Reuse** (the standard loop-nest analysis: Timeloop, Parashar et al., ISPASS 2019; ZigZag,
Mei et al., IEEE TC 2021, with one memory level per operand). Each operand depends on two
dimensions and is *irrelevant* to the third (ifmap: N, filter: M, ofmap: K). Its buffer keeps
data at a *level* ``l`` of the nest (0: above every tile loop, i.e. the whole layer; 3: one
tile): it holds the operand's slice over the loops inside ``l``, and fetches it again whenever
a loop outside ``l`` moves. So the DRAM traffic of an input is exactly

    traffic(l) = |X| * (n_i if the irrelevant loop i is outside l else 1)

(partial last tiles included). Keeping data across iterations of the irrelevant dimension
(its tile loop inside ``l``, or more than one of its units inside a tile) needs the slice in
the buffer: ``footprint(l)`` bytes, at most the whole buffer when it is fetched once, half of
it (the other half prefetches the next) when it is fetched again. A slice without such reuse
*streams* through the buffer and needs no capacity. A footprint larger than its limit is kept
in part (fraction ``rho = limit / footprint``), the rest re-fetched on every fold. Each
operand takes the level of least traffic (ties: the innermost, whose data arrives with the
folds that use it; a loop of one tile spanning its dimension does not count as a level).

**Partial sums** (ofmap, irrelevant to K) accumulate in the ofmap buffer over the K iterations
inside their level (at ``acc_bits``). Every K tile iteration outside it writes them to DRAM and
the next reads them back: ``|O| x ((k_out - 1) acc + out)`` written, ``|O| x (k_out - 1) acc``
read, ``k_out = n_K`` if the K loop is outside the level, else 1. A spilled slice is read back
by the fold after the one that wrote it: :func:`fold_table` records that producer, so the
engine can order the read after the write (read-after-write).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.mapping.schedule import chunks

DIMS = ("M", "K", "N")
DIM_INDEX = {d: i for i, d in enumerate(DIMS)}
#: The two dimensions each operand depends on, and the one it is irrelevant to.
OPERAND_DIMS = {"ifmap": ("M", "K"), "filter": ("K", "N"), "ofmap": ("M", "N")}
IRRELEVANT = {"ifmap": "N", "filter": "M", "ofmap": "K"}
ORDERS = tuple(itertools.permutations(DIMS))


@dataclass(frozen=True, slots=True)
class Axis:
    """One GEMM dimension as the folds see it: ``units`` (extents of the fold units along a
    spatial axis, in order) or ``None`` for the streamed axis."""

    size: int
    units: np.ndarray | None = None

    @property
    def streamed(self) -> bool:
        return self.units is None

    @property
    def n_units(self) -> int:
        return 0 if self.units is None else len(self.units)

    def tiles(self, per_tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(first unit, units, extent)`` of every tile along this axis."""
        if self.units is None:
            ext = chunks(self.size, min(per_tile, self.size))
            return np.arange(len(ext)), np.ones(len(ext), dtype=np.int64), ext
        c = min(per_tile, len(self.units))
        first = np.arange(0, len(self.units), c)
        count = chunks(len(self.units), c)  # c units per tile, the last one the rest
        return first, count, np.add.reduceat(self.units, first)

    def tile_count(self, per_tile: np.ndarray) -> np.ndarray:
        """Tiles along the axis for each candidate ``per_tile`` (vectorised)."""
        total = self.size if self.units is None else len(self.units)
        return -(-total // np.minimum(per_tile, total))

    def max_extent(self, per_tile: np.ndarray) -> np.ndarray:
        """Extent of the largest tile (the first) for each candidate ``per_tile``."""
        if self.units is None:
            return np.minimum(per_tile, self.size)
        cum = np.cumsum(self.units)
        return cum[np.minimum(per_tile, len(self.units)) - 1]

    def within_units(self, per_tile: np.ndarray) -> np.ndarray:
        """Units of the axis inside one (full) tile: folds along it per tile."""
        if self.units is None:
            return np.ones_like(per_tile)
        return np.minimum(per_tile, len(self.units))

    def positions(self, per_tile: np.ndarray) -> np.ndarray:
        """Fold positions along the axis over the whole layer."""
        if self.units is None:
            return self.tile_count(per_tile)
        return np.full_like(per_tile, len(self.units))


@dataclass(frozen=True, slots=True)
class Grid:
    """The three axes of one GEMM (``M``, ``K``, ``N``) and the loop order of the folds inside
    a tile over its spatial axes (outer first)."""

    axes: Mapping[str, Axis]
    within: tuple[str, ...]

    @property
    def stream(self) -> str | None:
        return next((d for d in DIMS if self.axes[d].streamed), None)


@dataclass(frozen=True, slots=True)
class Nest:
    """A temporal mapping: tile loop order (outer first) and tile size of every dimension
    (units of a spatial axis, elements of the streamed one)."""

    order: tuple[str, str, str]
    per_tile: Mapping[str, int]

    @property
    def label(self) -> str:
        return ">".join(self.order)


@dataclass(frozen=True, slots=True)
class Storage:
    """Where an operand's buffer keeps data: ``level`` 0-3 (``-1``: already on chip, no
    traffic) and the ``held`` fraction of that level's footprint (the rest streams)."""

    level: int
    held: float = 1.0


@dataclass(frozen=True, slots=True)
class OperandBytes:
    """Bytes per element of one operand: ``dram`` as moved (unique share, packed, with
    format metadata), ``hold`` as it occupies its buffer, ``final``: outputs as written."""

    dram: float
    hold: float
    final: float = 0.0


@dataclass(frozen=True, slots=True)
class Traffic:
    """Per-candidate DRAM traffic (bytes) and the storage chosen for each operand."""

    reads: dict[str, np.ndarray]       # ifmap, filter, psum
    writes: np.ndarray                 # spilled partial sums and final outputs
    levels: dict[str, np.ndarray]
    held: dict[str, np.ndarray]


def traffic(grid: Grid | None, geo: Mapping[str, np.ndarray], sizes: Mapping[str, Any],
            nbytes: Mapping[str, OperandBytes], capacity: Mapping[str, Any],
            half: Mapping[str, Any], resident: frozenset[str] | Mapping[str, Any] = frozenset()
            ) -> Traffic:
    """DRAM traffic of every candidate with each operand at its best level (module
    docstring). ``sizes``: elements of each operand in the GEMM view; ``capacity`` /
    ``half``: bytes an operand may keep when fetched once / more than once; ``resident``: the
    operands on chip (no traffic). All four levels are evaluated at once (arrays of shape
    ``(candidates, 4)``; the parts that depend on the candidates alone come from
    :func:`.candidates.candidate_arrays`). Each number may instead be an array of one value
    per candidate (shape ``(candidates, 1)``; ``resident``: per operand, a boolean per
    candidate): candidates of several GEMMs in one call (:func:`.search.choose_all`), every
    operation elementwise."""
    fetched_once = geo["fetched_once"]
    n_cand = geo["n"].shape[0]
    tie = geo["tie"]
    on_chip = ({op: op in resident for op in OPERAND_DIMS} if isinstance(resident, frozenset)
               else resident)
    reads: dict[str, np.ndarray] = {}
    levels: dict[str, np.ndarray] = {}
    held: dict[str, np.ndarray] = {}
    writes = np.zeros(n_cand)
    rows = np.arange(n_cand)
    for op in OPERAND_DIMS:
        key = op if op != "ofmap" else "psum"
        on = on_chip[op]
        if on is True:
            reads[key] = np.zeros(n_cand)
            levels[op], held[op] = np.full(n_cand, -1, dtype=np.int64), np.ones(n_cand)
            continue
        i = DIM_INDEX[IRRELEVANT[op]]
        b_op = nbytes[op]
        rep = geo["rep"][i]
        area = geo[f"area_{op}"]
        # bytes kept (0 where the operand streams: 0 x a finite width)
        need = (area * b_op.hold if np.isfinite(b_op.hold).all()
                else np.where(geo["reuse"][i], area * b_op.hold, 0.0))
        limit = np.where(fetched_once, capacity[op], half[op])
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(need <= limit, 1.0, limit / np.where(need > 0, need, 1.0))
        stream_rep = geo["stream_rep"][i]
        w = None  # inputs write nothing
        if op == "ofmap":
            r_h, w_h = _psum_bytes(sizes[op], b_op, rep)
            r_s, w_s = _psum_bytes(sizes[op], b_op, stream_rep)
            r, w = rho * r_h + (1 - rho) * r_s, rho * w_h + (1 - rho) * w_s
        else:
            r = sizes[op] * b_op.dram * (rho * rep + (1 - rho) * stream_rep)
        cost = r if w is None else r + w
        # least traffic; ties (within 1e-12 per non-trivial loop) go to the option with the
        # fewest non-trivial loops inside, and among its levels to the innermost (the scan
        # runs from level 3 down). Counting loops, not levels, makes the choice the same for
        # loop orders that differ only in where trivial loops sit (:mod:`.search` evaluates
        # one of them)
        best = 3 - np.argmin(cost[:, ::-1] * tie, axis=1)
        reads[key] = r[rows, best]
        if w is not None:
            writes = writes + w[rows, best]
        levels[op], held[op] = best, rho[rows, best]
        if on is not False:  # per candidate: those with the operand on chip move none of it
            reads[key] = np.where(on, 0.0, reads[key])
            levels[op], held[op] = np.where(on, -1, best), np.where(on, 1.0, held[op])
            if w is not None:
                writes = np.where(on, 0.0, writes)
    return Traffic(reads, writes, levels, held)


def _psum_bytes(elems: float, b: OperandBytes, k_out: np.ndarray) -> tuple[np.ndarray, ...]:
    """(reads, writes) of partial sums visiting DRAM ``k_out`` times (module docstring)."""
    spills = k_out - 1
    return elems * spills * b.hold, elems * (spills * b.hold + b.final)


@dataclass(frozen=True, slots=True)
class FoldTable:
    """Every fold of one GEMM in execution order (all arrays of one length).

    ``unit``/``extent``: per dimension, the fold's unit index (the piece index on the
    streamed axis) and its extent; ``tile``: its tile index along each dimension;
    ``loads``: DRAM bytes each operand needs before the fold (``psum``: spilled partial sums
    read back); ``stores``: partial sums and outputs written after it; ``final_bytes``: the
    output bytes among them; ``producer``: the fold whose stores a ``psum`` load reads
    (``-1``: none); ``k_first``: the fold makes the first contribution to its outputs."""

    unit: dict[str, np.ndarray]
    extent: dict[str, np.ndarray]
    tile: dict[str, np.ndarray]
    loads: dict[str, np.ndarray]
    stores: np.ndarray
    final_bytes: np.ndarray
    producer: np.ndarray
    k_first: np.ndarray

    @property
    def n_folds(self) -> int:
        return len(self.stores)


def fold_table(grid: Grid, nest: Nest, storage: Mapping[str, Storage],
               nbytes: Mapping[str, OperandBytes]) -> FoldTable:
    """The folds of ``nest`` with their DRAM loads and stores (vectorised, one GEMM)."""
    tiles = {d: grid.axes[d].tiles(nest.per_tile[d]) for d in DIMS}
    counts = [len(tiles[d][0]) for d in nest.order]
    grid_idx = np.indices(counts).reshape(3, -1)
    tile = {d: grid_idx[j] for j, d in enumerate(nest.order)}
    per = np.ones(grid_idx.shape[1], dtype=np.int64)
    cnt = {}
    for d in grid.within:
        cnt[d] = tiles[d][1][tile[d]]
        per = per * cnt[d]
    total = int(per.sum())
    owner = np.repeat(np.arange(len(per)), per)
    local = np.arange(total) - np.repeat(np.cumsum(per) - per, per)
    tile = {d: t[owner] for d, t in tile.items()}
    inner: dict[str, np.ndarray] = {}
    last_inner: dict[str, np.ndarray] = {}
    for d in reversed(grid.within):
        c = cnt[d][owner]
        inner[d], local = local % c, local // c
        last_inner[d] = inner[d] == c - 1
    unit, extent = {}, {}
    for d in DIMS:
        first, _, ext = tiles[d]
        if grid.axes[d].streamed:
            unit[d], extent[d] = tile[d], ext[tile[d]]
        else:
            unit[d] = first[tile[d]] + inner[d]
            extent[d] = grid.axes[d].units[unit[d]]  # type: ignore[index]
    pos = {d: j + 1 for j, d in enumerate(nest.order)}
    n_tiles = {d: len(tiles[d][0]) for d in DIMS}
    loads = {}
    for op in ("ifmap", "filter"):
        st = storage[op]
        a, b = OPERAND_DIMS[op]
        if st.level < 0:
            loads[op] = np.zeros(total)
            continue
        i = IRRELEVANT[op]
        new = np.ones(total, dtype=bool)
        if pos[i] > st.level:
            new &= tile[i] == 0
        if i in inner:
            new &= inner[i] == 0
        elems = extent[a] * extent[b] * nbytes[op].dram
        loads[op] = elems * (st.held * new + (1.0 - st.held))
    # partial sums: K loops inside / outside the ofmap's level
    st = storage["ofmap"]
    b_o = nbytes["ofmap"]
    k_inside: list[tuple[np.ndarray, np.ndarray]] = (
        [] if "K" not in inner else [(inner["K"] == 0, last_inner["K"])])
    k_outside: list[tuple[np.ndarray, np.ndarray]] = []
    k_tile = (tile["K"] == 0, tile["K"] == n_tiles["K"] - 1)
    (k_inside if pos["K"] > st.level else k_outside).append(k_tile)
    ones = np.ones(total, dtype=bool)

    def every(pairs: list[tuple[np.ndarray, np.ndarray]], j: int) -> np.ndarray:
        out = ones
        for pair in pairs:
            out = out & pair[j]
        return out

    first_in, last_in = every(k_inside, 0), every(k_inside, 1)
    init_out, final_out = every(k_outside, 0), every(k_outside, 1)
    all_first, all_last = first_in & init_out, last_in & final_out
    rho = st.held if st.level >= 0 else 1.0
    slice_o = (extent["M"] * extent["N"]).astype(np.float64)
    held_store = np.where(last_in, np.where(final_out, b_o.final, b_o.hold), 0.0)
    stream_store = np.where(all_last, b_o.final, b_o.hold)
    stores = slice_o * (rho * held_store + (1 - rho) * stream_store)
    held_load = (first_in & ~init_out) * b_o.hold
    stream_load = (~all_first) * b_o.hold
    loads["psum"] = slice_o * (rho * held_load + (1 - rho) * stream_load)
    final_bytes = slice_o * b_o.final * (rho * (last_in & final_out) + (1 - rho) * all_last)
    producer = np.full(total, -1, dtype=np.int64)
    if loads["psum"].any():
        key = unit["M"] * (int(unit["N"].max()) + 1) + unit["N"]
        order = np.argsort(key, kind="stable")
        same = np.zeros(total, dtype=bool)
        same[1:] = key[order][1:] == key[order][:-1]
        prev = np.where(same, np.roll(order, 1), -1)
        producer[order] = prev
        producer = np.where(loads["psum"] > 0, producer, -1)
    return FoldTable(unit, extent, tile, loads, stores, final_bytes, producer, all_first)
