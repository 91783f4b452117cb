"""What a mapped layer is: per-tile work and traffic (:class:`TileSchedule`) and the
layer-level figures (:class:`LayerMapping`) every compute unit returns to the engine.

A *tile* is the unit the SimPy engine double-buffers: the DRAM loads it needs before it runs,
the busy cycles of the compute unit on it, and the outputs it stores afterwards.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simulator.errors import MappingError
from simulator.workload.layer import Layer


class Buffer(Protocol):
    """What the mapping needs of an SRAM buffer (:class:`simulator.hardware.memory.Sram`)."""

    @property
    def capacity_bytes(self) -> float: ...

    @property
    def tile_bytes(self) -> float: ...

    @property
    def bits_per_cycle(self) -> float: ...

    @property
    def word_bits(self) -> int: ...


#: A TileSchedule field left to its default (filled in ``__post_init__``).
_UNSET = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class TileSchedule:
    """One entry per tile; all arrays are int64 and of equal length (checked).

    ``busy_cycles``: cycles the compute unit is busy on the tile (closed form, stretched when an
    SRAM port is too narrow). ``*_load_bytes``: DRAM -> SRAM bytes the tile needs
    (``psum`` = spilled partial sums read back into the ofmap buffer). ``store_bytes``: ofmap
    bytes written to DRAM for the tile (outputs and spilled partial sums).

    Data streams inside a tile (the engine, :mod:`simulator.engine`): ``head_load_bytes`` of
    the loads (the first fold's) must arrive before the tile's compute starts, and the last
    ``tail_cycles`` of its work need all of them; ``store_tail_bytes`` of the stores (the last
    fold's) leave after the compute ends, the rest while it runs. ``psum_after``: the tile
    whose stores this tile's partial-sum loads read back (``-1``: none), so they wait for its
    drain. Defaults: no streaming (everything before / after the tile), no dependency.
    """

    busy_cycles: np.ndarray
    ifmap_load_bytes: np.ndarray
    filter_load_bytes: np.ndarray
    psum_load_bytes: np.ndarray
    store_bytes: np.ndarray
    head_load_bytes: np.ndarray = dataclasses.field(default_factory=lambda: _UNSET)
    tail_cycles: np.ndarray = dataclasses.field(default_factory=lambda: _UNSET)
    store_tail_bytes: np.ndarray = dataclasses.field(default_factory=lambda: _UNSET)
    psum_after: np.ndarray = dataclasses.field(default_factory=lambda: _UNSET)

    def __post_init__(self) -> None:
        n = len(self.busy_cycles)
        defaults = {"head_load_bytes": self.load_bytes, "tail_cycles": self.busy_cycles,
                    "store_tail_bytes": self.store_bytes,
                    "psum_after": np.full(n, -1, dtype=np.int64)}
        for name, value in defaults.items():
            if getattr(self, name) is _UNSET:
                object.__setattr__(self, name, value)
        for f in dataclasses.fields(self):
            arr = getattr(self, f.name)
            if len(arr) != n:
                raise ValueError(f"TileSchedule.{f.name} has {len(arr)} entries, busy_cycles {n}")
        after = self.psum_after
        if n and ((after < -1) | (after >= np.arange(n))).any():  # the engine would wait forever
            raise ValueError("TileSchedule.psum_after must name an earlier tile or be -1")

    @property
    def n_tiles(self) -> int:
        return int(self.busy_cycles.shape[0])

    @property
    def load_bytes(self) -> np.ndarray:
        """All DRAM reads of each tile."""
        return self.ifmap_load_bytes + self.filter_load_bytes + self.psum_load_bytes


@dataclass(frozen=True, slots=True)
class LayerMapping:
    """A mapped layer: its tiles and the layer-level closed-form figures."""

    layer: Layer
    unit: str
    tiles: TileSchedule
    compute_cycles: int
    folds: int
    mapping_efficiency: float
    counts: Mapping[str, int]
    weight_density: float = 1.0
    act_density: float = 1.0
    load_imbalance: float = 1.0
    macs_per_pe_per_cycle: float = 1.0
    weight_bits: int = 0
    act_bits: int = 0
    pe_kind: str = ""
    #: stored bits per element of ``ifmap``/``filter`` incl. format metadata (empty: as is)
    storage_bits: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: the operand kept in the PEs: ``filter`` (ws), ``ifmap`` (is) or ``psum`` (os, and
    #: engines that accumulate outputs in their PEs, as EIE and SCNN do); ``all`` for
    #: row-stationary, whose PEs keep all three in scratchpads
    stationary: str = "psum"
    #: partial-sum width in bits
    acc_bits: int = 32
    #: operand pairs one PE reduces per step into one partial sum (a packed word: 64 for a
    #: 64-bit XNOR word); accumulator actions are counted per word
    values_per_word: int = 1
    #: the arithmetic the layer runs in (``int``, ``fp``, ``bfp``): its MAC is priced so
    number_format: str = "int"
    #: the temporal mapping (:mod:`simulator.mapping.nest`): tile loop order, outer first
    #: (``"N>K>M"``), tile sizes in GEMM elements, and the operands loaded exactly once
    loop_order: str = ""
    tile_dims: Mapping[str, int] = dataclasses.field(default_factory=dict)
    resident: str = ""
    #: candidates of the tiling search's enumeration (1: the fixed order)
    candidates: int = 0
    #: the layer's weights as stored (bytes incl. format metadata): what a preload moves
    weight_bytes: float = 0.0
    #: final output bytes kept on chip for the consumers (written to the ifmap buffer)
    kept_bytes: int = 0
    #: what the unit did that a reader should know (padding, compressed storage, ...)
    notes: tuple[str, ...] = ()


def chunks(size: int, lanes: int) -> np.ndarray:
    """``size`` split into chunks of ``lanes`` (the last one partial): the extents of folds."""
    n = -(-size // lanes)
    out = np.full(n, lanes, dtype=np.int64)
    out[-1] = size - lanes * (n - 1)
    return out


def to_int(values: np.ndarray) -> np.ndarray:
    """Whole bytes (or cycles) per entry of a float array: every prefix sum is rounded *up*
    (packed sub-byte data still occupies whole bytes), so the total is ``ceil(sum)`` and no
    entry's rounding accumulates. A tolerance of ``1e-9`` plus ``1e-10`` of the running sum
    absorbs the float noise of long exact sums."""
    return np.diff(whole_up_to(np.cumsum(values, dtype=np.float64)), prepend=0)


def whole_up_to(cum: np.ndarray) -> np.ndarray:
    """:func:`to_int`'s rounding of running sums themselves: whole bytes (or cycles) up to
    each one."""
    return np.maximum(np.ceil(cum - 1e-9 - 1e-10 * np.abs(cum)).astype(np.int64), 0)


def union_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted distinct values of two integer arrays (``np.union1d``'s result, without its
    masked-array check: ``np.unique`` imports ``numpy.ma``, 15-25 ms on a process's first
    call; ``tests/test_startup.py`` runs both)."""
    both = np.concatenate([a, b]).astype(np.int64, copy=False)
    both.sort()
    keep = np.ones(len(both), dtype=bool)
    keep[1:] = both[1:] != both[:-1]
    return both[keep]


def tile_starts(streams: list[tuple[np.ndarray, float]], n: int) -> np.ndarray:
    """Fold indices where a new tile starts: an operand stream crosses its tile capacity."""
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for data, cap in streams:
        if not math.isfinite(cap) or not data.any():
            continue
        chunk = np.ceil(np.cumsum(data) / cap).astype(np.int64)
        new[1:] |= chunk[1:] != chunk[:-1]
    return np.flatnonzero(new)


def even_tiles(busy: int, loads: Mapping[str, float], store: float,
               buffers: Mapping[str, Buffer], resident: frozenset[str] = frozenset(),
               keep_output: bool = False) -> TileSchedule:
    """A layer split evenly into the fewest tiles whose loads and store each fit a buffer's
    tile capacity (used by layers without folds: vector ops, EIE- and SCNN-like arrays).

    Work and data are uniform within a tile, so a tile streams: its compute may start once one
    cycle's worth of its loads is in and finishes one cycle after the last arrives; its stores
    leave as they are produced. Operands in ``resident`` are already on chip (no loads);
    ``keep_output`` keeps the outputs on chip (no stores)."""
    loads = {op: (0.0 if op in resident else v) for op, v in loads.items()}
    store = 0.0 if keep_output else store
    n = max(1, *(math.ceil(loads[b] / buffers[b].tile_bytes) for b in ("ifmap", "filter")),
            math.ceil(store / buffers["ofmap"].tile_bytes))
    n = min(n, max(busy, 1))

    def split(total: float) -> np.ndarray:
        return to_int(np.full(n, total / n))

    b = split(busy)
    ld = {k: split(loads[k]) for k in ("ifmap", "filter")}
    st = split(store)
    per_cycle = np.maximum(b, 1)
    total = ld["ifmap"] + ld["filter"]
    return TileSchedule(busy_cycles=b, ifmap_load_bytes=ld["ifmap"],
                        filter_load_bytes=ld["filter"],
                        psum_load_bytes=np.zeros(n, dtype=np.int64), store_bytes=st,
                        head_load_bytes=np.minimum(total, -(-total // per_cycle)),
                        tail_cycles=np.minimum(b, 1),
                        store_tail_bytes=np.minimum(st, -(-st // per_cycle)))


#: Bounds on what one layer may allocate or schedule (entries of per-fold arrays, tiles the
#: SimPy engine steps through, boolean mask elements), so that a typo (a 100000 x 100000
#: input, M = 10^12) is a clear error instead of a machine out of memory or a run of hours.
#: At 8 bytes per entry and ~20 per-fold arrays, MAX_FOLDS is ~700 MB.
MAX_FOLDS = 1 << 22
MAX_TILES = 1 << 20
MAX_MASK_ELEMENTS = 1 << 30


def check_size(layer: str, what: str, n: int, bound: int, name: str) -> None:
    """Raise :class:`MappingError` when layer ``layer`` needs ``n`` > ``bound`` ``what``."""
    if n > bound:
        raise MappingError(f"layer {layer!r}: {what} would need {n:,} entries, over the bound "
                           f"of {bound:,} (simulator.mapping.schedule.{name}); split the layer "
                           f"(e.g. fewer output pixels or tokens per layer) or raise the bound")


def check_mappable(layer: Layer) -> None:
    """Raise :class:`MappingError` for a layer with no work to map."""
    if layer.kind == "gemm" and min(layer.M, layer.K, layer.N, layer.count) <= 0:
        raise MappingError(f"layer {layer.name!r}: GEMM dims must be positive "
                           f"(M={layer.M}, K={layer.K}, N={layer.N}, count={layer.count})")
