"""The layer memo: a layer whose content equals one simulated before reuses its result.

Within one :func:`~simulator.simulation.simulate` call identical layers (the 32 blocks of a
decoder, ResNet's repeated bottlenecks) map and run once; still one report row per layer,
each under its own name. Across calls (sweeps over arch axes that leave most layers alike,
repeated runs in a notebook) an explicit :class:`LayerCache` passed to ``simulate(...,
cache=...)`` keeps results: the library has no global state, so a cache lives exactly as
long as its owner keeps it (the sweep's workers keep one per chunk of points).

**The key** (:func:`layer_key`, :meth:`LayerCache.key`) is a content hash of everything a
layer's result depends on: its shape and lowering (every :class:`~simulator.workload.layer.
Layer` field but ``name`` and ``inputs``), each operand's bits, density, structure, scheme,
codebook, scale bits and its **mask by content** (BLAKE2b of the packed bits and the shape,
never compared element-wise; computed once per mask object); the architecture (its validated
configuration, but its name); the energy prices the tiling search ranks with; the seed; and the
mapping context the residency plan hands the unit (operands on chip, output kept, buffer
capacity left, kept input share). Two cases add the layer's **name**, because the result
depends on it: an operand with a density but no mask draws its mask from a seed derived from
the name (:func:`simulator.mapping.masks.mask_seed`), so two such layers are equal only in
distribution, not in their counts; and a unit configured per layer name (the FPGA target's
``folding:``, an ``explicit`` placement of layers by name on several PE arrays). The
shortcut is exact by construction, and tested equal to simulating every layer
(``tests/test_memo.py``: reports identical with and without the memo, residency and preload
included).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.cost.table_file import TableFiles
from simulator.mapping.options import MappingContext, SharedMemo
from simulator.report import LayerResult
from simulator.workload.layer import Layer, Operand

#: Results a :class:`LayerCache` keeps by default (least recently used dropped first); a
#: result is a few kB (its action counts), so the default is a few tens of MB at most.
DEFAULT_CACHE_ENTRIES = 8192


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the simulation keeps of one mapped and simulated layer: its result (under the
    first layer's name; reuse renames it) and what the residency plan reads of its mapping."""

    result: LayerResult | None  # None: mapped to read ``weight_bytes`` only (a pin that failed)
    weight_bytes: float
    kept_bytes: int


class MaskHashes:
    """Mask digests by object identity, for one call (masks are large and, in practice,
    immutable; the objects are kept alive so that ids stay unique while it lives)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[np.ndarray, str]] = {}

    def of(self, mask: np.ndarray) -> str:
        hit = self._by_id.get(id(mask))
        if hit is not None and hit[0] is mask:
            return hit[1]
        arr = np.asarray(mask, dtype=bool)
        h = hashlib.blake2b(np.packbits(arr, axis=None).tobytes(), digest_size=16)
        h.update(repr(arr.shape).encode())
        digest = h.hexdigest()
        self._by_id[id(mask)] = (mask, digest)
        return digest


def _operand(op: Operand, hashes: MaskHashes) -> tuple[Any, ...]:
    return (op.bits, op.density, None if op.mask is None else hashes.of(op.mask), op.structure,
            op.scheme, op.codebook_size, op.value_bits, op.mask_model, op.scale_bits,
            op.dequantize)


def draws_mask(layer: Layer) -> bool:
    """Whether an operand of ``layer`` gets a mask drawn from a seed of the layer's name."""
    return any(op.mask is None and op.density < 1.0 for op in (layer.weight, layer.activation))


def layer_key(layer: Layer, hashes: MaskHashes | None = None,
              by_name: bool = False) -> tuple[Any, ...]:
    """The content of ``layer`` a result depends on (module docstring); ``by_name`` adds the
    name (also added whenever a mask is drawn from it)."""
    h = hashes if hashes is not None else MaskHashes()
    name = layer.name if by_name or draws_mask(layer) else None
    return (name, layer.op, layer.kind, layer.M, layer.K, layer.N, layer.count,
            layer.ifmap_elements, layer.filter_elements, layer.ofmap_elements,
            layer.vector_ops, layer.filter_is_weight, layer.output_bits,
            _operand(layer.weight, h), _operand(layer.activation, h),
            tuple(sorted((k, repr(v)) for k, v in layer.dims.items())))


class LayerKeys:
    """:func:`layer_key` of each layer object once per simulation (by identity, like
    :class:`MaskHashes`: the walk ahead and the run key the same layers)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Layer, bool, tuple[Any, ...]]] = {}

    def of(self, layer: Layer, hashes: MaskHashes, by_name: bool) -> tuple[Any, ...]:
        hit = self._by_id.get(id(layer))
        if hit is not None and hit[0] is layer and hit[1] == by_name:
            return hit[2]
        out = layer_key(layer, hashes, by_name)
        self._by_id[id(layer)] = (layer, by_name, out)
        return out


def context_key(ctx: MappingContext) -> tuple[Any, ...]:
    """The per-layer part of a mapping context (the options and prices are in the base)."""
    views = None if ctx.buffers is None else tuple(  # a BufferView's fields (no astuple copy)
        (b, (v.capacity_bytes, v.tile_bytes, v.bits_per_cycle, v.word_bits))
        for b, v in sorted(ctx.buffers.items()))
    return (tuple(sorted(ctx.resident)), ctx.keep_output, views, ctx.kept_inputs,
            ctx.fold_classes)


def key(base: str, layer: Layer, ctx: MappingContext, pin: bool, hashes: MaskHashes,
        by_name: bool = False, ctx_key: tuple[Any, ...] | None = None,
        layers: LayerKeys | None = None) -> tuple[Any, ...]:
    """The memo key of one layer in one context (``pin``: mapped with its weights pinned;
    ``ctx_key``: ``context_key(ctx)`` if the caller has it; ``layers``: layer keys already
    derived)."""
    lk = layer_key(layer, hashes, by_name) if layers is None else layers.of(layer, hashes,
                                                                             by_name)
    return (base, lk, context_key(ctx) if ctx_key is None else ctx_key, pin)


def base_key(arch_text: str, ctx: MappingContext, seed: int) -> str:
    """What all layers of one call share: architecture, options, search prices, seed."""
    costs = {f.name: (sorted(v.items()) if isinstance(v, Mapping) else v)
             for f in dataclasses.fields(ctx.costs) for v in (getattr(ctx.costs, f.name),)}
    text = repr((arch_text, ctx.params.model_dump_json(), costs, seed))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class LayerCache(SharedMemo[Outcome]):
    """A bounded memo of layer outcomes keyed by content (module docstring). Pass the same
    instance to several :func:`~simulator.simulation.simulate` calls to share results
    between them; ``max_entries`` bounds it (least recently used dropped first). It also
    keeps the energy-table and area files those calls read, parsed once by content
    (:class:`~simulator.cost.table_file.TableFiles`: a changed file is re-read), and the
    tiling search's candidate geometry by grid content
    (:class:`~simulator.mapping.options.SharedMemo`: layers of equal shape on arrays of
    equal shape, whatever their buffers and prices); both bounded, both exact."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"LayerCache max_entries must be >= 1, got {max_entries}")
        super().__init__(max_entries)
        #: the energy-table and area files its simulations read, parsed once (by content)
        self.tables = TableFiles()
        #: the tiling search's candidates by grid, for layers of equal shape on equal arrays
        self.geometry: SharedMemo[object] = SharedMemo()


def renamed(result: LayerResult, layer: Layer, preload_bytes: int) -> LayerResult:
    """A memoised result under ``layer``'s name with this layer's preload."""
    if result.layer == layer.name and result.preload_bytes == preload_bytes:
        return result
    return dataclasses.replace(result, layer=layer.name, preload_bytes=preload_bytes)
