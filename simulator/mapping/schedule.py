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


@dataclass(frozen=True, slots=True)
class TileSchedule:
    """One entry per tile; all arrays are int64 and of equal length.

    ``busy_cycles``: cycles the compute unit is busy on the tile (closed form, stretched when an
    SRAM port is too narrow). ``*_load_bytes``: DRAM -> SRAM bytes needed before the tile runs
    (``psum`` = spilled partial sums read back into the ofmap buffer). ``store_bytes``: ofmap
    bytes written to DRAM after the tile.
    """

    busy_cycles: np.ndarray
    ifmap_load_bytes: np.ndarray
    filter_load_bytes: np.ndarray
    psum_load_bytes: np.ndarray
    store_bytes: np.ndarray

    @property
    def n_tiles(self) -> int:
        return int(self.busy_cycles.shape[0])


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
    loop_outer: str = ""
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
    #: engines that accumulate outputs in their PEs, as EIE and SCNN do)
    stationary: str = "psum"
    #: partial-sum width in bits
    acc_bits: int = 32
    #: operand pairs one PE reduces per step into one partial sum (a packed word: 64 for a
    #: 64-bit XNOR word); accumulator actions are counted per word
    values_per_word: int = 1
    #: the arithmetic the layer runs in (``int``, ``fp``, ``bfp``): its MAC is priced so
    number_format: str = "int"
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
    entry's rounding accumulates. ``1e-9`` absorbs float noise in exact sums."""
    cum = np.ceil(np.cumsum(values, dtype=np.float64) - 1e-9).astype(np.int64)
    return np.diff(np.maximum(cum, 0), prepend=0)


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
               buffers: Mapping[str, Buffer]) -> TileSchedule:
    """A layer split evenly into the fewest tiles whose loads and store each fit a buffer's
    tile capacity (used by layers without folds: vector ops, EIE- and SCNN-like arrays)."""
    n = max(1, *(math.ceil(loads[b] / buffers[b].tile_bytes) for b in ("ifmap", "filter")),
            math.ceil(store / buffers["ofmap"].tile_bytes))
    n = min(n, max(busy, 1))

    def split(total: float) -> np.ndarray:
        return to_int(np.full(n, total / n))

    return TileSchedule(busy_cycles=split(busy), ifmap_load_bytes=split(loads["ifmap"]),
                        filter_load_bytes=split(loads["filter"]),
                        psum_load_bytes=np.zeros(n, dtype=np.int64), store_bytes=split(store))


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
