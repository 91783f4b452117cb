"""Map a GEMM layer onto a systolic array: folds, reuse and tiles as struct-of-arrays numpy.

A *fold* is one spatial mapping of the systolic array (:mod:`simulator.mapping.dataflows`).
For every fold this module computes, vectorised over all folds at once:

* its closed-form cycles and MACs, and the SRAM reads/writes of each operand (in elements);
* which operand data must come from DRAM first (reuse model below), and what it writes back.

**Reuse model** (per operand, given the fold loop order of the dataflow). An input operand
whose fold slice changes with the *inner* loop only (e.g. the ifmap in ``ws``) is fetched once
if the whole operand fits in its buffer (all of it: a resident operand needs no second half to
prefetch into) and then stays resident; otherwise it is re-fetched on every outer iteration. A
slice that changes with the outer loop only (the ifmap in ``os``) is fetched once per outer
iteration if it fits, else on every fold. A slice that changes with both is fetched once, on
its fold. When the reduction dimension K is mapped spatially (``ws``, ``is``) partial sums of
an output slice accumulate in the ofmap buffer over the inner loop if that slice fits (at
``acc_bits``), and the final outputs leave once; if not, every fold spills its partial sums and
the next reads them back. Bytes of a slice are its share of the tensor's *unique* bytes (the
ifmap before im2col expansion), at the operand's bit width, packed.

**Tiles.** Consecutive folds are grouped into tiles: a new tile starts whenever one operand's
DRAM stream crosses a multiple of that operand's tile capacity, so a tile holds about one
buffer half of new data per operand. The SimPy engine double-buffers at tile granularity.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from simulator.mapping.dataflows import Dataflow
from simulator.mapping.precision import (
    circulant_values_per_element,
    filter_storage_bits,
    filter_stream_cycles,
    fold_stream,
    precision_notes,
)
from simulator.mapping.schedule import (
    Buffer,
    LayerMapping,
    TileSchedule,
    chunks,
    tile_starts,
    to_int,
)
from simulator.mapping.sparsity import SparseView, SparsityParams, sparse_view
from simulator.workload.layer import Layer

OPERAND_DIMS = {"ifmap": ("M", "K"), "filter": ("K", "N"), "ofmap": ("M", "N")}
#: The operand a dataflow keeps in the PEs (the other two move through the array).
STATIONARY = {"ws": "filter", "is": "ifmap", "os": "psum"}


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
              act_scheme: str = "int") -> None: ...

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


class ArrayGeometry(Protocol):
    """What the mapping needs of a systolic array (:mod:`simulator.hardware.systolic`)."""

    @property
    def name(self) -> str: ...

    @property
    def rows(self) -> int: ...

    @property
    def cols(self) -> int: ...

    @property
    def n_pes(self) -> int: ...

    @property
    def dataflow(self) -> Dataflow: ...

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

    def fold_cycles(self, stream: int) -> int: ...


@dataclass(frozen=True, slots=True)
class _Plan:
    """Per-fold arrays of one loop order (one GEMM of the layer)."""

    outer: str
    busy: np.ndarray
    fold: np.ndarray
    loads: dict[str, np.ndarray]
    elems: dict[str, np.ndarray]
    ofmap_reads: np.ndarray
    used: np.ndarray

    @property
    def dram_bytes(self) -> float:
        return float(sum(v.sum() for v in self.loads.values()))


def _plan(layer: Layer, array: ArrayGeometry, buffers: Mapping[str, Buffer], outer_dim: str,
          bits: Mapping[str, float], stream_scale: int | np.ndarray = 1) -> _Plan:
    """Fold arrays, DRAM loads/stores and SRAM counts for one loop order (module docstring).

    ``stream_scale``: cycles per streamed value, or one per output filter (a weight-serial PE
    on a layer with per-filter bits, :func:`simulator.mapping.precision.fold_stream`)."""
    df = array.dataflow
    size: dict[str, int] = {"M": layer.M, "K": layer.K, "N": layer.N}
    lanes: dict[str, int] = {df.rows: array.rows, df.cols: array.cols}
    inner_dim = df.cols if outer_dim == df.rows else df.rows
    outer, inner = chunks(size[outer_dim], lanes[outer_dim]), chunks(size[inner_dim],
                                                                       lanes[inner_dim])
    n_o, n_i = len(outer), len(inner)
    ext = {outer_dim: np.repeat(outer, n_i), inner_dim: np.tile(inner, n_o),
           df.stream: np.full(n_o * n_i, size[df.stream], dtype=np.int64)}
    i_idx = np.tile(np.arange(n_i), n_o)
    o_idx = np.repeat(np.arange(n_o), n_i)
    first = {"inner": i_idx == 0, "outer": o_idx == 0}
    last = {"inner": i_idx == n_i - 1, "outer": o_idx == n_o - 1}
    ones = np.ones(n_o * n_i, dtype=bool)
    unique = {"ifmap": layer.ifmap_elements, "filter": layer.filter_elements,
              "ofmap": layer.ofmap_elements}
    elems, slice_bytes, whole = {}, {}, {}
    for op, (a, b) in OPERAND_DIMS.items():
        elems[op] = ext[a] * ext[b]
        whole[op] = unique[op] / layer.count * bits[op] / 8
        slice_bytes[op] = whole[op] * elems[op] / (size[a] * size[b])

    loads = {}
    for op in ("ifmap", "filter"):
        cap, dims = buffers[op].tile_bytes, OPERAND_DIMS[op]
        if outer_dim in dims and inner_dim in dims:
            mask = ones
        elif outer_dim in dims:
            mask = first["inner"] if slice_bytes[op].max() <= cap else ones
        else:  # kept for the whole layer: needs no second half to prefetch into
            mask = first["outer"] if whole[op] <= buffers[op].capacity_bytes else ones
        loads[op] = np.where(mask, slice_bytes[op], 0.0)

    final = slice_bytes["ofmap"]
    psum_bytes = elems["ofmap"] * (array.acc_bits / 8)
    reads = np.zeros_like(elems["ofmap"])
    zero = np.zeros_like(final)
    if df.stream == "K":  # os: each fold finishes its outputs
        loads["store"], loads["psum"] = final, zero
        port_bits = elems["ofmap"] * bits["ofmap"]
    else:  # K is spatial: partial sums accumulate over the loop that walks K
        loop = "inner" if inner_dim == "K" else "outer"
        reads = np.where(first[loop], 0, elems["ofmap"])
        held = psum_bytes.max() if loop == "inner" else layer.M * layer.N * array.acc_bits / 8
        if held <= buffers["ofmap"].tile_bytes:
            loads["store"], loads["psum"] = np.where(last[loop], final, 0.0), zero
        else:
            loads["store"] = np.where(last[loop], final, psum_bytes)
            loads["psum"] = np.where(first[loop], 0.0, psum_bytes)
        port_bits = (elems["ofmap"] + reads) * array.acc_bits

    n_index = None if "N" not in (outer_dim, inner_dim) else (
        o_idx if outer_dim == "N" else i_idx)
    fold = array.fold_cycles(fold_stream(size[df.stream], stream_scale, df.stream,  # type: ignore[arg-type]
                                         lanes.get("N", 1), n_o * n_i, n_index))
    busy = np.asarray(fold, dtype=np.int64).copy()
    for op, bits_moved in (("ifmap", elems["ifmap"] * bits["ifmap"]),
                           ("filter", elems["filter"] * bits["filter"]), ("ofmap", port_bits)):
        bw = buffers[op].bits_per_cycle
        if math.isfinite(bw):
            busy = np.maximum(busy, np.ceil(bits_moved / bw).astype(np.int64))
    return _Plan(outer_dim, busy, np.asarray(fold, dtype=np.int64), loads, elems, reads,
                 ext[df.rows] * ext[df.cols])


def _needs_sparse_view(layer: Layer, array: ArrayGeometry) -> bool:
    sp = array.sparsity
    arch = (sp.weights != "none" or sp.activations != "none" or sp.weight_format != "dense"
            or sp.act_format != "dense")
    ops = (layer.weight, layer.activation)
    return arch or any(o.mask is not None or o.density < 1.0 for o in ops) \
        or layer.weight.structure in ("filter", "channel")


def map_gemm(layer: Layer, array: ArrayGeometry, buffers: Mapping[str, Buffer],
             seed: int = 0) -> LayerMapping:
    """Fold a GEMM layer onto a systolic array and group the folds into tiles.

    Of the two fold loop orders (either spatial dimension outermost) the one that moves fewer
    DRAM bytes is taken; on a tie, the dataflow's default (:mod:`simulator.dataflows`).
    Sparsity (:mod:`simulator.sparsity`) can shrink the GEMM, compress stored operands and,
    when the array skips zeros, replace each fold's stream length by its busiest lane's work.
    """
    df, kind = array.dataflow, array.kind
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
    block = layer.weight.block if layer.weight.structure == "circulant" else None
    if layer.filter_is_weight:
        kind.check(layer.name, value_bits, a_bits, w_scheme, layer.activation.scheme)
        per_filter = filter_storage_bits(layer, kind.weight_storage_bits)
        f_bits = (per_filter if per_filter is not None else kind.weight_storage_bits(w_bits)
                  ) + layer.weight.scale_bits
        if block:  # one stored vector per b x b block (mapping.precision)
            f_bits *= circulant_values_per_element(layer.K, layer.N, block)
    else:  # an activation (a KV cache may be stored at its own bits, with its scales)
        kind.check(layer.name, a_bits, a_bits)
        f_bits = (layer.weight.bits or a_bits) + layer.weight.scale_bits
    sv: SparseView | None = None
    work_layer = layer
    bits: dict[str, float] = {"ifmap": a_bits, "filter": f_bits, "ofmap": a_bits}
    if _needs_sparse_view(layer, array):
        sv = sparse_view(layer, array.sparsity, df.name, array.rows, array.cols,
                         f_bits + 0.0, a_bits + 0.0, seed)
        work_layer = dataclasses.replace(
            layer, K=sv.K, N=sv.N,
            ifmap_elements=round(layer.ifmap_elements * sv.K_pruned / layer.K),
            filter_elements=round(layer.filter_elements * sv.K * sv.N / (layer.K * layer.N)))
        bits["filter"] = (f_bits + sv.nm_index_bits) * sv.weight_scale
        bits["ifmap"] = a_bits * sv.act_scale
    wb_op = value_bits if layer.filter_is_weight or layer.weight.dequantize else a_bits
    view = kind.gemm_view(work_layer.M, work_layer.K, work_layer.N, wb_op, a_bits)
    pack = kind.pack(wb_op, a_bits)
    work_layer = dataclasses.replace(work_layer, M=view.M, K=view.K, N=view.N)
    scale = view.stream_cycles_per_value
    per_filter_cycles = filter_stream_cycles(layer, work_layer.N) if kind.serial_weights \
        and layer.filter_is_weight and (sv is None or (sv.N == layer.N and sv.work is None)) \
        else None
    stream_scale: int | np.ndarray = scale if per_filter_cycles is None else per_filter_cycles
    other = df.cols if df.outer == df.rows else df.rows
    plans = [_plan(work_layer, array, buffers, d, bits, stream_scale)
             for d in (df.outer, other)]
    plan = min(plans, key=lambda pl: pl.dram_bytes)  # stable: default order wins ties

    reps = layer.count
    imbalance = 1.0
    if sv is not None and sv.work is not None and sv.lane_mean is not None:
        work, mean = sv.work, sv.lane_mean
        if plan.outer != df.rows:  # folds run column chunk outermost
            work, mean = work.transpose(0, 2, 1), mean.transpose(0, 2, 1)
        busy = array.fold_cycles(0) + -(-work.reshape(-1) // pack) * scale
        imbalance = float(work.sum() / mean.sum()) if mean.sum() > 0 else 1.0
        compute = max(int(busy.sum()) - 1, 1)
    else:
        busy = np.tile(plan.busy, reps)
        compute = max(int(plan.fold.sum()) * reps - 1, 1)
    if busy.sum() > 1:  # SCALE-Sim counts from zero: a layer takes folds * fold - 1 cycles
        busy[-1] -= 1   # (except a one-cycle layer, which SCALE-Sim divides by zero on)
    folds = len(plan.busy) * reps
    cols = {k: np.tile(v, reps) for k, v in plan.loads.items()}
    starts = tile_starts([(cols["ifmap"], buffers["ifmap"].tile_bytes),
                           (cols["filter"], buffers["filter"].tile_bytes),
                           (cols["psum"] + cols["store"], buffers["ofmap"].tile_bytes)], folds)
    tiles = TileSchedule(
        busy_cycles=np.add.reduceat(busy, starts),
        ifmap_load_bytes=to_int(np.add.reduceat(cols["ifmap"], starts)),
        filter_load_bytes=to_int(np.add.reduceat(cols["filter"], starts)),
        psum_load_bytes=to_int(np.add.reduceat(cols["psum"], starts)),
        store_bytes=to_int(np.add.reduceat(cols["store"], starts)))
    # a packed kind's view holds K' = ceil(K / pack) words: SRAM reads count the elements
    k_ratio = (layer.K if sv is None else sv.K) / view.K
    counts = {
        "sram_ifmap_reads": round(int(plan.elems["ifmap"].sum()) * reps * k_ratio),
        "sram_filter_reads": round(int(plan.elems["filter"].sum()) * reps * k_ratio),
        "sram_ofmap_writes": int(plan.elems["ofmap"].sum()) * reps,
        "sram_ofmap_reads": int(plan.ofmap_reads.sum()) * reps,
        "effectual_macs": sv.effectual_macs if sv else layer.macs,
        "gated_macs": sv.gated_macs if sv else 0,
        "skipped_macs": sv.skipped_macs if sv else 0,
        "weight_metadata_bytes": sv.weight_metadata_bytes if sv else 0,
        "act_metadata_bytes": sv.act_metadata_bytes if sv else 0,
        # every filter value entering the array is de-quantised there once
        "dequantized_values": (int(plan.elems["filter"].sum()) * reps
                               if layer.weight.dequantize else 0),
    }
    k_arith = layer.K if sv is None else sv.K
    rate = kind.macs_per_pe_per_cycle(wb_op, a_bits)
    if per_filter_cycles is None:
        arith = kind.actions(view.M, k_arith, view.N, wb_op, a_bits, layer.weight.codebook_size)
    else:  # each filter at its own bits: the counts of each width, summed
        arith = {}
        widths, n_of = np.unique(per_filter_cycles, return_counts=True)
        for b, n in zip(widths.tolist(), n_of.tolist(), strict=True):
            for k, v in kind.actions(view.M, k_arith, n, b, a_bits,
                                     layer.weight.codebook_size).items():
                arith[k] = arith.get(k, 0) + v
        rate = pack / float(per_filter_cycles.mean())
    counts.update({f"arith.{k}": v * reps for k, v in arith.items()})
    notes = precision_notes(layer, kind.serial_weights, kind.kind,
                            per_filter_cycles is not None, bool(block))
    return LayerMapping(layer, array.name, tiles, compute_cycles=compute, folds=folds,
                        mapping_efficiency=int(plan.used.sum()) * reps / (folds * array.n_pes),
                        counts=counts, loop_outer=plan.outer,
                        weight_density=sv.weight_density if sv else 1.0,
                        act_density=sv.act_density if sv else 1.0, load_imbalance=imbalance,
                        macs_per_pe_per_cycle=rate, notes=tuple(notes),
                        values_per_word=pack, number_format=kind.number_format,
                        weight_bits=value_bits if layer.filter_is_weight else a_bits,
                        act_bits=a_bits, pe_kind=kind.kind,
                        storage_bits={"ifmap": bits["ifmap"], "filter": bits["filter"]},
                        stationary=STATIONARY[df.name], acc_bits=array.acc_bits)
