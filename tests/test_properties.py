"""Hypothesis properties over random GEMM shapes, arrays, buffers and bandwidths, with the
tiling search on and off (``mapping: {search: false}``: the dataflow's fixed order), every
PE kind and sparsity mode where the property is about them."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from simulator import SimulatorError, parse_arch, simulate
from simulator.arch.accelerator import build
from simulator.simulation import map_layer
from simulator.workload.layer import Operand, Workload

DIM = st.integers(1, 300)
SIDE = st.integers(1, 40)
DATAFLOW = st.sampled_from(["os", "ws", "is"])
SIZE_KB = st.sampled_from([1.0, 4.0, 16.0, 64.0, 1024.0])
DRAM_BW = st.sampled_from([0.5, 2.0, 8.0, 32.0, math.inf])
SRAM_BW = st.sampled_from([1.0, 4.0, 32.0, math.inf])
LATENCY = st.sampled_from([0.0, 10.0, 100.0])
MAX_FOLDS = 800  # keeps each SimPy run short (one tile holds at least one fold)

FAST = settings(max_examples=60, deadline=None)


def folds(dataflow: str, M: int, K: int, N: int, R: int, C: int) -> int:
    rows, cols = {"os": (M, N), "ws": (K, N), "is": (K, M)}[dataflow]
    return math.ceil(rows / R) * math.ceil(cols / C)


@st.composite
def cases(draw):
    M, K, N = draw(DIM), draw(DIM), draw(DIM)
    R, C, df = draw(SIDE), draw(SIDE), draw(DATAFLOW)
    # A 1x1 os array has no fill/drain (K + R + C - 2 = K), so SCALE-Sim's zero-based "- 1"
    # makes it faster than one MAC per cycle (utilisation > 1, as real SCALE-Sim 3.0.0 reports
    # too: 109 % for M=2, N=2, K=3); see the tests at the end of this file.
    assume(not (df == "os" and R == C == 1))
    assume(folds(df, M, K, N, R, C) <= MAX_FOLDS)
    kw = dict(size_kb=draw(SIZE_KB), dram_bandwidth=draw(DRAM_BW), latency_ns=draw(LATENCY),
              sram_bandwidth=draw(SRAM_BW), channels=draw(st.sampled_from([1, 2])),
              mapping={"search": draw(st.booleans())})
    return (M, K, N), (R, C, df), kw


def fixed(kw):
    """The case with the dataflow's fixed order (engine properties at a fixed mapping)."""
    return {**kw, "mapping": {"search": False}}


def stream_pieces(row, df: str) -> int:
    """Pieces of the streamed dimension in the reported tiling."""
    dim = {"os": "K", "ws": "M", "is": "N"}[df]
    return math.ceil(row[dim] / row[f"tile_{dim}"])


def one(arch, layer):
    return simulate(arch, Workload("w", (layer,))).layers.iloc[0]


@FAST
@given(cases())
def test_cycle_bounds(tiny_arch, tiny_layer, case):
    (M, K, N), (R, C, df), kw = case
    row = one(tiny_arch(R, C, df, **kw), tiny_layer(M, K, N))
    macs = M * K * N
    assert row["macs"] == macs
    assert row["total_cycles"] >= row["compute_cycles"] >= math.ceil(macs / (R * C))
    assert row["stall_cycles"] == row["total_cycles"] - row["compute_cycles"] >= 0
    # Bound under contention: every DRAM byte crosses the interface (at 1000 MHz, GB/s is
    # bytes per cycle, over all channels together).
    moved = row["dram_read_bytes"] + row["dram_write_bytes"]
    assert row["total_cycles"] >= moved / kw["dram_bandwidth"]


@FAST
@given(cases())
def test_utilisation_and_mapping_efficiency_in_unit_interval(tiny_arch, tiny_layer, case):
    (M, K, N), (R, C, df), kw = case
    row = one(tiny_arch(R, C, df, **kw), tiny_layer(M, K, N))
    assert 0 < row["pe_utilisation"] <= 1
    assert row["pe_utilisation"] * R * C * row["total_cycles"] == \
        pytest.approx(M * K * N)
    assert 0 < row["mapping_efficiency"] <= 1
    # Mean over folds of used / (R*C): every PE-slot of the GEMM's spatial dims is used once.
    # (the stream is cut into pieces: every piece is one more fold of the same spatial mapping)
    spatial = {"os": M * N, "ws": K * N, "is": K * M}[df]
    pieces = stream_pieces(row, df)
    n_folds = folds(df, M, K, N, R, C) * pieces
    assert row["folds"] == n_folds
    assert row["mapping_efficiency"] * n_folds * R * C == pytest.approx(spatial * pieces)


@FAST
@given(cases(), st.sampled_from([8, 16]))
def test_dram_traffic_at_least_compulsory(tiny_arch, tiny_layer, case, bits):
    (M, K, N), (R, C, df), kw = case
    row = one(tiny_arch(R, C, df, bits=bits, **kw), tiny_layer(M, K, N))
    # Every unique ifmap and filter element is read at least once and every output written.
    assert row["dram_ifmap_read_bytes"] >= M * K * bits // 8
    assert row["dram_filter_read_bytes"] >= K * N * bits // 8
    assert row["dram_read_bytes"] >= (M * K + K * N) * bits // 8
    assert row["dram_write_bytes"] >= M * N * bits // 8
    assert row["dram_read_bytes"] == (row["dram_ifmap_read_bytes"]
                                      + row["dram_filter_read_bytes"]
                                      + row["dram_psum_read_bytes"])


@FAST
@given(cases(), st.sampled_from([2.0, 4.0, math.inf]))
def test_more_dram_bandwidth_never_slower(tiny_arch, tiny_layer, case, factor):
    (M, K, N), (R, C, df), kw = case
    kw = fixed(kw)  # the search may pick another mapping for another bandwidth
    layer = tiny_layer(M, K, N)
    slow = one(tiny_arch(R, C, df, **kw), layer)
    kw["dram_bandwidth"] = kw["dram_bandwidth"] * factor
    fast = one(tiny_arch(R, C, df, **kw), layer)
    assert fast["total_cycles"] <= slow["total_cycles"]
    # Bandwidth changes timing only, never what is moved.
    assert fast["dram_read_bytes"] == slow["dram_read_bytes"]
    assert fast["compute_cycles"] == slow["compute_cycles"]


@FAST
@given(cases())
def test_double_buffering_never_slower(tiny_arch, tiny_layer, case):
    """Double buffering with the same per-tile capacity (twice the SRAM) never loses.

    Same capacity per tile means the same tiles, and an operand resident for the whole layer
    may use both halves, so traffic can only drop; the second slot lets load i+1 overlap
    compute i.
    """
    (M, K, N), (R, C, df), kw = case
    kw = fixed(kw)
    layer = tiny_layer(M, K, N)
    single = one(tiny_arch(R, C, df, double_buffered=False, **kw), layer)
    kw["size_kb"] *= 2
    double = one(tiny_arch(R, C, df, double_buffered=True, **kw), layer)
    assert double["dram_read_bytes"] <= single["dram_read_bytes"]
    assert double["total_cycles"] <= single["total_cycles"]


@FAST
@given(cases())
def test_unlimited_memory_has_no_stalls(tiny_arch, tiny_layer, case):
    # Cross-check: with no memory limits the SimPy run equals the closed form exactly: with the
    # fixed order SCALE-Sim's, folds x (fill + whole stream + drain) - 1; with the search one
    # fill and drain per stream piece of the reported tile size.
    (M, K, N), (R, C, df), kw = case
    row = one(tiny_arch(R, C, df, size_kb=kw["size_kb"], mapping=kw["mapping"]),
              tiny_layer(M, K, N))
    fill = {"os": R + C - 2, "ws": 2 * R + C - 2, "is": 2 * R + C - 2}[df]
    stream = {"os": K, "ws": M, "is": N}[df]
    pieces = stream_pieces(row, df)
    if not kw["mapping"]["search"]:
        assert pieces == 1
    assert row["compute_cycles"] == folds(df, M, K, N, R, C) * (pieces * fill + stream) - 1
    assert row["total_cycles"] == row["compute_cycles"]


def test_single_pe_os_inherits_scalesim_overcount(tiny_arch, tiny_layer):
    # Real SCALE-Sim 3.0.0 on a 1x1 os array, GEMM M=2, N=2, K=3 (run with
    # tools/scalesim_driver.py): 11 compute cycles, "Overall Util" 109.09 %.
    # 4 folds of K + 1 + 1 - 2 = 3 cycles, minus 1 = 11 < 12 MACs. Matching SCALE-Sim exactly
    # is the design goal, so the bound compute >= ceil(macs / PEs) is off by one here only.
    row = one(tiny_arch(1, 1, "os"), tiny_layer(2, 3, 2))
    assert row["compute_cycles"] == 11
    assert row["pe_utilisation"] == pytest.approx(12 / 11)


def test_one_mac_on_single_pe_takes_time(tiny_arch, tiny_layer):
    try:
        row = one(tiny_arch(1, 1, "os"), tiny_layer(1, 1, 1))
    except SimulatorError:
        return  # a clear user-facing error would also be acceptable
    assert row["total_cycles"] >= 1
    assert 0 < row["pe_utilisation"] <= 1


def test_sub_byte_operands_move_at_least_their_packed_bytes(tiny_arch, tiny_layer):
    # 5 activations, 1 weight and 5 outputs of 4 bits: ceil(2.5) = 3, ceil(0.5) = 1, 3 bytes.
    row = one(tiny_arch(4, 4, "os", bits=4), tiny_layer(5, 1, 1))
    assert row["dram_ifmap_read_bytes"] >= 3
    assert row["dram_filter_read_bytes"] >= 1
    assert row["dram_write_bytes"] >= 3


@FAST
@given(cases(), st.sampled_from([2, 4]))
def test_more_channels_at_equal_bandwidth_never_slower(tiny_arch, tiny_layer, case, more):
    (M, K, N), (R, C, df), kw = case
    layer = tiny_layer(M, K, N)
    one_ch = one(tiny_arch(R, C, df, **{**kw, "channels": 1}), layer)
    many = one(tiny_arch(R, C, df, **{**kw, "channels": more}), layer)
    assert many["total_cycles"] <= one_ch["total_cycles"]
    assert many["dram_read_bytes"] == one_ch["dram_read_bytes"]


@FAST
@given(cases(), st.sampled_from([2.0, 4.0, 64.0]))
def test_bigger_buffers_never_slower_at_equal_traffic(tiny_arch, tiny_layer, case, factor):
    """At a fixed mapping (the search may pick another one for other buffers), equal DRAM
    bytes do not take longer with bigger buffers: data streams inside tiles, whatever their
    size (issue 10 measured +69 %). Within 1 %: streaming inside a tile is fluid (exact for
    uniform folds); when a layer's first folds carry most of its data, tiles of different
    sizes bound the compute running ahead of the data a little differently (2 of 1,208
    equal-traffic pairs of a 2,500-case sweep, by 0.8 % and 0.9 %)."""
    (M, K, N), (R, C, df), kw = case
    kw = fixed(kw)
    layer = tiny_layer(M, K, N)
    small = one(tiny_arch(R, C, df, **kw), layer)
    big = one(tiny_arch(R, C, df, **{**kw, "size_kb": kw["size_kb"] * factor}), layer)
    moved = ("dram_read_bytes", "dram_write_bytes")
    assume(all(small[c] == big[c] for c in moved))
    assert big["total_cycles"] <= 1.01 * small["total_cycles"]


#: (pe, arch weight bits, arch act bits, layer weight bits, act bits, weight scheme)
KINDS = [("mac", 8, 8, 8, 8, "int"), ("shift", 4, 8, 4, 8, "pow2"),
         ("xnor", 1, 1, 1, 1, "binary"), ("ternary", 2, 8, 2, 8, "ternary"),
         ("bitserial", 8, 8, 8, 4, "int"), ("bitfusion", 4, 4, 4, 4, "int"),
         ("bfp", 8, 8, 8, 8, "bfp")]
SPARSITY = [{}, {"weights": "gate", "activations": "gate"},
            {"weights": "skip", "activations": "skip"},
            {"weights": "skip", "weight_format": "csc", "act_format": "bitmask"},
            {"activations": "skip", "act_format": "rle"}]


@st.composite
def kind_cases(draw):
    (M, K, N), (R, C, df), kw = draw(cases())
    pe, awb, aab, wb, ab, scheme = draw(st.sampled_from(KINDS))
    sp = draw(st.sampled_from(SPARSITY))
    pe_array = {"pe": pe, "weight_bits": awb, "act_bits": aab, "sparsity": sp}
    layer_kw = dict(weight=Operand(bits=wb, scheme=scheme, density=draw(st.sampled_from(
        [1.0, 0.5, 0.1]))), activation=Operand(bits=ab, density=draw(st.sampled_from(
            [1.0, 0.6]))))
    return (M, K, N), (R, C, df), {**kw, "pe_array": pe_array}, layer_kw


@settings(max_examples=80, deadline=None)
@given(kind_cases())
def test_tiles_never_exceed_their_buffer_half(arch_spec, tiny_layer, case):
    (M, K, N), (R, C, df), kw, layer_kw = case
    acc = build(parse_arch(arch_spec(R, C, df, **kw)))
    t = map_layer(tiny_layer(M, K, N, **layer_kw), acc).tiles
    half = {b: acc.buffers[b].tile_bytes for b in ("ifmap", "filter", "ofmap")}
    assert t.ifmap_load_bytes.max() <= half["ifmap"]
    assert t.filter_load_bytes.max() <= half["filter"]
    assert (t.psum_load_bytes + t.store_bytes).max() <= half["ofmap"]
    assert (t.head_load_bytes <= t.load_bytes).all()
    assert (t.tail_cycles <= t.busy_cycles).all()


@settings(max_examples=80, deadline=None)
@given(kind_cases())
def test_array_reads_at_least_what_was_written(arch_spec, tiny_layer, case):
    """Every byte the DMA writes into an input buffer is read by the array at least once."""
    (M, K, N), (R, C, df), kw, layer_kw = case
    rep = simulate(parse_arch(arch_spec(R, C, df, **kw)),
                   Workload("w", (tiny_layer(M, K, N, **layer_kw),)))
    a = rep.actions.set_index(["component", "action"])["count"]
    for buf in ("ifmap", "filter"):
        assert a[(buf, "read")] >= a[(buf, "write")], buf
