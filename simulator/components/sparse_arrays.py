"""Sparse accelerators that are not systolic arrays: EIE-like and SCNN-like PE arrays.

Both map a layer themselves (``map_layer``) into the same :class:`~simulator.mapping.TileSchedule`
the SimPy engine runs, so memory, stalls and reports work as for the systolic array. Work is
counted from the real (or seeded random) masks of :mod:`simulator.sparsity`, vectorised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simulator.components.memory import Sram
from simulator.components.registries import PE_ARRAYS
from simulator.mapping import LayerMapping, even_tiles
from simulator.sparsity import act_mask, act_tensor_mask, weight_mask
from simulator.workload import Layer


def _line_entries(lines: np.ndarray, index_bits: int) -> np.ndarray:
    """Stored entries per line (row of ``lines``): nonzeros plus the padding zeros a relative
    index of ``index_bits`` needs for runs of zeros of ``2**index_bits`` or more (EIE III-B)."""
    rows, cols = np.nonzero(lines)
    entries = np.bincount(rows, minlength=lines.shape[0]).astype(np.int64)
    if len(cols):
        prev = np.empty_like(cols)
        prev[1:], prev[0] = cols[:-1], -1
        first = np.ones(len(cols), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        gaps = cols - np.where(first, -1, prev) - 1
        np.add.at(entries, rows, gaps >> index_bits)
    return entries


def _dense(shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, dtype=bool)


@PE_ARRAYS.register("eie")
class EieArray:
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

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        n_pes: int = Field(default=64, gt=0, strict=True)
        weight_bits: int = Field(default=4, gt=0, le=32, strict=True)
        act_bits: int = Field(default=16, gt=0, le=32, strict=True)
        acc_bits: int = Field(default=32, gt=0, le=64, strict=True)
        codebook_size: int = Field(default=16, ge=2, strict=True)
        index_bits: int = Field(default=4, gt=0, le=16, strict=True)
        pointer_bits: int = Field(default=16, gt=0, le=32, strict=True)

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name, self.params = name, params

    @property
    def n_pes(self) -> int:
        return self.params.n_pes

    def map_layer(self, layer: Layer, buffers: Mapping[str, Sram], seed: int) -> LayerMapping:
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
            entries = _line_entries(lines.reshape(-1, rows_per_pe),
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


@PE_ARRAYS.register("scnn")
class ScnnArray:
    """SCNN-like Cartesian-product array (Parashar et al., "SCNN", ISCA 2017, section IV).

    ``n_pes`` PEs each hold a spatial tile of the input activations (planar tiling: the H x W
    plane cut into ``n_pes`` blocks) and an ``F x I`` multiplier array. For each input channel
    and each group of ``output_channel_group`` filters, a PE multiplies every nonzero weight of
    that channel and group with every nonzero activation of its tile, ``F`` weights x ``I``
    activations per cycle: ``sum_c sum_groups ceil(nnz_w / F) * ceil(nnz_a / I)`` cycles.
    PEs synchronise at the end of the layer, so it lasts as long as the busiest PE. Products
    landing outside the output (halo) are not subtracted. Non-conv layers treat the M rows as
    the spatial positions.
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        n_pes: int = Field(default=64, gt=0, strict=True)
        multipliers_f: int = Field(default=4, gt=0, strict=True)
        multipliers_i: int = Field(default=4, gt=0, strict=True)
        output_channel_group: int = Field(default=8, gt=0, strict=True)
        weight_bits: int = Field(default=16, gt=0, le=32, strict=True)
        act_bits: int = Field(default=16, gt=0, le=32, strict=True)
        acc_bits: int = Field(default=24, gt=0, le=64, strict=True)

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name, self.params = name, params

    @property
    def n_pes(self) -> int:
        return self.params.n_pes

    def _act_tiles(self, layer: Layer, seed: int) -> tuple[np.ndarray, int, int]:
        """Nonzero activations per (group, channel-or-k, PE tile), positions per PE, and the
        number of activation elements."""
        pes = self.params.n_pes
        t = act_tensor_mask(layer, seed)
        if layer.op == "conv2d" and "in_h" in layer.dims:
            d = layer.dims
            c, h, wd = int(d["in_channels"]), int(d["in_h"]), int(d["in_w"])
            t = _dense((c, h, wd)) if t is None else t
            side = math.isqrt(pes)
            th, tw = -(-h // side), -(-wd // (pes // side))
            pad = np.pad(t, ((0, 0), (0, th * side - h), (0, tw * (pes // side) - wd)))
            tiles = pad.reshape(c, side, th, pes // side, tw).sum(axis=(2, 4)).reshape(c, pes)
            return tiles.reshape(layer.count, c // layer.count, pes), th * tw, t.size
        a = act_mask(layer, seed)
        g, m, k = layer.count, layer.M, layer.K
        a = _dense((g, m, k)) if a is None else a
        per = -(-m // pes)
        ap = np.pad(a, ((0, 0), (0, per * pes - m), (0, 0)))
        return ap.reshape(g, pes, per, k).sum(axis=2).transpose(0, 2, 1), per, a.size

    def map_layer(self, layer: Layer, buffers: Mapping[str, Sram], seed: int) -> LayerMapping:
        p = self.params
        g, n = layer.count, layer.N
        w = weight_mask(layer, seed)
        na, per_pe, a_size = self._act_tiles(layer, seed)  # (g, C, PEs)
        channels = na.shape[1]
        kg = p.output_channel_group
        taps = layer.K // channels                           # kh * kw (1 for non-conv)
        if w is None:  # dense: every group holds taps x its filters, closed form
            sizes = np.minimum(kg, n - np.arange(0, n, kg))
            nw = np.broadcast_to(taps * sizes, (g, channels, len(sizes))).astype(np.int64)
            w_k = np.full((g, layer.K), n, dtype=np.int64)
        else:
            wc = w.reshape(g, channels, taps, n)             # (g, C, kh*kw, N)
            wc = np.pad(wc, ((0, 0), (0, 0), (0, 0), (0, (-n) % kg)))
            nw = wc.reshape(g, channels, taps, -1, kg).sum(axis=(2, 4))  # (g, C, groups)
            w_k = w.sum(axis=2)
        w_steps = np.ceil(nw / p.multipliers_f).sum(axis=2)                 # (g, C)
        a_steps = np.ceil(na / p.multipliers_i)                              # (g, C, PEs)
        per_pe_cycles = np.einsum("gc,gcp->p", w_steps, a_steps)
        cycles = int(per_pe_cycles.max())
        products = int(np.einsum("gc,gcp->", nw.sum(axis=2).astype(np.float64),
                                 na.astype(np.float64)))
        w_bits = layer.weight_bits or p.weight_bits
        a_bits = layer.act_bits or p.act_bits
        w_nnz, a_nnz = int(w_k.sum()), int(na.sum())
        # compressed-sparse storage of both operands: value + 4-bit zero-run index (SCNN IV)
        loads = {"ifmap": a_nnz * (a_bits + 4) / 8, "filter": w_nnz * (w_bits + 4) / 8}
        store = layer.ofmap_elements * a_bits / 8
        a_full = act_mask(layer, seed)
        effectual = (int((a_full.sum(axis=1) * w_k).sum()) if a_full is not None
                     else int((layer.M * w_k).sum()))
        counts = {"sram_ifmap_reads": a_nnz, "sram_filter_reads": w_nnz * p.n_pes,
                  "sram_ofmap_writes": layer.ofmap_elements, "sram_ofmap_reads": 0,
                  "effectual_macs": effectual, "gated_macs": 0,
                  "skipped_macs": max(layer.macs - products, 0),
                  "weight_metadata_bytes": round(w_nnz * 4 / 8),
                  "act_metadata_bytes": round(a_nnz * 4 / 8)}
        mean = per_pe_cycles.mean()
        return LayerMapping(layer, self.name, even_tiles(cycles, loads, store, buffers),
                            compute_cycles=cycles, folds=1,
                            mapping_efficiency=layer.M / (per_pe * p.n_pes) if layer.op != "conv2d"
                            else 1.0,
                            counts=counts, weight_density=w_nnz / (g * layer.K * n),
                            act_density=a_nnz / a_size,
                            load_imbalance=float(per_pe_cycles.max() / mean) if mean else 1.0,
                            macs_per_pe_per_cycle=p.multipliers_f * p.multipliers_i,
                            pe_kind="cartesian", weight_bits=w_bits, act_bits=a_bits)
