"""EIE-like sparse matrix-vector engine (Han et al., "EIE", ISCA 2016, sections III-IV).

It maps a layer itself into the same :class:`~simulator.mapping.schedule.TileSchedule` the SimPy
engine runs, so memory, stalls and reports work as for the systolic array. Work is counted
from the real (or seeded random) masks of :mod:`simulator.mapping.masks`, vectorised, and
timed through the activation queues of :mod:`simulator.hardware.eie_queue`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import Field

from simulator.hardware.eie_queue import masked_queue_cycles, queue_cycles
from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import pe_kind
from simulator.hardware.registries import PE_ARRAYS
from simulator.hardware.unit import ParamWidths
from simulator.mapping.formats import line_entries
from simulator.mapping.masks import act_mask, act_mask_sample, weight_mask, weight_mask_pieces
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.schedule import Buffer, LayerMapping, even_tiles
from simulator.registry import ParamsModel
from simulator.workload.layer import Layer

#: work elements (vectors x broadcasts x PEs) per vectorised chunk of the reference queue
#: model, and weight-mask elements per chunk of the stored-entry count
_CHUNK = 1 << 19


@PE_ARRAYS.register("eie")
class EieArray(ParamWidths):
    """EIE-like sparse matrix-vector engine (Han et al., "EIE", ISCA 2016, sections III-IV).

    ``n_pes`` PEs; output row n belongs to PE ``n mod n_pes``. Weights are stored per PE in
    compressed sparse column form: one entry per nonzero (plus a padding zero for each run of
    ``2**index_bits`` zeros or more) holding the weight (a ``ceil(log2 k)``-bit index into the
    layer's k-entry codebook, else the value itself) and an ``index_bits`` relative row
    index, and ``pointer_bits`` start/end pointers per PE and column (read together from two
    pointer banks, section IV "Pointer Read Unit": 2 pointers per PE per broadcast).

    Only nonzero activations are broadcast, at most one per cycle; each goes into every PE's
    activation queue of ``queue_depth`` (EIE's 8, Fig. 8); PE p walks its entries of that
    column, one MAC per cycle: the queue model of :mod:`simulator.hardware.eie_queue` gives the
    cycles of one input vector, imbalance stalls included. A batch of M vectors (or a
    convolution's M output pixels, as its im2col GEMM) runs one vector after another with a
    barrier between them: the PEs' output registers hold one vector's outputs (section IV,
    "Activation Read/Write": source and destination register files swap per vector).

    Arithmetic: the weight decoder expands a codebook index to its ``weight_bits`` value
    (16-bit fixed point in EIE, section IV "Arithmetic Unit"): one ``codebook_read`` per MAC,
    and the multiplier is ``weight_bits x act_bits`` wide (the layer's decoded width when it
    states one), never the index width. Layers without a codebook store and multiply their
    own weight width.
    """

    class Params(ParamsModel):
        n_pes: int = Field(default=64, gt=0, le=1 << 20)
        weight_bits: int = Field(default=16, gt=0, le=32, strict=True)
        act_bits: int = Field(default=16, gt=0, le=32, strict=True)
        acc_bits: int = Field(default=32, gt=0, le=64, strict=True)
        index_bits: int = Field(default=4, gt=0, le=16, strict=True)
        pointer_bits: int = Field(default=16, gt=0, le=32, strict=True)
        queue_depth: int = Field(default=8, gt=0, le=1024, strict=True)

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name, self.params = name, params
        self.kind: PEKind = pe_kind("mac")  # one multiplier-accumulator datapath per PE

    @property
    def n_pes(self) -> int:
        return self.params.n_pes

    @property
    def vector_lanes(self) -> None:
        """No natural width for a vector unit: the architecture must name one."""
        return None

    def _entries(self, layer: Layer, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(entries (g, K, PEs), w_k (g, K))``: stored entries of each column in each PE
        (padding zeros incl.) and nonzero weights per column, over pieces of K rows of the
        weight mask (:func:`~simulator.mapping.masks.weight_mask_pieces`: a density-only
        mask is drawn piece by piece), so memory is one piece's, plus ``O(K x PEs)``."""
        g, k, n = layer.count, layer.K, layer.N
        pes = self.params.n_pes
        rows_per_pe = -(-n // pes)
        pieces = weight_mask_pieces(layer, seed, _CHUNK // (rows_per_pe * pes))
        if pieces is None:  # dense: PE p stores one entry per own row, no gaps (closed form)
            own = -(-(n - np.arange(pes)) // pes)
            return (np.broadcast_to(own, (g, k, pes)).astype(np.int64),
                    np.full((g, k), n, dtype=np.int64))
        out = np.empty((g, k, pes), dtype=np.int64)
        w_k = np.empty((g, k), dtype=np.int64)
        for gi, k0, piece in pieces:
            r = piece.shape[0]
            wp = np.pad(piece, ((0, 0), (0, rows_per_pe * pes - n)))
            # (rows, rows_per_pe, PEs) -> lines (rows, PE) over the PE's own rows
            lines = wp.reshape(r, rows_per_pe, pes).transpose(0, 2, 1)
            out[gi, k0:k0 + r] = line_entries(lines.reshape(-1, rows_per_pe),
                                              self.params.index_bits).reshape(r, pes)
            w_k[gi, k0:k0 + r] = piece.sum(axis=1)
        return out, w_k

    def _entries_long(self, layer: Layer, w: np.ndarray | None) -> np.ndarray:
        """The reference of :meth:`_entries`' entries: the whole mask at once."""
        g, k, n = layer.count, layer.K, layer.N
        pes = self.params.n_pes
        if w is None:
            own = -(-(n - np.arange(pes)) // pes)
            return np.broadcast_to(own, (g, k, pes)).astype(np.int64)
        rows_per_pe = -(-n // pes)
        wp = np.pad(w, ((0, 0), (0, 0), (0, rows_per_pe * pes - n)))
        # (g, K, rows_per_pe, PEs) -> lines (g, K, PE) over the PE's own rows
        lines = wp.reshape(g, k, rows_per_pe, pes).transpose(0, 1, 3, 2)
        return line_entries(lines.reshape(-1, rows_per_pe),
                            self.params.index_bits).reshape(g, k, pes)

    def _cycles(self, entries: np.ndarray, a: np.ndarray | None, m: int) -> int:
        """Cycles of all ``g x m`` input vectors through the queues, one after another
        (:func:`~simulator.hardware.eie_queue.masked_queue_cycles`)."""
        depth = self.params.queue_depth
        total = 0
        for gi in range(entries.shape[0]):  # groups: a handful (depthwise: one per channel)
            if a is None:  # every vector broadcasts all K columns: one vector's time, m times
                total += m * int(queue_cycles(entries[gi], depth))
            else:
                total += int(masked_queue_cycles(entries[gi], a[gi], depth).sum())
        return total

    def _cycles_long(self, entries: np.ndarray, a: np.ndarray | None, m: int) -> int:
        """The reference of :meth:`_cycles`: each vector's work gathered into a
        ``(vectors, broadcasts, PEs)`` array and run through :func:`queue_cycles`."""
        depth, pes = self.params.queue_depth, self.params.n_pes
        total = 0
        for gi in range(entries.shape[0]):
            ent = entries[gi]
            if a is None:
                total += m * int(queue_cycles(ent, depth))
                continue
            rows = a[gi]
            nnz = rows.sum(axis=1)
            width = int(nnz.max()) if len(nnz) else 0
            if width == 0:
                continue
            # each vector's nonzero columns, left-aligned: stable sort puts them first, in order
            order = np.argsort(~rows, axis=1, kind="stable")[:, :width]
            valid = np.arange(width)[None, :] < nnz[:, None]
            step = max(1, _CHUNK // (width * pes))
            for s in range(0, rows.shape[0], step):
                idx, ok = order[s:s + step], valid[s:s + step]
                total += int(queue_cycles(ent[idx], depth, ok).sum())
        return total

    def work(self, layer: Layer, seed: int,
             long_way: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(entries (g, K, PEs), w_k (g, K), a_k (g, K), cycles)`` of a layer.

        Batch samples that share one activation mask (a trace's, or a conv's one drawn input
        tensor: :func:`~simulator.mapping.masks.act_mask_sample`) are counted once and
        multiplied: with the barrier between vectors, a layer's cycles are the sum of its
        vectors' own. ``long_way``: the reference (the full per-sample mask, the whole weight
        mask at once, the gathered queue model), identical integers (tested)."""
        g, m, k, n = layer.count, layer.M, layer.K, layer.N
        if long_way:
            w = weight_mask(layer, seed)
            a = act_mask(layer, seed)
            entries = self._entries_long(layer, w)
            w_k = np.full((g, k), n, dtype=np.int64) if w is None else w.sum(axis=2)
            a_k = np.full((g, k), m, dtype=np.int64) if a is None else a.sum(axis=1)
            return entries, w_k, a_k, self._cycles_long(entries, a, m)
        a, reps = act_mask_sample(layer, seed)
        entries, w_k = self._entries(layer, seed)
        a_k = np.full((g, k), m, dtype=np.int64) if a is None else reps * a.sum(axis=1)
        return entries, w_k, a_k, reps * self._cycles(entries, a, m // reps)

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int,
                  ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
        p = self.params
        g, m, k, n = layer.count, layer.M, layer.K, layer.N
        pes = p.n_pes
        entries, w_k, a_k, cycles = self.work(layer, seed)
        work = np.einsum("gk,gkp->p", a_k.astype(np.float64), entries.astype(np.float64))
        broadcasts = int(a_k.sum())
        cycles = max(cycles, 1)
        cb = layer.weight.codebook_size
        a_bits = layer.act_bits or p.act_bits
        value_bits = ((layer.weight.value_bits or p.weight_bits) if cb
                      else (layer.weight_bits or p.weight_bits))
        stored_bits = max(1, math.ceil(math.log2(cb))) if cb else value_bits
        entry_bits = stored_bits + p.index_bits
        stored = int(entries.sum())
        pointers = g * k * pes * p.pointer_bits
        codebook = (cb * value_bits) if cb else 0  # the shared weights themselves
        weight_bytes = (stored * entry_bits + pointers + codebook) / 8
        loads = {"ifmap": layer.ifmap_elements * a_bits / 8, "filter": weight_bytes}
        store = layer.ofmap_elements * a_bits / 8
        effectual = int((a_k * w_k).sum())
        padded_macs = int(work.sum())
        counts = {"sram_ifmap_reads": broadcasts, "sram_filter_reads": padded_macs,
                  # start and end pointer of each broadcast column, in every PE
                  "sram_filter_read_bits": broadcasts * pes * 2 * p.pointer_bits,
                  "sram_ofmap_writes": layer.ofmap_elements, "sram_ofmap_reads": 0,
                  "effectual_macs": effectual, "gated_macs": 0,
                  "computed_macs": padded_macs,
                  "skipped_macs": layer.macs - padded_macs,
                  "arith.mac": padded_macs,
                  "weight_metadata_bytes": round((stored * p.index_bits + pointers) / 8),
                  "act_metadata_bytes": 0}
        if cb:
            counts["arith.codebook_read"] = padded_macs
        mean = work.mean()
        tiles = even_tiles(cycles, loads, store, ctx.buffers or buffers, ctx.resident,
                           ctx.keep_output)
        return LayerMapping(layer, self.name, tiles,
                            compute_cycles=cycles, folds=1,
                            mapping_efficiency=min(n, pes) / pes, counts=counts,
                            weight_density=float(w_k.sum()) / (g * k * n),
                            act_density=float(a_k.sum()) / (g * m * k),
                            load_imbalance=float(work.max() / mean) if mean > 0 else 1.0,
                            pe_kind="mac", weight_bits=value_bits, act_bits=a_bits,
                            storage_bits={"filter": float(entry_bits)},
                            acc_bits=p.acc_bits, weight_bytes=weight_bytes,
                            kept_bytes=math.ceil(store) if ctx.keep_output else 0)
