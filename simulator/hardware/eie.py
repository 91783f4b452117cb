"""EIE-like sparse matrix-vector engine (Han et al., "EIE", ISCA 2016, sections III-IV).

It maps a layer itself into the same :class:`~simulator.mapping.schedule.TileSchedule` the SimPy
engine runs, so memory, stalls and reports work as for the systolic array. Work is counted
from the real (or seeded random) masks of :mod:`simulator.mapping.masks`, vectorised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field

from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import pe_kind
from simulator.hardware.registries import PE_ARRAYS
from simulator.hardware.unit import ParamWidths
from simulator.mapping.formats import line_entries
from simulator.mapping.masks import act_mask, weight_mask
from simulator.mapping.schedule import Buffer, LayerMapping, even_tiles
from simulator.registry import ParamsModel
from simulator.workload.layer import Layer


@PE_ARRAYS.register("eie")
class EieArray(ParamWidths):
    """EIE-like sparse matrix-vector engine (Han et al., "EIE", ISCA 2016, sections III-IV).

    ``n_pes`` PEs; output row n belongs to PE ``n mod n_pes``. Weights are stored per PE in
    compressed sparse column form: ``weight_bits``-bit codebook indices (``codebook_size``
    shared weights) with ``index_bits``-bit relative row indices (padding zeros for long runs)
    and a ``pointer_bits`` column pointer per PE and column. Only nonzero activations are
    broadcast, one per cycle; for each, every PE walks its entries of that column, one MAC per
    cycle. With activation queues deep enough to decouple the PEs (EIE shows near-ideal
    balance from depth 8, Fig. 9) a layer takes ``max(max_p work_p, broadcasts)`` cycles,
    where ``work_p`` sums PE p's entries over the broadcast activations. Convolutions run as
    their im2col GEMM, one output pixel (row of M) after another.
    """

    class Params(ParamsModel):
        n_pes: int = Field(default=64, gt=0, le=1 << 20)
        weight_bits: int = Field(default=4, gt=0, le=32, strict=True)
        act_bits: int = Field(default=16, gt=0, le=32, strict=True)
        acc_bits: int = Field(default=32, gt=0, le=64, strict=True)
        codebook_size: int = Field(default=16, ge=2, strict=True)
        index_bits: int = Field(default=4, gt=0, le=16, strict=True)
        pointer_bits: int = Field(default=16, gt=0, le=32, strict=True)

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

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int) -> LayerMapping:
        p = self.params
        g, m, k, n = layer.count, layer.M, layer.K, layer.N
        w = weight_mask(layer, seed)
        a = act_mask(layer, seed)
        pes, rows_per_pe = p.n_pes, -(-n // p.n_pes)
        if w is None:  # dense: PE p stores one entry per own row, no gaps (closed form)
            own = -(-(n - np.arange(pes)) // pes)
            entries = np.broadcast_to(own, (g, k, pes)).astype(np.int64)
            w_k = np.full((g, k), n, dtype=np.int64)
        else:
            wp = np.pad(w, ((0, 0), (0, 0), (0, rows_per_pe * pes - n)))
            # (g, K, rows_per_pe, PEs) -> lines (g, K, PE) over the PE's own rows
            lines = wp.reshape(g, k, rows_per_pe, pes).transpose(0, 1, 3, 2)
            entries = line_entries(lines.reshape(-1, rows_per_pe),
                                    p.index_bits).reshape(g, k, pes)
            w_k = w.sum(axis=2)
        if a is None:
            a_k = np.full((g, k), m, dtype=np.int64)
            work = np.einsum("gk,gkp->p", a_k.astype(np.float64), entries.astype(np.float64))
        else:
            a_k = a.sum(axis=1)
            work = np.einsum("gmk,gkp->p", a.astype(np.float64), entries.astype(np.float64))
        broadcasts = int(a_k.sum())
        cycles = int(max(work.max(), broadcasts))
        w_bits = layer.weight_bits or p.weight_bits
        a_bits = layer.act_bits or p.act_bits
        stored = int(entries.sum())
        weight_bytes = (stored * (w_bits + p.index_bits) + g * k * pes * p.pointer_bits
                        + p.codebook_size * 16) / 8
        loads = {"ifmap": layer.ifmap_elements * a_bits / 8, "filter": weight_bytes}
        store = layer.ofmap_elements * a_bits / 8
        effectual = int((a_k * w_k).sum())
        padded_macs = int(work.sum())
        counts = {"sram_ifmap_reads": broadcasts, "sram_filter_reads": padded_macs,
                  "sram_ofmap_writes": layer.ofmap_elements, "sram_ofmap_reads": 0,
                  "effectual_macs": effectual, "gated_macs": 0,
                  "skipped_macs": layer.macs - padded_macs,
                  "weight_metadata_bytes": round((stored * p.index_bits
                                                  + g * k * pes * p.pointer_bits) / 8),
                  "act_metadata_bytes": 0}
        mean = work.mean()
        return LayerMapping(layer, self.name, even_tiles(cycles, loads, store, buffers),
                            compute_cycles=cycles, folds=1,
                            mapping_efficiency=min(n, pes) / pes, counts=counts,
                            weight_density=float(w_k.sum()) / (g * k * n),
                            act_density=float(a_k.sum()) / (g * m * k),
                            load_imbalance=float(work.max() / mean) if mean > 0 else 1.0,
                            pe_kind="mac", weight_bits=w_bits, act_bits=a_bits)
