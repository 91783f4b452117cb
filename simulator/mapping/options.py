"""What a mapping is asked to do: the architecture's ``mapping:`` and ``residency:`` sections,
and the per-layer context the simulation hands to every compute unit.

``mapping: {search: true, objective: edp}`` (the defaults):

* ``search``: ``true`` chooses, per layer, the loop order and the tile sizes of M, K and N
  (the streamed dimension included) under every buffer's capacity (:mod:`.search`);
  ``false`` keeps the dataflow's fixed fold order (SCALE-Sim 3.0.0's: one array fold per tile,
  the whole streamed dimension per fold), as the SCALE-Sim ``.cfg`` importer does so that its
  runs compare like with like.
* ``objective``: what the search minimises, from the analytical estimate of each candidate:
  ``latency`` (cycles), ``energy`` (pJ, priced with the architecture's own energy table) or
  ``edp`` (their product, the default: Timeloop's mapper default too, and the one figure that
  penalises both a mapping that saves DRAM energy by stalling and one that runs fast on
  wasteful refetches).

``residency: {weights: stream, activations: dram}`` (the defaults) says what survives a layer:

* ``weights: preload``: layer weights that fit in the filter buffer (in layer order, until the
  first that does not) are loaded once, before the first inference, and stay: they are
  excluded from per-inference latency and energy and reported as a one-off ``preload``.
* ``activations: keep``: a layer output that fits in the ifmap buffer (beside every other
  kept tensor still awaited by a consumer) stays there as its consumers' input, following the
  network's producer -> consumer edges (``Layer.inputs``; residual adds included); the last
  layer's output always goes to DRAM.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

Objective = Literal["latency", "energy", "edp"]
V = TypeVar("V")


class MappingParams(BaseModel):
    """``mapping:`` of an architecture file (module docstring)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    search: bool = True
    objective: Objective = "edp"


class ResidencyParams(BaseModel):
    """``residency:`` of an architecture file (module docstring)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    weights: Literal["stream", "preload"] = "stream"
    activations: Literal["dram", "keep"] = "dram"


@dataclass(frozen=True, slots=True)
class BufferView:
    """A buffer as one layer's mapping may use it: capacity left after the tensors that other
    layers keep in it (:class:`~simulator.mapping.schedule.Buffer` protocol)."""

    capacity_bytes: float
    tile_bytes: float
    bits_per_cycle: float
    word_bits: int = 8


@dataclass(frozen=True, slots=True)
class MappingCosts:
    """Per-action prices for the search's energy estimate (pJ) and the DRAM's rate.

    Built by the simulation from the architecture's energy table; an action the table lacks
    is priced 0 here (the estimate only ranks candidates; the reported energy requires every
    entry). ``sram_read`` / ``sram_write``: pJ per word of each buffer (``ifmap``, ``filter``,
    ``ofmap``); ``rf_write``: a PE-register (scratchpad) write of the stationary operand;
    ``hop``: one array-network transfer; ``leak_per_cycle``: all on-chip leakage per cycle.
    """

    dram_read_per_byte: float = 0.0
    dram_write_per_byte: float = 0.0
    sram_read: Mapping[str, float] = field(default_factory=dict)
    sram_write: Mapping[str, float] = field(default_factory=dict)
    mac: float = 0.0
    mac_idle: float = 0.0
    rf_write: float = 0.0
    hop: float = 0.0
    leak_per_cycle: float = 0.0
    dram_bytes_per_cycle: float = math.inf
    dram_latency_cycles: int = 0


class SharedMemo(Generic[V]):
    """A bounded memo by content key (least recently used dropped first), owned by its
    caller and never global. As ``MappingContext.geometry`` it keeps what a mapping derives
    from a layer's *geometry* alone, whatever the buffers, prices and residency: the tiling
    search's candidates and their tile counts and extents (:func:`.candidates.candidate_geometries`,
    keyed by the grid's content, read-only arrays; ~0.1 MB an entry for a few thousand
    candidates),
    for a :class:`~simulator.memo.LayerCache` (one per chunk of sweep points, which come in
    grid order and so share their array shape) or one ``simulate`` call. The layer memo
    itself (:class:`~simulator.memo.LayerCache`) is one too."""

    def __init__(self, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[object, ...], V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:  # no hit or miss counted, no reordering
        return key in self._entries

    def get(self, key: tuple[object, ...]) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return hit

    def put(self, key: tuple[object, ...], value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class MappingContext:
    """What the simulation tells a unit about one layer beyond the layer itself.

    ``resident``: operands already on chip (``"filter"``: preloaded weights; ``"ifmap"``: the
    input kept by its producer), which need no DRAM traffic and no buffer space of the layer;
    ``keep_output``: the layer's final output stays on chip (moved into the ifmap buffer
    instead of DRAM); ``buffers``: the capacity each buffer has left for this layer;
    ``kept_inputs``: the share of the input bytes already on chip (an add whose one input is
    kept and the other not has 0.5).
    """

    params: MappingParams = field(default_factory=MappingParams)
    costs: MappingCosts = field(default_factory=MappingCosts)
    resident: frozenset[str] = frozenset()
    keep_output: bool = False
    buffers: Mapping[str, BufferView] | None = None
    #: share of a multi-input layer's inputs kept on chip (1.0 when ``"ifmap"`` is resident)
    kept_inputs: float = 0.0
    #: folds counted per class with multiplicities (:mod:`.fold_classes`); ``False``: every
    #: fold, the long way (the reference the classes are tested against)
    fold_classes: bool = True
    #: the tiling search evaluates one of the candidates that differ only in where trivial
    #: loops sit (:func:`simulator.mapping.candidates._candidates`) and only those whose lower
    #: bound can win (:func:`simulator.mapping.search.choose_all`); ``False``: every
    #: candidate of the whole enumeration, the long way
    distinct_candidates: bool = True
    #: the bound (:func:`simulator.mapping.search.choose_all`) applies to a search of more
    #: candidates than this, all GEMMs searched together counted (fewer: one exact pass over
    #: them all costs less than the bound's two smaller ones; 0: always); the same choice
    bound_above: int = 4096
    #: the tiling search's results by their full input, shared by the layers of one
    #: ``simulate`` call (ResNet-50's 54 GEMMs have 23 distinct ones); ``None``: no memo
    memo: dict[tuple[object, ...], object] | None = field(default=None, compare=False)
    #: what the search derives from geometry alone, shared across calls (:class:`SharedMemo`);
    #: ``None``: derived for every layer, the long way
    geometry: SharedMemo[object] | None = field(default=None, compare=False)


DEFAULT_CONTEXT = MappingContext()
