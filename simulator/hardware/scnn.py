"""SCNN-like Cartesian-product sparse array (Parashar et al., "SCNN", ISCA 2017, section IV).

It maps a layer itself into the same :class:`~simulator.mapping.schedule.TileSchedule` the SimPy
engine runs. Work is counted from the real (or seeded random) masks of
:mod:`simulator.mapping.masks`, vectorised; the planar-tiling geometry (stride phases, halos)
is in :mod:`simulator.hardware.scnn_tiles`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import Field

from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import pe_kind
from simulator.hardware.registries import PE_ARRAYS
from simulator.hardware.scnn_tiles import Tiling, conv_tiling, row_tiling
from simulator.hardware.unit import ParamWidths
from simulator.mapping.masks import act_mask, weight_mask, weight_mask_pieces
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.schedule import Buffer, LayerMapping, even_tiles
from simulator.registry import ParamsModel
from simulator.workload.layer import Layer

#: weight-mask elements (channels x taps x filters) per chunk of the product count
_CHUNK = 1 << 20


@PE_ARRAYS.register("scnn")
class ScnnArray(ParamWidths):
    """SCNN-like Cartesian-product array (Parashar et al., "SCNN", ISCA 2017, section IV).

    ``n_pes`` PEs each hold a spatial tile of the input activations (planar tiling: the H x W
    plane cut into a grid of ``n_pes`` blocks) and an ``F x I`` multiplier array. For each
    input channel and each group of ``output_channel_group`` filters, a PE multiplies every
    nonzero weight of that channel and group with every nonzero activation of its tile, ``F``
    weights x ``I`` activations per cycle. A strided layer only pairs weights and activations
    of the same stride phase (weight tap ``r`` with input rows ``y`` where ``(y + pad - r d)``
    divides by the stride): every other pair would land between output positions, which the
    coordinate computation rules out, so a PE spends
    ``sum_c sum_phase ceil(nnz_w / F) * ceil(nnz_a / I)`` cycles on a group. PEs synchronise
    at the end of each output-channel group (its halo exchange and the next group's weight
    broadcast, section IV-B), so a group lasts as long as its busiest PE and the layer is the
    sum over groups.

    Every computed product is charged (``computed_macs``): those of the same phase that land
    outside the output plane (padding edges) are computed and discarded. Products landing in
    a neighbour's output tile accumulate locally and are sent to it at the end of the group:
    one ``halo_psum`` per halo output position and filter (the dense halo footprint, an upper
    bound; the exchange overlaps the next group's products, no cycles are added). Products go
    through a scatter crossbar to ``accumulator_banks`` accumulator banks (one read-modify-write
    per product) of ``accumulator_kb`` per PE (area). Non-conv layers treat the M rows as the
    spatial positions (no stride, no halo).
    """

    class Params(ParamsModel):
        n_pes: int = Field(default=64, gt=0, le=1 << 20)
        multipliers_f: int = Field(default=4, gt=0, strict=True)
        multipliers_i: int = Field(default=4, gt=0, strict=True)
        output_channel_group: int = Field(default=8, gt=0, strict=True)
        weight_bits: int = Field(default=16, gt=0, le=32, strict=True)
        act_bits: int = Field(default=16, gt=0, le=32, strict=True)
        acc_bits: int = Field(default=24, gt=0, le=64, strict=True)
        accumulator_banks: int = Field(default=32, gt=0, strict=True)
        accumulator_kb: float = Field(default=6.0, ge=0, allow_inf_nan=False)

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name, self.params = name, params
        self.kind: PEKind = pe_kind("mac")  # F x I multipliers per PE, each a MAC datapath

    @property
    def n_pes(self) -> int:
        return self.params.n_pes

    @property
    def multipliers_per_pe(self) -> int:
        return self.params.multipliers_f * self.params.multipliers_i

    @property
    def adders_per_pe(self) -> int:
        return self.params.accumulator_banks

    @property
    def pe_local_kb(self) -> float:
        return self.params.accumulator_kb

    @property
    def vector_lanes(self) -> None:
        """No natural width for a vector unit: the architecture must name one."""
        return None

    def _tiling(self, layer: Layer, seed: int) -> Tiling:
        if layer.op == "conv2d" and "in_h" in layer.dims:
            return conv_tiling(layer, self.params.n_pes, seed)
        return row_tiling(layer, self.params.n_pes, seed)

    def _products(self, layer: Layer, seed: int, tl: Tiling,
                  groups: int) -> tuple[np.ndarray, int, np.ndarray]:
        """``(per_pe (g, groups, PEs) cycles of one sample, products of one sample, w_k (g,
        K) nonzero weights per row)``.

        Over pieces of whole input channels of the weight mask
        (:func:`~simulator.mapping.masks.weight_mask_pieces`: a density-only mask is drawn
        piece by piece), so memory is one piece's ``(channels, taps, N)`` weights and
        ``(channels, groups, phases)`` counts, plus ``O(K x PEs)``. Equal to
        :meth:`_products_long`: every term is an integer and every partial sum stays far
        below 2**53, so float64 sums do not depend on their order."""
        p = self.params
        na = tl.act_nnz                                      # (g, C, PEs, phases)
        g, channels, phases = na.shape[0], na.shape[1], na.shape[3]
        n, kg = layer.N, p.output_channel_group
        taps = layer.K // channels
        onehot = (tl.tap_phase[:, None] == np.arange(phases)[None, :]).astype(np.int64)
        a_steps = np.ceil(na / p.multipliers_i)
        step = max(1, _CHUNK // (taps * (n + kg)))           # channels per piece
        pieces = weight_mask_pieces(layer, seed, step * taps)
        if pieces is None:  # dense: every group holds its filters on every tap
            sizes = np.minimum(kg, n - np.arange(0, n, kg))
            dense = onehot.sum(axis=0)[None, None, :] * sizes[None, :, None]
            pieces_n = ((gi, c0, np.broadcast_to(dense, (min(step, channels - c0), groups,
                                                         phases)).astype(np.int64))
                        for gi in range(g) for c0 in range(0, channels, step))
            w_k = np.full((g, layer.K), n, dtype=np.int64)
        else:
            w_k = np.empty((g, layer.K), dtype=np.int64)
            pieces_n = (self._filter_groups(piece, gi, k0, taps, onehot, groups, w_k)
                        for gi, k0, piece in pieces)
        per_pe = np.zeros((g, groups, na.shape[2]))
        products = 0
        axes = ([0, 2], [0, 2])  # contract channels and phases: BLAS, exact integers
        for gi, c0, nw in pieces_n:
            cc = nw.shape[0]
            per_pe[gi] += np.tensordot(np.ceil(nw / p.multipliers_f),
                                       a_steps[gi, c0:c0 + cc], axes=axes)
            products += int(np.tensordot(nw.astype(np.float64),
                                         na[gi, c0:c0 + cc].astype(np.float64),
                                         axes=axes).sum())
        return per_pe, products, w_k

    def _filter_groups(self, piece: np.ndarray, gi: int, k0: int, taps: int,
                       onehot: np.ndarray, groups: int,
                       w_k: np.ndarray) -> tuple[int, int, np.ndarray]:
        """``(group, first channel, (channels, groups, phases) nonzero weights)`` of one
        piece of whole channels; fills the piece's rows of ``w_k``."""
        n, kg = piece.shape[1], self.params.output_channel_group
        cc = piece.shape[0] // taps
        w_k[gi, k0:k0 + piece.shape[0]] = piece.sum(axis=1)
        wc = np.pad(piece.reshape(cc, taps, n), ((0, 0), (0, 0), (0, (-n) % kg)))
        per_tap = wc.reshape(cc, taps, groups, kg).sum(axis=3, dtype=np.int32)
        return gi, k0 // taps, np.einsum("ctq,tf->cqf", per_tap, onehot)

    def _products_long(self, layer: Layer, w: np.ndarray | None, tl: Tiling,
                       groups: int) -> tuple[np.ndarray, int]:
        """:meth:`_products` over the whole ``(g, C, groups, phases)`` count at once."""
        p = self.params
        na = tl.act_nnz
        g, channels, phases = na.shape[0], na.shape[1], na.shape[3]
        n, kg, taps = layer.N, p.output_channel_group, layer.K // channels
        onehot = (tl.tap_phase[:, None] == np.arange(phases)[None, :]).astype(np.int64)
        if w is None:
            sizes = np.minimum(kg, n - np.arange(0, n, kg))
            nw = np.broadcast_to(onehot.sum(axis=0)[None, None, None, :]
                                 * sizes[None, None, :, None],
                                 (g, channels, groups, phases)).astype(np.int64)
        else:
            wc = w.reshape(g, channels, taps, n)
            wc = np.pad(wc, ((0, 0), (0, 0), (0, 0), (0, (-n) % kg)))
            per_tap = wc.reshape(g, channels, taps, groups, kg).sum(axis=4)
            nw = np.einsum("gctq,tf->gcqf", per_tap, onehot)
        per_pe = np.einsum("gcqf,gcpf->gqp", np.ceil(nw / p.multipliers_f),
                           np.ceil(na / p.multipliers_i))
        products = int(np.einsum("gcqf,gcpf->", nw.astype(np.float64), na.astype(np.float64)))
        return per_pe, products

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int,
                  ctx: MappingContext = DEFAULT_CONTEXT, long_way: bool = False
                  ) -> LayerMapping:
        p = self.params
        g, n = layer.count, layer.N
        tl = self._tiling(layer, seed)
        na = tl.act_nnz                                      # (g, C, PEs, phases)
        channels = na.shape[1]
        groups = -(-n // p.output_channel_group)
        taps = layer.K // channels                           # kh * kw (1 for non-conv)
        if long_way:
            w = weight_mask(layer, seed)
            per_pe, products = self._products_long(layer, w, tl, groups)
            w_k = np.full((g, layer.K), n, dtype=np.int64) if w is None else w.sum(axis=2)
        else:
            per_pe, products, w_k = self._products(layer, seed, tl, groups)
        b = tl.batch                                         # samples one after another
        cycles = max(b * int(per_pe.max(axis=2).sum()), 1)   # barrier per group
        products *= b
        cb = layer.weight.codebook_size
        w_bits = layer.weight_bits or p.weight_bits           # as stored
        value_bits = (layer.weight.value_bits or p.weight_bits) if cb else w_bits
        a_bits = layer.act_bits or p.act_bits
        w_nnz, a_nnz = int(w_k.sum()), b * int(na.sum())
        # compressed-sparse storage of both operands: value + 4-bit zero-run index (SCNN IV)
        loads = {"ifmap": a_nnz * (a_bits + 4) / 8, "filter": w_nnz * (w_bits + 4) / 8}
        store = layer.ofmap_elements * a_bits / 8
        if tl.tap_nnz is not None:  # conv: per weight, the nonzero inputs its tap reads
            effectual = b * int((w_k.reshape(g, channels, taps) * tl.tap_nnz).sum())
        else:
            a_full = act_mask(layer, seed)
            effectual = (int((a_full.sum(axis=1) * w_k).sum()) if a_full is not None
                         else int((layer.M * w_k).sum()))
        counts = {"sram_ifmap_reads": a_nnz * groups,  # the tile is re-read per filter group
                  "sram_filter_reads": w_nnz * p.n_pes,  # each PE's weight FIFO
                  "sram_ofmap_writes": layer.ofmap_elements, "sram_ofmap_reads": 0,
                  "effectual_macs": effectual, "gated_macs": 0,
                  "computed_macs": products, "skipped_macs": layer.macs - effectual,
                  "pe.halo_psum": tl.halo_positions * n * g,
                  "weight_metadata_bytes": round(w_nnz * 4 / 8),
                  "act_metadata_bytes": round(a_nnz * 4 / 8)}
        if cb:  # shared weights decoded before the multiplier, once per product
            counts |= {"arith.mac": products, "arith.codebook_read": products}
        load = per_pe.sum(axis=(0, 1))
        mean = load.mean()
        tiles = even_tiles(cycles, loads, store, ctx.buffers or buffers, ctx.resident,
                           ctx.keep_output)
        return LayerMapping(layer, self.name, tiles,
                            compute_cycles=cycles, folds=1,
                            mapping_efficiency=tl.mapping_efficiency, counts=counts,
                            weight_density=float(w_k.sum()) / (g * layer.K * n),
                            act_density=tl.act_density,
                            load_imbalance=float(load.max() / mean) if mean else 1.0,
                            macs_per_pe_per_cycle=p.multipliers_f * p.multipliers_i,
                            pe_kind="cartesian", weight_bits=value_bits, act_bits=a_bits,
                            storage_bits={"ifmap": a_bits + 4.0, "filter": w_bits + 4.0},
                            acc_bits=p.acc_bits, weight_bytes=loads["filter"],
                            kept_bytes=math.ceil(store) if ctx.keep_output else 0)
