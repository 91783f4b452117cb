"""SCNN-like Cartesian-product sparse array (Parashar et al., "SCNN", ISCA 2017, section IV).

It maps a layer itself into the same :class:`~simulator.mapping.schedule.TileSchedule` the SimPy
engine runs. Work is counted from the real (or seeded random) masks of
:mod:`simulator.mapping.masks`, vectorised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import Field

from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import pe_kind
from simulator.hardware.registries import PE_ARRAYS
from simulator.hardware.unit import ParamWidths
from simulator.mapping.masks import act_mask, act_tensor_mask, weight_mask
from simulator.mapping.schedule import Buffer, LayerMapping, even_tiles
from simulator.registry import ParamsModel
from simulator.workload.layer import Layer


@PE_ARRAYS.register("scnn")
class ScnnArray(ParamWidths):
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

    class Params(ParamsModel):
        n_pes: int = Field(default=64, gt=0, le=1 << 20)
        multipliers_f: int = Field(default=4, gt=0, strict=True)
        multipliers_i: int = Field(default=4, gt=0, strict=True)
        output_channel_group: int = Field(default=8, gt=0, strict=True)
        weight_bits: int = Field(default=16, gt=0, le=32, strict=True)
        act_bits: int = Field(default=16, gt=0, le=32, strict=True)
        acc_bits: int = Field(default=24, gt=0, le=64, strict=True)

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name, self.params = name, params
        self.kind: PEKind = pe_kind("mac")  # F x I multipliers per PE, each a MAC datapath

    @property
    def n_pes(self) -> int:
        return self.params.n_pes

    @property
    def vector_lanes(self) -> None:
        """No natural width for a vector unit: the architecture must name one."""
        return None

    def _act_tiles(self, layer: Layer, seed: int) -> tuple[np.ndarray, int, int]:
        """Nonzero activations per (group, channel-or-k, PE tile), positions per PE, and the
        number of activation elements."""
        pes = self.params.n_pes
        t = act_tensor_mask(layer, seed)
        if layer.op == "conv2d" and "in_h" in layer.dims:
            d = layer.dims
            c, h, wd = int(d["in_channels"]), int(d["in_h"]), int(d["in_w"])
            t = np.ones((c, h, wd), dtype=bool) if t is None else t
            side = math.isqrt(pes)
            th, tw = -(-h // side), -(-wd // (pes // side))
            pad = np.pad(t, ((0, 0), (0, th * side - h), (0, tw * (pes // side) - wd)))
            tiles = pad.reshape(c, side, th, pes // side, tw).sum(axis=(2, 4)).reshape(c, pes)
            return tiles.reshape(layer.count, c // layer.count, pes), th * tw, t.size
        a = act_mask(layer, seed)
        g, m, k = layer.count, layer.M, layer.K
        a = np.ones((g, m, k), dtype=bool) if a is None else a
        per = -(-m // pes)
        ap = np.pad(a, ((0, 0), (0, per * pes - m), (0, 0)))
        return ap.reshape(g, pes, per, k).sum(axis=2).transpose(0, 2, 1), per, a.size

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int) -> LayerMapping:
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
