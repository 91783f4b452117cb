"""Closed forms against small cases worked by hand.

SCALE-Sim 3.0.0's compute model (reference/scalesim.md): on an R x C array

    os: folds ceil(M/R) * ceil(N/C), cycles per fold K + R + C - 2
    ws: folds ceil(K/R) * ceil(N/C), cycles per fold 2R + C + M - 2
    is: folds ceil(K/R) * ceil(M/C), cycles per fold 2R + C + N - 2

and a layer takes folds * per_fold - 1 cycles (its counter starts at zero).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_workload, parse_network, simulate
from simulator.workload.geometry import touched
from simulator.workload.layer import Workload


def run(arch, *layers):
    return simulate(arch, Workload("w", tuple(layers))).layers.set_index("layer")


# 4x4 array, GEMM M=5, K=3, N=6 (90 MACs), worked by hand:
#
# os: rows take M=5 -> 2 row folds (4, 1); cols take N=6 -> 2 col folds (4, 2); 4 folds.
#     per fold K+R+C-2 = 3+4+4-2 = 9; compute = 4*9 - 1 = 35.
#     used PEs per fold 4*4, 4*2, 1*4, 1*2 = 16+8+4+2 = 30 (= M*N); efficiency 30/(4*16).
#     SRAM: ifmap M*K*ceil(N/C) = 5*3*2 = 30, filter K*N*ceil(M/R) = 3*6*2 = 36,
#     ofmap writes M*N = 30 (no drain padding: SCALE-Sim's + folds*(R+C) is a bug).
# ws: rows take K=3 -> 1 row fold (3); cols take N=6 -> 2 col folds (4, 2); 2 folds.
#     per fold 2R+C+M-2 = 8+4+5-2 = 15; compute = 2*15 - 1 = 29.
#     used PEs 3*4 + 3*2 = 18 (= K*N); efficiency 18/(2*16).
#     SRAM: ifmap M*K*ceil(N/C) = 30, filter K*N = 18, ofmap M*N*ceil(K/R) = 30.
# is: rows take K=3 -> 1 row fold; cols take M=5 -> 2 col folds (4, 1); 2 folds.
#     per fold 2R+C+N-2 = 8+4+6-2 = 16; compute = 2*16 - 1 = 31.
#     used PEs 3*4 + 3*1 = 15 (= K*M); efficiency 15/(2*16).
#     SRAM: ifmap M*K = 15, filter K*N*ceil(M/C) = 18*2 = 36, ofmap M*N*ceil(K/R) = 30.
HAND_4X4_M5_K3_N6 = {
    "os": dict(folds=4, compute_cycles=35, mapping_efficiency=30 / 64,
               sram_ifmap_reads=30, sram_filter_reads=36, sram_ofmap_writes=30),
    "ws": dict(folds=2, compute_cycles=29, mapping_efficiency=18 / 32,
               sram_ifmap_reads=30, sram_filter_reads=18, sram_ofmap_writes=30),
    "is": dict(folds=2, compute_cycles=31, mapping_efficiency=15 / 32,
               sram_ifmap_reads=15, sram_filter_reads=36, sram_ofmap_writes=30),
}


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_4x4_gemm_m5_k3_n6_by_hand(dataflow, tiny_arch, tiny_layer):
    row = run(tiny_arch(4, 4, dataflow), tiny_layer(5, 3, 6)).loc["g"]
    want = HAND_4X4_M5_K3_N6[dataflow]
    for key, value in want.items():
        assert row[key] == pytest.approx(value, rel=1e-12), key
    assert row["macs"] == 5 * 3 * 6
    # Unlimited bandwidth, no latency, everything fits: nothing stalls.
    assert row["total_cycles"] == want["compute_cycles"]
    assert row["stall_cycles"] == 0
    assert row["pe_utilisation"] == pytest.approx(90 / (16 * want["compute_cycles"]))


@pytest.mark.parametrize(("dataflow", "M", "K", "N", "cycles"), [
    # One fold each on a 4x4 array with K=3 (fill, stream, drain), minus the zero-based count:
    ("os", 4, 3, 4, 3 + 4 + 4 - 2 - 1),       # 8
    ("ws", 7, 3, 4, 2 * 4 + 4 + 7 - 2 - 1),   # 16: weights shift in for R cycles, 7 rows stream
    ("is", 4, 3, 9, 2 * 4 + 4 + 9 - 2 - 1),   # 18
    # A 1x1 array is a single MAC: os on M=2, K=3, N=2 is 4 folds of 3 + 1 + 1 - 2 = 3 cycles.
    ("os", 2, 3, 2, 4 * 3 - 1),
])
def test_single_pe_and_single_fold_cases(dataflow, M, K, N, cycles, tiny_arch, tiny_layer):
    rows = 1 if (M, K, N) == (2, 3, 2) else 4
    row = run(tiny_arch(rows, rows, dataflow), tiny_layer(M, K, N)).loc["g"]
    assert row["compute_cycles"] == cycles


def test_count_multiplies_folds(tiny_arch, tiny_layer):
    # Four independent 5x3x6 GEMMs on 4x4 os: 4 * 4 = 16 folds of 9 cycles -> 16*9 - 1 = 143.
    row = run(tiny_arch(4, 4, "os"), tiny_layer(5, 3, 6, count=4)).loc["g"]
    assert row["folds"] == 16
    assert row["compute_cycles"] == 143
    assert row["macs"] == 4 * 90
    assert row["mapping_efficiency"] == pytest.approx(30 / 64)


def test_depthwise_conv_runs_one_gemm_per_channel(tiny_arch):
    # Depthwise 3x3, pad 1, 8 channels on 6x6: M = 6*6 = 36, K = 1*3*3 = 9, N = 1, groups 8.
    # 4x4 os: per group ceil(36/4) * ceil(1/4) = 9 folds; 8 groups -> 72 folds of
    # 9 + 4 + 4 - 2 = 15 cycles -> 72*15 - 1 = 1079. Used PEs per fold 4*1 -> efficiency 4/16.
    net = parse_network({"name": "dw", "layers": [
        {"name": "dw", "op": "conv2d", "in_channels": 8, "out_channels": 8, "in_h": 6,
         "in_w": 6, "kernel": 3, "padding": 1, "groups": 8}]})
    layer = net.layers[0]
    assert (layer.M, layer.K, layer.N, layer.count) == (36, 9, 1, 8)
    assert layer.macs == 8 * 36 * 9
    row = simulate(tiny_arch(4, 4, "os"), net).layers.iloc[0]
    assert row["folds"] == 72
    assert row["compute_cycles"] == 1079
    assert row["mapping_efficiency"] == pytest.approx(0.25)
    # ws: rows take K=9 -> 3 row folds, cols N=1 -> 1; 3 folds/group, 24 folds of
    # 2*4 + 4 + 36 - 2 = 46 cycles -> 24*46 - 1 = 1103.
    row = simulate(tiny_arch(4, 4, "ws"), net).layers.iloc[0]
    assert row["compute_cycles"] == 1103


def test_conv2d_lowering_stride_padding_dilation_groups():
    # PyTorch: out = floor((H + 2p - d(k-1) - 1) / s) + 1.
    # H=11, k=3, s=2, p=1, d=2: floor((11 + 2 - 4 - 1)/2) + 1 = floor(8/2) + 1 = 5.
    # W=9:                      floor((9 + 2 - 4 - 1)/2) + 1 = floor(6/2) + 1 = 4.
    # groups 2 of 6 -> 4 channels: M = 5*4 = 20, K = (6/2)*3*3 = 27, N = 4/2 = 2, count 2.
    spec = {"name": "c", "op": "conv2d", "in_channels": 6, "out_channels": 4, "in_h": 11,
            "in_w": 9, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "groups": 2}
    layer = parse_network({"name": "n", "layers": [spec]}).layers[0]
    assert (layer.M, layer.K, layer.N, layer.count) == (20, 27, 2, 2)
    assert layer.filter_elements == 4 * 3 * 3 * 3  # out_ch * in_ch/g * k*k = 108
    assert layer.ofmap_elements == 4 * 5 * 4
    assert layer.macs == 2 * 20 * 27 * 2
    # batch 3 multiplies M only.
    batched = parse_network({"name": "n", "batch_size": 3, "layers": [spec]}).layers[0]
    assert (batched.M, batched.K, batched.N, batched.count) == (60, 27, 2, 2)


def test_conv2d_lowering_rectangular_pairs():
    # kernel (3, 1), stride (2, 1), padding (1, 0), dilation (2, 1) on 11 x 9:
    # H: floor((11 + 2 - 2*2 - 1)/2) + 1 = 5;  W: floor((9 + 0 - 0 - 1)/1) + 1 = 9.
    layer = parse_network({"name": "n", "layers": [
        {"name": "c", "op": "conv2d", "in_channels": 4, "out_channels": 5, "in_h": 11,
         "in_w": 9, "kernel": [3, 1], "stride": [2, 1], "padding": [1, 0],
         "dilation": [2, 1]}]}).layers[0]
    assert (layer.M, layer.K, layer.N, layer.count) == (45, 4 * 3 * 1, 5, 1)


def test_unique_ifmap_of_1x1_stride2_conv(tiny_arch):
    # 1x1, stride 2 on 7x7: out floor((7-1)/2)+1 = 4 per axis; it reads rows/cols 0, 2, 4, 6
    # only, so 4*4 positions * 4 channels = 64 unique elements of the 196 in the tensor.
    net = parse_network({"name": "n", "layers": [
        {"name": "c", "op": "conv2d", "in_channels": 4, "out_channels": 3, "in_h": 7,
         "in_w": 7, "kernel": 1, "stride": 2}]})
    layer = net.layers[0]
    assert (layer.M, layer.K, layer.N) == (16, 4, 3)
    assert layer.ifmap_elements == 64
    # Big buffers: DRAM moves each unique byte once (8-bit activations and weights).
    row = simulate(tiny_arch(4, 4, "os"), net).layers.iloc[0]
    assert row["dram_ifmap_read_bytes"] == 64
    assert row["dram_filter_read_bytes"] == 3 * 4
    assert row["dram_write_bytes"] == 16 * 3


@pytest.mark.parametrize(("size", "out", "kernel", "stride", "pad", "dilation", "want"), [
    (7, 4, 1, 2, 0, 1, 4),    # rows 0, 2, 4, 6
    (8, 4, 1, 2, 0, 1, 4),    # rows 0, 2, 4, 6 (row 7 never read)
    (5, 3, 3, 2, 1, 1, 5),    # windows -1..1, 1..3, 3..5 -> valid 0..4
    (10, 2, 3, 3, 0, 2, 6),   # windows {0,2,4}, {3,5,7}
    (6, 6, 3, 1, 1, 1, 6),    # 'same' conv reads everything
])
def test_touched_positions(size, out, kernel, stride, pad, dilation, want):
    assert touched(size, out, kernel, stride, pad, dilation) == want


def _touched_long_way(size, out, kernel, stride, pad, dilation):
    """Every position every window reads, enumerated (the closed form's long way)."""
    pos = (np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation) - pad
    pos = np.unique(pos)
    return int(((pos >= 0) & (pos < size)).sum())


@settings(max_examples=600, deadline=None)
@given(st.integers(0, 60), st.integers(0, 40), st.integers(0, 12), st.integers(1, 9),
       st.integers(0, 20), st.integers(1, 9))
def test_touched_closed_form_equals_every_position(size, out, kernel, stride, pad, dilation):
    """Residue classes of runs, clipped (geometry.touched) = enumerating the windows."""
    assert touched(size, out, kernel, stride, pad, dilation) == \
        _touched_long_way(size, out, kernel, stride, pad, dilation)


def test_touched_of_a_huge_axis_is_instant():
    """Regression (a fuzzed network, in_w 4,303,019,033, 3x3, pad 1): counting its touched
    columns allocated 32 GiB (every window's positions); the closed form needs none."""
    assert touched(4_303_019_033, 4_303_019_033, 3, 1, 1, 1) == 4_303_019_033
    assert touched(10**20, 10**20 // 2, 1, 2, 0, 1) == 10**20 // 2
    # by hand: a 1-tap stride-3 window reads 0, 3, ..., 999,999,999,999 (333,333,333,334
    # positions); a 2-tap one reads 3o and 3o + 1 for o < (10^12 - 2) // 3 + 1
    assert touched(10**12, (10**12 - 1) // 3 + 1, 1, 3) == 333_333_333_334
    assert touched(10**12, (10**12 - 2) // 3 + 1, 2, 3) == 666_666_666_666


def test_linear_and_matmul_lowering():
    net = parse_network({"name": "n", "layers": [
        {"name": "fc", "op": "linear", "in_features": 768, "out_features": 3072, "tokens": 5},
        {"name": "qk", "op": "matmul", "M": 7, "K": 64, "N": 7, "batch": 12}]})
    fc, qk = net.layers
    assert (fc.M, fc.K, fc.N, fc.count, fc.filter_is_weight) == (5, 768, 3072, 1, True)
    assert fc.filter_elements == 768 * 3072
    # Attention matmul: 12 heads of [7x64] @ [64x7]; right operand is an activation.
    assert (qk.M, qk.K, qk.N, qk.count, qk.filter_is_weight) == (7, 64, 7, 12, False)
    assert qk.macs == 12 * 7 * 64 * 7


def test_vector_layers_cycles_are_ops_over_lanes(tiny_arch):
    net = parse_network({"name": "n", "layers": [
        # maxpool 3x3/2 pad 1 on 2x9x9: out floor((9 + 2 - 3)/2) + 1 = 5 -> 2*5*5 = 50 outputs,
        # 9 compares each = 450 ops; on 4 lanes (no vector unit: as wide as 4 columns)
        # ceil(450/4) = 113 cycles.
        {"name": "pool", "op": "maxpool", "channels": 2, "in_h": 9, "in_w": 9, "kernel": 3,
         "stride": 2, "padding": 1},
        # add of two 3x5 tensors: 15 adds -> ceil(15/4) = 4 cycles; reads 30, writes 15.
        {"name": "add", "op": "add", "shape": [3, 5]},
    ]})
    layers = simulate(tiny_arch(4, 4, "os"), net).layers.set_index("layer")
    assert layers.loc["pool", "compute_cycles"] == 113
    assert layers.loc["add", "compute_cycles"] == 4
    assert layers.loc["add", "dram_read_bytes"] == 30
    assert layers.loc["add", "dram_write_bytes"] == 15
    # With an explicit 8-lane unit: ceil(450/8) = 57.
    wide = simulate(tiny_arch(4, 4, "os", vector_unit={"impl": "simd", "lanes": 8}), net)
    assert wide.layers.set_index("layer").loc["pool", "compute_cycles"] == 57


def test_scalesim_topology_ofmap_rounding(tmp_path):
    # 14x14 input, 3x3 filter, stride 2: SCALE-Sim's ceil((14 - 3 + 2)/2) = ceil(6.5) = 7,
    # the correct floor((14 - 3)/2) + 1 = 6.
    topo = tmp_path / "t.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\nc, 14, 14, 3, 3, 10, 12, 2,\n")
    scalesim = load_workload(topo).layers[0]
    floor = load_workload(topo, ofmap_rounding="floor").layers[0]
    assert (scalesim.M, scalesim.K, scalesim.N) == (49, 90, 12)
    assert (floor.M, floor.K, floor.N) == (36, 90, 12)
