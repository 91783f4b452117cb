"""A GEMM layer's operands as an array of PEs sees them, shared by every PE-array dataflow
(systolic :mod:`.systolic`, row-stationary :mod:`.rowstationary`): the precision check of
the PE kind, stored bits per element (packed, with compressed-format metadata), sparsity
(:mod:`.sparsity`: structural pruning, N:M, effectual, gated and skipped MACs) and the GEMM
the PEs compute (:meth:`ArithmeticKind.gemm_view`); and the layer-level figures every
dataflow reports the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from simulator.mapping.masks import padding_tap_total
from simulator.mapping.nest import DIMS, Grid, Nest
from simulator.mapping.options import MappingContext
from simulator.mapping.precision import (
    circulant_values_per_element,
    filter_storage_bits,
    filter_stream_cycles,
)
from simulator.mapping.sparsity import SparseView, SparsityParams, sparse_view
from simulator.workload.layer import Layer


class GemmView(NamedTuple):
    """The GEMM as the array sees it, and the cycles each streamed value occupies a PE."""

    M: int
    K: int
    N: int
    stream_cycles_per_value: int


class ArithmeticKind(Protocol):
    """What the mapping needs of a PE kind (:mod:`simulator.hardware.pe`)."""

    @property
    def kind(self) -> str: ...

    def check(self, layer: str, weight_bits: int, act_bits: int, weight_scheme: str = "int",
              act_scheme: str = "int", undeclared: frozenset[str] = frozenset()) -> None: ...

    def weight_storage_bits(self, weight_bits: int) -> float: ...

    @property
    def serial_weights(self) -> bool: ...

    def gemm_view(self, M: int, K: int, N: int, weight_bits: int,
                  act_bits: int) -> GemmView: ...

    def pack(self, weight_bits: int, act_bits: int) -> int: ...

    @property
    def number_format(self) -> str: ...

    def macs_per_pe_per_cycle(self, weight_bits: int, act_bits: int) -> float: ...

    def actions(self, M: int, K: int, N: int, weight_bits: int, act_bits: int,
                codebook_size: int | None = None) -> dict[str, int]: ...


class PEGrid(Protocol):
    """What every dataflow needs of a 2-D array of PEs (:mod:`simulator.hardware.systolic`)."""

    @property
    def name(self) -> str: ...

    @property
    def rows(self) -> int: ...

    @property
    def cols(self) -> int: ...

    @property
    def n_pes(self) -> int: ...

    @property
    def kind(self) -> ArithmeticKind: ...

    @property
    def weight_bits(self) -> int: ...

    @property
    def act_bits(self) -> int: ...

    @property
    def acc_bits(self) -> int: ...

    @property
    def sparsity(self) -> SparsityParams: ...


@dataclass(frozen=True, slots=True)
class Prepared:
    """A layer's operands on an array: ``work`` is the layer after structural pruning (and
    N:M compression of K), ``bits`` the stored bits per element of each operand, ``view`` the
    GEMM the PEs compute (K packed), ``wb_op`` the weight width the PE computes on;
    ``filter_cycles``: cycles per streamed value of each output filter on a weight-serial PE
    with per-filter bits (:mod:`.precision`; None: every filter at ``view``'s rate);
    ``block``: the circulant block side of weights stored one vector per block (None: not)."""

    layer: Layer
    work: Layer
    sv: SparseView | None
    bits: Mapping[str, float]
    view: GemmView
    pack: int
    a_bits: int
    value_bits: int
    wb_op: int
    filter_cycles: np.ndarray | None = None
    block: int | None = None

    @property
    def size(self) -> dict[str, int]:
        return {"M": self.view.M, "K": self.view.K, "N": self.view.N}

    def per_element_bytes(self) -> dict[str, float]:
        """DRAM bytes per GEMM-view element of each operand: its share of the tensor's
        unique bytes (the ifmap before im2col), packed, with format metadata."""
        w, g, size = self.work, self.layer.count, self.size
        elems = {"ifmap": size["M"] * size["K"], "filter": size["K"] * size["N"],
                 "ofmap": size["M"] * size["N"]}
        unique = {"ifmap": w.ifmap_elements, "filter": w.filter_elements,
                  "ofmap": w.ofmap_elements}
        return {op: unique[op] / g * self.bits[op] / 8 / elems[op] for op in elems}


def needs_sparse_view(layer: Layer, sp: SparsityParams) -> bool:
    arch = (sp.weights != "none" or sp.activations != "none" or sp.weight_format != "dense"
            or sp.act_format != "dense")
    ops = (layer.weight, layer.activation)
    return arch or any(o.mask is not None or o.density < 1.0 for o in ops) \
        or layer.weight.structure in ("filter", "channel")


def prepare(layer: Layer, array: PEGrid, seed: int) -> Prepared:
    """Check the layer against the PE kind and derive its operands (module docstring)."""
    kind = array.kind
    a_bits = layer.act_bits or array.act_bits
    w_bits = layer.weight_bits or array.weight_bits
    # a codebook stores indices; the PE computes on the codebook's values, held in the PE's
    # own number format (Operand.value_bits wide, else the array's weight_bits); de-quantised
    # values (weight-only quantisation, a quantised KV cache) at the activation's precision
    cb = layer.weight.codebook_size
    value_bits = (layer.weight.value_bits or array.weight_bits) if cb else w_bits
    w_scheme = "int" if cb else layer.weight.scheme
    if layer.weight.dequantize:
        value_bits, w_scheme = a_bits, layer.activation.scheme
    undeclared = frozenset(
        op for op, o in (("weight", layer.weight), ("activation", layer.activation))
        if o.bits is None and o.scheme == "int" and not (op == "weight" and (cb or o.dequantize)))
    block = layer.weight.block if layer.weight.structure == "circulant" else None
    if layer.filter_is_weight:
        kind.check(layer.name, value_bits, a_bits, w_scheme, layer.activation.scheme,
                   undeclared)
        per_filter = filter_storage_bits(layer, kind.weight_storage_bits)
        f_bits = (per_filter if per_filter is not None else kind.weight_storage_bits(w_bits)
                  ) + layer.weight.scale_bits
        if block:  # one stored vector per b x b block (mapping.precision)
            f_bits *= circulant_values_per_element(layer.K, layer.N, block)
    else:  # an activation (a KV cache may be stored at its own bits, with its scales)
        kind.check(layer.name, a_bits, a_bits, undeclared=undeclared & {"activation"})
        f_bits = (layer.weight.bits or a_bits) + layer.weight.scale_bits
    sv: SparseView | None = None
    work = layer
    bits: dict[str, float] = {"ifmap": a_bits, "filter": f_bits, "ofmap": a_bits}
    if needs_sparse_view(layer, array.sparsity):
        sv = sparse_view(layer, array.sparsity, f_bits + 0.0, a_bits + 0.0, seed)
        work = dataclasses.replace(
            layer, K=sv.K, N=sv.N,
            ifmap_elements=round(layer.ifmap_elements * sv.K_pruned / layer.K),
            filter_elements=round(layer.filter_elements * sv.K * sv.N / (layer.K * layer.N)))
        bits["filter"] = (f_bits + sv.nm_index_bits) * sv.weight_scale
        bits["ifmap"] = a_bits * sv.act_scale
    wb_op = value_bits if layer.filter_is_weight or layer.weight.dequantize else a_bits
    view = kind.gemm_view(work.M, work.K, work.N, wb_op, a_bits)
    skips = sv is not None and (sv.skip_act is not None or sv.skip_weight is not None)
    cycles = (filter_stream_cycles(layer, view.N) if kind.serial_weights
              and layer.filter_is_weight and view.N == layer.N and not skips else None)
    return Prepared(layer, work, sv, bits, view, kind.pack(wb_op, a_bits), a_bits, value_bits,
                    wb_op, cycles, block)


def sparsity_counts(p: Prepared) -> dict[str, int]:
    """Effectual (with and without padding zeros), gated and skipped MACs and metadata."""
    sv, layer = p.sv, p.layer
    padding_macs = padding_tap_total(layer) * layer.N * layer.count
    return {
        "effectual_macs": sv.effectual_macs if sv else layer.macs - padding_macs,
        "effectual_macs_ignoring_padding": (sv.effectual_macs_ignoring_padding if sv
                                            else layer.macs),
        "gated_macs": sv.gated_macs if sv else 0,
        "skipped_macs": sv.skipped_macs if sv else 0,
        "weight_metadata_bytes": sv.weight_metadata_bytes if sv else 0,
        "act_metadata_bytes": sv.act_metadata_bytes if sv else 0,
    }


def arith_counts(p: Prepared, kind: ArithmeticKind) -> dict[str, int]:
    """The PE kind's dense arithmetic actions of the layer (``arith.<action>``), counted on
    the shape the array computes (pruned filters and channels, N:M-compressed K removed; with
    per-filter cycles, ``p.filter_cycles``, the counts of each width's filters, summed), and
    ``arith_view_macs``, the MACs of that shape: the action counter scales the kind's counts by
    the share of *those* MACs that fire, so structural pruning is discounted once."""
    layer = p.layer
    k = layer.K if p.sv is None else p.sv.K
    cb = layer.weight.codebook_size
    if p.filter_cycles is None:
        arith = kind.actions(p.view.M, k, p.view.N, p.wb_op, p.a_bits, cb)
    else:
        arith = {}
        widths, n_of = np.unique(p.filter_cycles, return_counts=True)
        for b, n in zip(widths.tolist(), n_of.tolist(), strict=True):
            for a, v in kind.actions(p.view.M, k, n, b, p.a_bits, cb).items():
                arith[a] = arith.get(a, 0) + v
    return {**{f"arith.{a}": v * layer.count for a, v in arith.items()},
            "arith_view_macs": p.view.M * k * p.view.N * layer.count}


def pe_rate(p: Prepared, kind: ArithmeticKind) -> float:
    """MACs per PE per cycle: the kind's at the layer's widths, or with per-filter cycles the
    packed values over the filters' mean cycles per streamed value."""
    if p.filter_cycles is None:
        return kind.macs_per_pe_per_cycle(p.wb_op, p.a_bits)
    return p.pack / float(p.filter_cycles.mean())


def residency(p: Prepared, loads: Mapping[str, np.ndarray], ctx: MappingContext
              ) -> dict[str, object]:
    """Layer fields of the temporal mapping's outcome: operands moved exactly once
    (``resident``), the stored weight bytes a preload moves, the output bytes kept on chip."""
    w, g = p.work, p.layer.count
    compulsory = {"ifmap": w.ifmap_elements * p.bits["ifmap"] / 8,
                  "filter": w.filter_elements * p.bits["filter"] / 8}
    resident = [op for op in ("ifmap", "filter") if op in ctx.resident
                or float(loads[op].sum()) * g <= compulsory[op] * (1 + 1e-9)]
    if not loads["psum"].any():
        resident.append("ofmap")
    return {"resident": ",".join(resident),
            "weight_bytes": compulsory["filter"] if p.layer.filter_is_weight else 0.0,
            "kept_bytes": (math.ceil(w.ofmap_elements * p.a_bits / 8) if ctx.keep_output
                           else 0)}


def tile_dims(grid: Grid, nest: Nest) -> dict[str, int]:
    """The largest tile of ``nest`` in GEMM elements along each dimension."""
    return {d: int(grid.axes[d].tiles(nest.per_tile[d])[2].max()) for d in DIMS}
