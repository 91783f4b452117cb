"""Map a GEMM layer onto a systolic array: folds, the tiling search, reuse and tiles.

A *fold* is one spatial mapping of the systolic array (:mod:`simulator.mapping.dataflows`):
its rows and columns take chunks of two GEMM dimensions and it streams a piece of the third.
Fold cycles are SCALE-Sim 3.0.0's closed form for the piece it streams, so a layer whose
stream is not tiled takes exactly SCALE-Sim's compute cycles; tiling the stream costs one
fill and drain per piece (the search weighs that against the traffic it saves).

The temporal mapping (loop order and tile sizes of M, K and N above the folds, and where
each operand's buffer keeps data) is :mod:`simulator.mapping.nest`, chosen per layer by
:mod:`simulator.mapping.search` (or the dataflow's fixed order with ``mapping: {search:
false}``). Every fold's SRAM traffic is its operands' slices: an operand element crosses its
SRAM port once per fold position along the dimension it does not depend on, at its stored
width (``pack`` values per packed word, compressed formats with their metadata); partial
sums at ``acc_bits``. A fold is busy for the larger of its closed-form cycles and its
SRAM-port-limited time, with and without zero skipping (:mod:`simulator.mapping.sparsity`:
a skipping fold lasts as long as its busiest lane). Bytes of a slice are its share of the
tensor's *unique* bytes (the ifmap before im2col expansion), packed. Folds are grouped into
tiles for the engine by :mod:`simulator.mapping.tiles`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from simulator.mapping.candidates import default_nest
from simulator.mapping.dataflows import Dataflow
from simulator.mapping.estimate import ArrayModel
from simulator.mapping.fold_classes import build_tiles_segments, fold_classes
from simulator.mapping.nest import (
    DIMS,
    OPERAND_DIMS,
    Axis,
    FoldTable,
    Grid,
    OperandBytes,
    fold_table,
)
from simulator.mapping.operands import (
    ArithmeticKind,
    GemmView,
    PEGrid,
    Prepared,
    arith_counts,
    pe_rate,
    prepare,
    residency,
    sparsity_counts,
    tile_dims,
)
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.precision import fold_stream_cycles, precision_notes
from simulator.mapping.schedule import Buffer, LayerMapping, TileSchedule, chunks
from simulator.mapping.search import Choice, Problem, choose_all
from simulator.mapping.sparsity import lane_work
from simulator.mapping.tiles import build_tiles
from simulator.workload.layer import Layer

#: The operand a dataflow keeps in the PEs (the other two move through the array).
STATIONARY = {"ws": "filter", "is": "ifmap", "os": "psum"}
__all__ = ["STATIONARY", "ArithmeticKind", "ArrayGeometry", "GemmPlan", "GemmView",
           "gemm_problem", "map_gemm", "map_planned", "map_planned_all", "plan_gemm",
           "systolic_grid"]


class ArrayGeometry(PEGrid, Protocol):
    """What the mapping needs of a systolic array (:mod:`simulator.hardware.systolic`)."""

    @property
    def dataflow(self) -> Dataflow: ...

    def fold_cycles(self, stream: int) -> int: ...


def systolic_grid(df: Dataflow, rows: int, cols: int, size: Mapping[str, int]) -> Grid:
    """The fold grid of a dataflow: chunks of the array's rows and columns, one streamed axis,
    folds inside a tile in the dataflow's fold order."""
    lanes: dict[str, int] = {df.rows: rows, df.cols: cols}
    axes = {d: Axis(size[d], None if d == df.stream else chunks(size[d], lanes[d]))
            for d in DIMS}
    return Grid(axes, within=(df.outer, df.inner))


@dataclass(frozen=True, slots=True)
class GemmPlan:
    """A GEMM's operands and its tiling search, before the search has run (what
    :func:`map_planned` finishes; :func:`plan_gemm`)."""

    layer: Layer
    array: ArrayGeometry
    ctx: MappingContext
    p: Prepared
    problem: Problem
    bufs: Mapping[str, Buffer]
    port_bits: Mapping[str, float]
    ports: Mapping[str, float]
    base: int
    lanes: Mapping[str, int]


def plan_gemm(layer: Layer, array: ArrayGeometry, buffers: Mapping[str, Buffer],
              seed: int = 0, ctx: MappingContext = DEFAULT_CONTEXT) -> GemmPlan:
    """The first part of :func:`map_gemm`: ``layer``'s operands, fold grid and tiling search
    problem (to search several layers at once, :func:`~simulator.mapping.search.choose_all`,
    whose memo :func:`map_planned` then reads)."""
    df = array.dataflow
    p = prepare(layer, array, seed)
    bits, pack = p.bits, p.pack
    est_scale = (p.view.stream_cycles_per_value if p.filter_cycles is None
                 else float(p.filter_cycles.mean()))
    size = p.size
    bufs = ctx.buffers if ctx.buffers is not None else buffers
    grid = systolic_grid(df, array.rows, array.cols, size)
    elems = {"ifmap": size["M"] * size["K"], "filter": size["K"] * size["N"],
             "ofmap": size["M"] * size["N"]}
    per_elem = p.per_element_bytes()
    nbytes = {"ifmap": OperandBytes(per_elem["ifmap"], per_elem["ifmap"]),
              "filter": OperandBytes(per_elem["filter"], per_elem["filter"]),
              "ofmap": OperandBytes(array.acc_bits / 8, array.acc_bits / 8,
                                    0.0 if ctx.keep_output else per_elem["ofmap"])}

    port_bits = {"ifmap": pack * bits["ifmap"], "filter": pack * bits["filter"]}
    ports = {op: bufs[op].bits_per_cycle for op in ("ifmap", "filter", "ofmap")}
    base = array.fold_cycles(0)
    lanes: dict[str, int] = {df.rows: array.rows, df.cols: array.cols}

    def port(ext: np.ndarray) -> np.ndarray:
        e = {d: (ext if d == df.stream else min(lanes[d], size[d])) for d in DIMS}
        cyc = np.zeros_like(ext, dtype=np.float64)
        moved = {"ifmap": e["M"] * e["K"] * port_bits["ifmap"],
                 "filter": e["K"] * e["N"] * port_bits["filter"],
                 "ofmap": e["M"] * e["N"] * array.acc_bits}
        for op, b in moved.items():
            if math.isfinite(ports[op]):
                cyc = np.maximum(cyc, b / ports[op])
        return cyc

    word = {op: bufs[op].word_bits for op in ("ifmap", "filter", "ofmap")}
    model = ArrayModel(
        pes=array.n_pes, macs=size["M"] * size["K"] * size["N"], count=layer.count,
        base_cycles=base, stream_scale=est_scale, port=port,
        words={"ifmap": port_bits["ifmap"] / word["ifmap"],
               "filter": port_bits["filter"] / word["filter"],
               "ofmap": array.acc_bits / word["ofmap"]},
        stationary=STATIONARY[df.name])
    first = default_nest(grid, df.outer, df.inner)
    key = ("systolic", df.name, array.rows, array.cols, tuple(size.values()), layer.count,
           est_scale, None if p.filter_cycles is None else tuple(p.filter_cycles.tolist()),
           tuple(sorted(nbytes.items())), tuple(sorted(port_bits.items())),
           tuple(sorted(ports.items())), tuple(sorted(word.items())), array.acc_bits)
    problem = Problem(grid, model, elems, nbytes,
                      {op: bufs[op].capacity_bytes for op in elems},
                      {op: bufs[op].tile_bytes for op in elems},
                      {op: word[op] / 8 for op in elems}, ctx, first, key)
    return GemmPlan(layer, array, ctx, p, problem, bufs, port_bits, ports, base, lanes)


def gemm_problem(layer: Layer, array: ArrayGeometry, buffers: Mapping[str, Buffer],
                 seed: int = 0, ctx: MappingContext = DEFAULT_CONTEXT) -> Problem:
    """The tiling search :func:`map_gemm` runs for ``layer``."""
    return plan_gemm(layer, array, buffers, seed, ctx).problem


def map_gemm(layer: Layer, array: ArrayGeometry, buffers: Mapping[str, Buffer],
             seed: int = 0, ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
    """Map a GEMM layer: fold grid, tiling search, fold table, tiles (module docstring).

    Sparsity (:mod:`simulator.mapping.sparsity`) can shrink the GEMM, compress stored operands
    and, when the array skips zeros, replace each fold's stream by its busiest lane's work.
    ``ctx`` brings the architecture's mapping options, the search's prices, the operands
    already on chip and the buffer capacity left for this layer.
    """
    return map_planned(plan_gemm(layer, array, buffers, seed, ctx))


def map_planned(plan: GemmPlan) -> LayerMapping:
    """The rest of :func:`map_gemm`: the search (or its memo), fold table, tiles, counts."""
    return map_planned_all([plan])[0]


#: folds whose tiles :func:`map_planned_all` builds in one call at most (a larger layer
#: alone): bounds its stacked arrays, per class row and per tile (a layer's tiles are at most
#: its folds' pieces), near one large layer's own
MAX_BATCH_FOLDS = 1 << 18


def map_planned_all(plans: Sequence[GemmPlan], max_folds: int = MAX_BATCH_FOLDS
                    ) -> list[LayerMapping]:
    """:func:`map_planned` of each plan, the tiles of those built from fold classes grouped
    in as few calls as ``max_folds`` folds allow
    (:func:`~simulator.mapping.fold_classes.build_tiles_segments`: each gets exactly its own
    tiles)."""
    out: list[LayerMapping] = []
    pending: list[_Staged] = []
    folds = 0
    for plan, choice in zip(plans, choose_all([plan.problem for plan in plans]), strict=True):
        staged = _stage(plan, choice)
        n = 0 if staged.rows is None else int(staged.rows["mult"].sum())
        if pending and folds + n > max_folds:
            _build(pending)
            out += [_finish(x) for x in pending]
            pending, folds = [], 0
        pending.append(staged)
        folds += n
    _build(pending)
    return out + [_finish(x) for x in pending]


def _build(staged: Sequence[_Staged]) -> None:
    """The tiles of every staged GEMM that has class rows, in one call."""
    batch = [s for s in staged if s.rows is not None]
    if not batch:
        return
    rows = [s.rows for s in batch if s.rows is not None]
    lengths = np.array([len(r["busy"]) for r in rows])
    shift = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0] if k != "producer"}
    producer = np.concatenate([np.where(r["producer"] >= 0, r["producer"] + o, -1)
                               for r, o in zip(rows, shift.tolist(), strict=True)])
    ops = ("ifmap", "filter", "psum")
    built = build_tiles_segments(
        cat["busy"], {op: cat[op] for op in ops}, cat["stores"], producer, cat["mult"],
        {b: np.array([s.capacity[b] for s in batch], dtype=np.float64)
         for b in ("ifmap", "filter", "ofmap")},
        {op: cat[f"head_{op}"] for op in ops}, cat["tail"], cat["store_tail"], lengths)
    for s, t in zip(batch, built, strict=True):
        s.tiles = t
        s.rows = None


@dataclass(slots=True)
class _Staged:
    """A GEMM between its fold table and its tiles (:func:`map_planned_all`): the tiles, or
    the per-fold-class rows they are to be built from (``rows``: busy cycles, loads, stores,
    producers, multiplicities, heads and tails; ``capacity``: each buffer's tile room)."""

    plan: GemmPlan
    choice: Choice
    ft: FoldTable
    w: np.ndarray
    reads_o: np.ndarray
    compute: int
    imbalance: float
    tiles: TileSchedule | None = None
    rows: dict[str, np.ndarray] | None = None
    capacity: Mapping[str, float] = field(default_factory=dict)


def _stage(plan: GemmPlan, choice: Choice) -> _Staged:
    layer, array, ctx = plan.layer, plan.array, plan.ctx
    df = array.dataflow
    p, problem = plan.p, plan.problem
    sv, work_layer, bits, pack = p.sv, p.work, p.bits, p.pack
    scale = p.view.stream_cycles_per_value
    est_scale = problem.model.stream_scale
    g = layer.count
    grid, nbytes, elems = problem.grid, problem.nbytes, problem.sizes
    bufs, port_bits, ports, base, lanes = plan.bufs, plan.port_bits, plan.ports, plan.base, \
        plan.lanes


    def per_group(a: np.ndarray) -> np.ndarray:
        """``a`` once per group (the array itself for one group: none is written to)."""
        return a if g == 1 else np.tile(a, g)

    skipping = sv is not None and (sv.skip_act is not None or sv.skip_weight is not None)
    by_class = ctx.fold_classes and not skipping and p.filter_cycles is None
    classes = fold_classes(grid, choice.nest, choice.storage, nbytes) if by_class else None
    ft, mult = classes if classes is not None else (
        fold_table(grid, choice.nest, choice.storage, nbytes), None)
    w = mult if mult is not None else np.ones(ft.n_folds, dtype=np.int64)  # folds per row
    wg = per_group(w)
    ext = ft.extent
    if p.filter_cycles is None:
        fold_c = base + ext[df.stream] * scale
    else:
        fold_c = base + fold_stream_cycles(
            p.filter_cycles, df.stream, ext[df.stream], ft.unit[df.stream],
            int(choice.nest.per_tile[df.stream]), ft.unit["N"], lanes.get("N", 1))
    reads_o = np.where(ft.k_first, 0, ext["M"] * ext["N"])
    if df.stream == "K":  # os: outputs finish in the PEs unless K is tiled
        last_k = ft.unit["K"] == ft.unit["K"].max()
        o_bits = ext["M"] * ext["N"] * np.where(ft.k_first & last_k, bits["ofmap"],
                                                 array.acc_bits) + reads_o * array.acc_bits
    else:
        o_bits = (ext["M"] * ext["N"] + reads_o) * array.acc_bits
    moved = {"ifmap": ext["M"] * ext["K"] * port_bits["ifmap"],
             "filter": ext["K"] * ext["N"] * port_bits["filter"], "ofmap": o_bits}
    port_c = np.zeros(ft.n_folds, dtype=np.int64)
    for op, b in moved.items():
        if math.isfinite(ports[op]):
            port_c = np.maximum(port_c, np.ceil(b / ports[op] - 1e-9).astype(np.int64))
    imbalance = 1.0
    if skipping and sv is not None:
        pieces = grid.axes[df.stream].tiles(choice.nest.per_tile[df.stream])[2]
        work, mean = lane_work(df.name, sv.skip_act, sv.skip_weight,
                               (g, work_layer.M, work_layer.K, work_layer.N), array.rows,
                               array.cols, pack, pieces)
        sel = (slice(None), ft.unit[df.stream], ft.unit[df.rows], ft.unit[df.cols])
        closed = (base + work[sel] * scale).reshape(-1)
        imbalance = float(work.sum() / mean.sum()) if mean.sum() > 0 else 1.0
    else:
        closed = per_group(fold_c)
    if len(closed) != g * ft.n_folds:
        raise AssertionError(f"layer {layer.name!r}: {len(closed)} fold cycles for "
                             f"{g * ft.n_folds} folds")
    busy = np.maximum(closed, per_group(port_c))
    compute = max(int((closed * wg).sum()) - 1, 1)
    if (busy * wg).sum() > 1:  # SCALE-Sim counts from zero: a layer takes folds * fold - 1 cycles
        busy[-1] -= 1   # (except a one-cycle layer, which SCALE-Sim divides by zero on)
    offsets = np.repeat(np.arange(g) * ft.n_folds, ft.n_folds)
    prod = per_group(ft.producer)
    # streaming inside a fold: operands spanning the streamed dimension arrive step by step
    # (a fold needs their first step and its stationary slices to start); its outputs leave
    # a row at a time (ws, is: one per stream step; os: the array drains its rows one per
    # cycle at the fold's end)
    step = 1.0 / ext[df.stream]
    share = {op: step if df.stream in OPERAND_DIMS[op] else 1.0 for op in OPERAND_DIMS}
    if df.stream == "K":
        share["ofmap"] = 1.0 / ext[df.rows]
    head = {"ifmap": ft.loads["ifmap"] * share["ifmap"],
            "filter": ft.loads["filter"] * share["filter"],
            "psum": ft.loads["psum"] * share["ofmap"]}
    tail = np.minimum(busy, base + math.ceil(est_scale))
    loads = {k: per_group(v) for k, v in ft.loads.items()}
    capacity = {op: bufs[op].tile_bytes for op in elems}
    heads = {k: per_group(v) for k, v in head.items()}
    store_tail = per_group(ft.stores * share["ofmap"])
    staged = _Staged(plan, choice, ft, w, reads_o, compute, imbalance)
    if not by_class:  # fold by fold, the long way
        staged.tiles = build_tiles(busy, loads, per_group(ft.stores),
                                   np.where(prod >= 0, prod + offsets, -1), capacity,
                                   head=heads, tail=tail, store_tail=store_tail)
        return staged
    staged.rows = {"busy": busy, **loads, "stores": per_group(ft.stores),
                   "producer": np.where(prod >= 0, prod + offsets, -1), "mult": wg,
                   **{f"head_{k}": v for k, v in heads.items()}, "tail": tail,
                   "store_tail": store_tail}
    staged.capacity = capacity
    return staged


def _finish(s: _Staged) -> LayerMapping:
    """A staged GEMM's mapping, from its tiles: counts, efficiency, notes."""
    assert s.tiles is not None
    plan, choice, ft, w, reads_o, tiles = s.plan, s.choice, s.ft, s.w, s.reads_o, s.tiles
    layer, array, ctx, p = plan.layer, plan.array, plan.ctx, plan.p
    df, kind, sv, bits, pack = array.dataflow, array.kind, p.sv, p.bits, p.pack
    g, grid, ext = layer.count, plan.problem.grid, ft.extent
    folds = g * int(w.sum())
    used = int((ext[df.rows] * ext[df.cols] * w).sum()) * g
    # a packed kind's view holds K' = ceil(K / pack) words: SRAM reads count the elements
    k_ratio = p.work.K / p.view.K
    filter_in = int((ext["K"] * ext["N"] * w).sum()) * g
    counts = {
        "sram_ifmap_reads": round(int((ext["M"] * ext["K"] * w).sum()) * g * k_ratio),
        "sram_filter_reads": round(filter_in * k_ratio),
        "sram_ofmap_writes": int((ext["M"] * ext["N"] * w).sum()) * g,
        "sram_ofmap_reads": int((reads_o * w).sum()) * g,
        # every filter value entering the array is de-quantised there once
        "dequantized_values": filter_in if layer.weight.dequantize else 0,
        **sparsity_counts(p), **arith_counts(p, kind),
    }
    return LayerMapping(
        layer, array.name, tiles, compute_cycles=s.compute, folds=folds,
        mapping_efficiency=used / (folds * array.n_pes), counts=counts,
        weight_density=sv.weight_density if sv else 1.0,
        act_density=sv.act_density if sv else 1.0, load_imbalance=s.imbalance,
        macs_per_pe_per_cycle=pe_rate(p, kind),
        notes=tuple(precision_notes(layer, kind.serial_weights, kind.kind,
                                    p.filter_cycles is not None, bool(p.block))),
        values_per_word=pack, number_format=kind.number_format,
        weight_bits=p.value_bits if layer.filter_is_weight else p.a_bits, act_bits=p.a_bits,
        pe_kind=kind.kind, storage_bits={"ifmap": bits["ifmap"], "filter": bits["filter"]},
        stationary=STATIONARY[df.name], acc_bits=array.acc_bits,
        loop_order=choice.nest.label, tile_dims=tile_dims(grid, choice.nest),
        candidates=choice.candidates,
        **residency(p, {k: v * w for k, v in ft.loads.items()}, ctx))  # type: ignore[arg-type]
