"""Row-stationary dataflow (Eyeriss: Chen, Emer, Sze, ISCA 2016, section V; Chen, Krishna,
Emer, Sze, JSSC 52(1) 2017, section III): a convolution as 1-D row convolutions on PE sets.

**The primitive.** A PE keeps one filter row (``S`` weights) in its filter scratchpad, slides
an ifmap row through its ifmap scratchpad (an ``S``-wide window) and accumulates one row of
``F`` partial sums in its psum scratchpad: ``S x F`` MACs, one per cycle. A PE interleaves
``q`` channels and ``p`` filters (scratchpads: ``q*S`` ifmap, ``p*q*S`` filter, ``p`` psum
words; Eyeriss: 12, 224, 24 x 16 bits).

**PE sets.** A logical set of ``R`` rows x ``E`` columns computes one 2-D convolution: PE
``(i, j)`` convolves filter row ``i`` with ifmap row ``j*U + i``; filter rows are reused
along a set row, ifmap rows along its diagonals, partial sums accumulate up each column
(the vertical psum hops). On a ``rows x cols`` array a set is cut into strips of ``e``
columns (``e <= cols``; filters taller than the array are cut into row folds whose partial
sums meet in the buffer), and ``floor(rows / R) * floor(cols / e)`` copies run at once on
``z`` strips of the same ofmap, ``r`` groups of channels and ``t`` groups of filters.

**A processing pass** (Eyeriss's unit of work) processes ``n`` images x ``p*t`` filters x
``q*r`` channels x ``z*e`` ofmap rows: every PE does ``n*p*q*S*F`` MACs, after loading its
``p*q*S`` weights (one per cycle, multicast along the set row: an assumption, the paper gives
no fill timing). From the global buffer it reads the pass's ``n * q*r * ((z*e - 1)*U + R)``
input rows (each once, multicast to the PEs that use it), its ``p*t * q*r * R * S`` weights,
and writes its ``n * p*t * z*e * F`` partial sums (reading them back for every channel group
but the first).

**Choice of the pass** (per layer, deterministic). Candidates: every strip width, copy
assignment and ``n`` whose ``p`` and ``q`` fill the scratchpads, kept when no other beats them
on both cycles (the per-PE work plus fill, summed over passes) and buffer accesses per MAC,
within 1.5x the fewest cycles. Above the array each candidate's passes are the folds of a GEMM
grid (M: image blocks x row strips, K: channel groups x row folds, N: filter groups) tiled by
the same search as the systolic dataflows (:mod:`.search`): buffer capacity, DRAM traffic and
loop order (Eyeriss orders filters -> channels -> rows -> filter blocks, m -> C -> E -> M,
one of the candidates). The pass and tiling best for the architecture's objective win, its
estimate adding the buffer, scratchpad-fill and array-network energy of the pass.
Layers that are not convolutions run as 1x1 convolutions (as Eyeriss runs fc layers).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simulator.errors import MappingError
from simulator.mapping.estimate import ArrayModel
from simulator.mapping.masks import conv_positions
from simulator.mapping.nest import Axis, Grid, Nest, OperandBytes, fold_table
from simulator.mapping.operands import (
    PEGrid,
    arith_counts,
    prepare,
    residency,
    sparsity_counts,
    tile_dims,
)
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.precision import precision_notes
from simulator.mapping.schedule import Buffer, LayerMapping, chunks
from simulator.mapping.search import choose
from simulator.mapping.tiles import build_tiles
from simulator.workload.geometry import pair
from simulator.workload.layer import Layer


class Scratchpads(BaseModel):
    """Per-PE scratchpads in words (Eyeriss JSSC 2017, section V: 224 filter, 12 ifmap and 24
    psum words of 16 bits)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    filter_words: int = Field(default=224, gt=0, strict=True)
    ifmap_words: int = Field(default=12, gt=0, strict=True)
    psum_words: int = Field(default=24, gt=0, strict=True)


@dataclass(frozen=True, slots=True)
class ConvShape:
    """One group of a convolution in Eyeriss's notation: ``N`` images of ``C`` channels of
    ``H x W``, ``M`` filters of ``R x S``, ``E x F`` outputs, stride ``U``."""

    N: int
    C: int
    M: int
    H: int
    W: int
    R: int
    S: int
    E: int
    F: int
    U: int


def conv_shape(layer: Layer) -> ConvShape:
    """The layer as a convolution; fc layers and matmuls as 1x1 convolutions of ``M`` images."""
    d = layer.dims
    if layer.op == "conv2d" and {"in_channels", "in_h", "in_w", "kernel"} <= set(d):
        (kh, kw), (sh, _) = pair(d["kernel"]), pair(d.get("stride", 1))
        (dh, dw) = pair(d.get("dilation", 1))
        if dh != 1 or dw != 1:
            raise MappingError(f"layer {layer.name!r}: dilated convolutions are not mapped "
                               f"row-stationary; use os, ws or is")
        e_f = conv_positions(layer)
        g = int(d.get("groups", 1))
        ho = e_f // max(1, _out_w(layer))
        return ConvShape(N=layer.M // e_f, C=int(d["in_channels"]) // g, M=layer.N,
                         H=int(d["in_h"]) + 2 * pair(d.get("padding", 0))[0],
                         W=int(d["in_w"]) + 2 * pair(d.get("padding", 0))[1],
                         R=kh, S=kw, E=ho, F=_out_w(layer), U=sh)
    return ConvShape(N=layer.M, C=layer.K, M=layer.N, H=1, W=1, R=1, S=1, E=1, F=1, U=1)


def _out_w(layer: Layer) -> int:
    d = layer.dims
    (_, kw), (_, sw) = pair(d["kernel"]), pair(d.get("stride", 1))
    (_, pw), (_, dw) = pair(d.get("padding", 0)), pair(d.get("dilation", 1))
    return (int(d["in_w"]) + 2 * pw - dw * (kw - 1) - 1) // sw + 1


@dataclass(frozen=True, slots=True)
class Pass:
    """A processing pass: strip width ``e``, copies on ``z`` strips / ``r`` channel groups /
    ``t`` filter groups, per PE ``p`` filters, ``q`` channels, ``n`` images; filter rows per
    row fold ``rows_per_fold``."""

    e: int
    z: int
    r: int
    t: int
    p: int
    q: int
    n: int
    rows_per_fold: int


def pass_candidates(s: ConvShape, rows: int, cols: int, spads: Scratchpads) -> list[Pass]:
    """The passes worth tiling: those no other pass beats on both cycles and buffer accesses
    per MAC, within 1.5x the fewest cycles (module docstring), widest sets first."""
    rf = min(s.R, rows)
    v = rows // rf
    scored: list[tuple[float, float, int, Pass]] = []
    q = min(spads.ifmap_words // s.S, s.C)
    if q < 1:
        raise MappingError(f"filter rows of {s.S} weights do not fit the ifmap scratchpad of "
                           f"{spads.ifmap_words} words")
    for e in sorted({-(-s.E // k) for k in range(1, s.E + 1)} & set(range(1, cols + 1))):
        copies = v * (cols // e)
        strips = -(-s.E // e)
        for z in range(1, min(copies, strips) + 1):
            for r in range(1, min(copies // z, s.C) + 1):
                t = min(copies // (z * r), s.M)
                q = min(spads.ifmap_words // s.S, -(-s.C // r))
                p = min(spads.psum_words, spads.filter_words // (q * s.S), -(-s.M // t))
                if p < 1:
                    continue
                for n in sorted({1, min(4, s.N), s.N}):
                    cand = Pass(e, z, r, t, p, q, n, rf)
                    cyc, acc = pass_cost(s, cand)
                    scored.append((cyc, round(acc, 9), -e, cand))
    if not scored:
        raise MappingError(f"no row-stationary pass fits the scratchpads ({spads})")
    scored.sort(key=lambda x: x[:3])
    fewest = scored[0][0]
    front: list[Pass] = []
    best_acc = math.inf
    for cyc, acc, _, cand in scored:
        if cyc <= 1.5 * fewest and acc < best_acc:
            front.append(cand)
            best_acc = acc
    return front


def array_counts(s: ConvShape, ps: Pass, u: Mapping[str, Mapping[str, np.ndarray]]
                 ) -> dict[str, float]:
    """Scratchpad fills (words) and psum hops of all passes, summed separably over the units:
    a busy PE loads ``p*q*S`` weights and ``n*q*W`` input values per pass, and passes
    ``n*p*F`` partial sums to the PE above it (all but a column's top PE)."""
    m, k, n = u["M"], u["K"], u["N"]
    used_r = np.minimum(ps.r, -(-k["channels"] // ps.q))
    used_t = np.minimum(ps.t, -(-n["filters"] // ps.p))
    q_eff, p_eff = -(-k["channels"] // ps.r), -(-n["filters"] // ps.t)
    rows_m = float(m["rows"].sum())
    rows_img = float((m["rows"] * m["images"]).sum())
    return {
        "filter_rf_write": s.S * rows_m * float((k["frows"] * used_r * q_eff).sum())
        * float((used_t * p_eff).sum()),
        "ifmap_rf_write": s.W * rows_img * float((k["frows"] * used_r * q_eff).sum())
        * float(used_t.sum()),
        "psum_hop": s.F * rows_img * float(((k["frows"] - 1) * used_r).sum())
        * float((used_t * p_eff).sum()),
    }


def _groups(total: int, size: int) -> np.ndarray:
    return chunks(total, min(size, total))


def pass_units(s: ConvShape, ps: Pass) -> dict[str, dict[str, np.ndarray]]:
    """Per GEMM axis the passes' units: their GEMM extent and their factor of a PE's work."""
    images = _groups(s.N, ps.n)
    strips = _groups(s.E, ps.z * ps.e)
    channels = _groups(s.C, ps.q * ps.r)
    folds = _groups(s.R, ps.rows_per_fold)
    filters = _groups(s.M, ps.p * ps.t)
    m_ext = np.outer(images, strips).ravel() * s.F
    k_ext = np.outer(channels, folds).ravel() * s.S
    return {
        "M": {"extent": m_ext, "work": np.repeat(images, len(strips)) * s.F,
              "images": np.repeat(images, len(strips)), "rows": np.tile(strips, len(images))},
        "K": {"extent": k_ext, "work": np.repeat(-(-channels // ps.r), len(folds)) * s.S,
              "channels": np.repeat(channels, len(folds)), "frows": np.tile(folds,
                                                                             len(channels))},
        "N": {"extent": filters, "work": -(-filters // ps.t), "filters": filters},
    }


def pass_cost(s: ConvShape, ps: Pass) -> tuple[float, float]:
    """(cycles, buffer accesses per MAC) of all passes: separable sums over the units."""
    u = pass_units(s, ps)
    fill = ps.p * ps.q * s.S
    n_pass = len(u["M"]["work"]) * len(u["K"]["work"]) * len(u["N"]["work"])
    cycles = n_pass * fill + float(u["M"]["work"].sum() * u["K"]["work"].sum()
                                   * u["N"]["work"].sum())
    macs = s.N * s.E * s.F * s.M * s.C * s.R * s.S
    return cycles, sum(v.sum() for v in buffer_accesses(s, u).values()) / macs


def buffer_accesses(s: ConvShape, u: Mapping[str, Mapping[str, np.ndarray]]
                    ) -> dict[str, np.ndarray]:
    """Global-buffer words per pass along each axis's units, summed over the others:
    ``ifmap`` reads, ``filter`` reads, ``psum`` writes (module docstring)."""
    n_m, n_k, n_n = (len(u[d]["extent"]) for d in ("M", "K", "N"))
    in_rows = (u["M"]["rows"][:, None] - 1) * s.U + u["K"]["frows"][None, :]
    ifmap = (u["M"]["images"][:, None] * u["K"]["channels"][None, :] * in_rows * s.W) * n_n
    filt = (u["N"]["filters"].sum() * (u["K"]["channels"] * u["K"]["frows"]).sum() * s.S
            * n_m)
    psum = (u["M"]["images"] * u["M"]["rows"]).sum() * s.F * u["N"]["filters"].sum() * n_k
    return {"ifmap": ifmap, "filter": np.asarray(filt, dtype=np.float64),
            "psum": np.asarray(psum, dtype=np.float64)}


def rs_grid(s: ConvShape, ps: Pass) -> tuple[Grid, dict[str, dict[str, np.ndarray]]]:
    """The passes as the folds of a GEMM grid (no streamed axis; passes inside a tile run
    filters innermost, then channels, then rows: Eyeriss's m -> C -> E order)."""
    u = pass_units(s, ps)
    axes = {d: Axis(int(u[d]["extent"].sum()), u[d]["extent"]) for d in ("M", "K", "N")}
    return Grid(axes, within=("M", "K", "N")), u


def fill_cycles(s: ConvShape, ps: Pass) -> int:
    """Cycles a pass spends loading its PEs' filter scratchpads (module docstring)."""
    return ps.p * ps.q * s.S


def check_rs(layer: Layer, pack: int, stream_scale: int) -> None:
    """Row-stationary PEs are one MAC per cycle on one operand pair (Eyeriss's 16-bit MAC)."""
    if pack != 1 or stream_scale != 1:
        raise MappingError(f"layer {layer.name!r}: the row-stationary dataflow runs pe: mac "
                           f"(one multiply-accumulate per cycle)")


class RSGeometry(PEGrid, Protocol):
    """What the row-stationary mapping needs of a PE array beyond its grid."""

    @property
    def scratchpads(self) -> Scratchpads: ...


def map_rs(layer: Layer, array: RSGeometry, buffers: Mapping[str, Buffer], seed: int = 0,
           ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
    """Map a layer row-stationary: choose its pass, tile the passes (:mod:`.search`), count
    buffer, scratchpad and array-network traffic per pass, build the tiles."""
    p = prepare(layer, array, seed)
    check_rs(layer, p.pack, p.view.stream_cycles_per_value)
    sp = array.sparsity
    if "skip" in (sp.weights, sp.activations) or (p.sv is not None and p.sv.nm_index_bits):
        raise MappingError(f"layer {layer.name!r}: the row-stationary dataflow gates zeros "
                           f"(Eyeriss) but does not skip them or compress N:M; use gate")
    s = conv_shape(layer)
    s = dataclasses.replace(s, C=max(1, p.work.K // (s.R * s.S)), M=p.work.N)
    g = layer.count
    bufs = ctx.buffers if ctx.buffers is not None else buffers
    per = p.per_element_bytes()
    nbytes = {"ifmap": OperandBytes(per["ifmap"], per["ifmap"]),
              "filter": OperandBytes(per["filter"], per["filter"]),
              "ofmap": OperandBytes(array.acc_bits / 8, array.acc_bits / 8,
                                    0.0 if ctx.keep_output else per["ofmap"])}
    word = {op: bufs[op].word_bits for op in ("ifmap", "filter", "ofmap")}
    bits = {"ifmap": p.bits["ifmap"], "filter": p.bits["filter"], "ofmap": array.acc_bits}
    c = ctx.costs
    plans = []
    for ps in pass_candidates(s, array.rows, array.cols, array.scratchpads):
        grid, u = rs_grid(s, ps)
        glb = buffer_accesses(s, u)
        rf = array_counts(s, ps, u)
        local_pj = float(
            glb["ifmap"].sum() * bits["ifmap"] / word["ifmap"] * c.sram_read.get("ifmap", 0.0)
            + glb["filter"].sum() * bits["filter"] / word["filter"]
            * c.sram_read.get("filter", 0.0)
            + glb["psum"].sum() * bits["ofmap"] / word["ofmap"]
            * (c.sram_read.get("ofmap", 0.0) + c.sram_write.get("ofmap", 0.0))
            + (rf["filter_rf_write"] + rf["ifmap_rf_write"]) * (c.rf_write + c.hop)
            + rf["psum_hop"] * c.hop)
        sizes = {"ifmap": grid.axes["M"].size * grid.axes["K"].size,
                 "filter": grid.axes["K"].size * grid.axes["N"].size,
                 "ofmap": grid.axes["M"].size * grid.axes["N"].size}
        work = float(u["M"]["work"].sum() * u["K"]["work"].sum() * u["N"]["work"].sum())
        model = ArrayModel(pes=array.n_pes, macs=int(s.N * s.E * s.F * s.M * s.C * s.R * s.S),
                           count=g, base_cycles=fill_cycles(s, ps), work_cycles=work,
                           array_pj=functools.partial(_constant, pj=local_pj))
        key = ("rs", array.rows, array.cols, s, ps, g, tuple(sorted(nbytes.items())),
               tuple(sorted(word.items())), round(local_pj, 6))
        first = Nest(("N", "M", "K"), {"M": 1, "K": 1, "N": 1})
        choice = choose(grid, model, sizes, nbytes,
                        {op: bufs[op].capacity_bytes for op in sizes},
                        {op: bufs[op].tile_bytes for op in sizes},
                        {op: word[op] / 8 for op in sizes}, ctx, first, key)
        objective = {"latency": choice.latency_cycles, "energy": choice.energy_pj,
                     "edp": choice.latency_cycles * choice.energy_pj}[ctx.params.objective]
        plans.append((objective, ps, grid, u, choice, sizes))
    _, ps, grid, u, choice, sizes = min(plans, key=lambda x: x[0])
    fill = fill_cycles(s, ps)
    candidates = sum(x[4].candidates for x in plans)
    ft = fold_table(grid, choice.nest, choice.storage, nbytes)
    um, uk, un = ft.unit["M"], ft.unit["K"], ft.unit["N"]
    images, rows_m = u["M"]["images"][um], u["M"]["rows"][um]
    chans, frows, filters = u["K"]["channels"][uk], u["K"]["frows"][uk], u["N"]["filters"][un]
    closed = fill + u["M"]["work"][um] * u["K"]["work"][uk] * u["N"]["work"][un]
    in_rows = (rows_m - 1) * s.U + frows
    reads_o = np.where(ft.k_first, 0, images * rows_m * s.F * filters)
    words = {"ifmap": images * chans * in_rows * s.W, "filter": filters * chans * frows * s.S,
             "ofmap": images * rows_m * s.F * filters + reads_o}
    port = np.zeros(ft.n_folds, dtype=np.int64)
    for op, n_words in words.items():
        bw = bufs[op].bits_per_cycle
        if math.isfinite(bw):
            port = np.maximum(port, np.ceil(n_words * bits[op] / bw - 1e-9).astype(np.int64))
    busy = np.tile(np.maximum(closed, port), g)
    p_eff, q_eff = -(-filters // ps.t), -(-chans // ps.r)
    copies = np.minimum(ps.t, -(-filters // ps.p)) * np.minimum(ps.r, -(-chans // ps.q))
    active = frows * rows_m * copies
    share = 1.0 / np.maximum(rows_m, 1)
    tiles = build_tiles(busy, {k: np.tile(v, g) for k, v in ft.loads.items()},
                        np.tile(ft.stores, g), _producers(ft.producer, g),
                        {op: bufs[op].tile_bytes for op in sizes},
                        head={"ifmap": np.tile(ft.loads["ifmap"] * np.minimum(
                            1.0, frows / in_rows), g), "filter": np.tile(ft.loads["filter"], g),
                            "psum": np.tile(ft.loads["psum"] * share, g)},
                        tail=np.tile(np.minimum(closed, fill + np.ceil(closed * share)), g),
                        store_tail=np.tile(ft.stores * share, g))
    counts = {
        "sram_ifmap_reads": int(words["ifmap"].sum()) * g,
        "sram_filter_reads": int(words["filter"].sum()) * g,
        "sram_ofmap_writes": int((images * rows_m * s.F * filters).sum()) * g,
        "sram_ofmap_reads": int(reads_o.sum()) * g,
        "rs.filter_rf_write": int((active * p_eff * q_eff * s.S).sum()) * g,
        "rs.ifmap_rf_write": int((active * images * q_eff * s.W).sum()) * g,
        "rs.psum_hop": int(((frows - 1) * rows_m * copies * images * p_eff * s.F).sum()) * g,
        **sparsity_counts(p), **arith_counts(p, array.kind),
    }
    return LayerMapping(
        layer, array.name, tiles, compute_cycles=max(int(closed.sum()) * g, 1),
        folds=ft.n_folds * g, mapping_efficiency=float(active.sum()) / (ft.n_folds
                                                                         * array.n_pes),
        counts=counts, weight_density=p.sv.weight_density if p.sv else 1.0,
        act_density=p.sv.act_density if p.sv else 1.0, macs_per_pe_per_cycle=1.0,
        weight_bits=p.value_bits if layer.filter_is_weight else p.a_bits, act_bits=p.a_bits,
        pe_kind=array.kind.kind, storage_bits={"ifmap": bits["ifmap"],
                                               "filter": bits["filter"]},
        stationary="all", acc_bits=array.acc_bits, loop_order=choice.nest.label,
        tile_dims=tile_dims(grid, choice.nest), candidates=candidates,
        notes=tuple(precision_notes(layer, array.kind.serial_weights, array.kind.kind,
                                    False, bool(p.block))),
        **residency(p, ft.loads, ctx))  # type: ignore[arg-type]


def _constant(pieces: np.ndarray, pj: float) -> np.ndarray:
    """The pass's array-side energy, the same for every tiling of its passes."""
    return np.full(pieces.shape, pj, dtype=np.float64)


def _producers(producer: np.ndarray, g: int) -> np.ndarray:
    """Per-fold read-after-write producers of ``g`` repeated GEMMs (offset per repeat)."""
    n = len(producer)
    prod = np.tile(producer, g)
    return np.where(prod >= 0, prod + np.repeat(np.arange(g) * n, n), -1)
