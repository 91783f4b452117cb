"""SCNN-like engine: stride phases and discarded products by hand, per-group barriers, energy
for every computed product, halos, PE-array area, and the published speed-ups over DCNN."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

from simulator import Layer, Operand, Workload, load_arch, load_workload, parse_arch, simulate
from simulator.cost.curves import power_law
from simulator.cost.table_file import table_for
from simulator.files import read_yaml
from simulator.workload.spec import parse_network

INF = float("inf")


def arch(**pe: object) -> object:
    return parse_arch({
        "name": "s", "clock_mhz": 1000, "pe_array": {"impl": "scnn", **pe},
        "buffers": {b: {"impl": "sram", "size_kb": 1024, "bandwidth_words": INF}
                    for b in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": INF, "energy_pj_per_bit": 8.0},
        "vector_unit": {"impl": "simd", "lanes": 4}})


def conv(h: int, k: int, s: int, p: int) -> Workload:
    return parse_network({"name": "c", "layers": [
        {"name": "c", "op": "conv2d", "in_channels": 1, "out_channels": 1, "in_h": h,
         "in_w": h, "kernel": k, "stride": s, "padding": p}]})


def one(a: object, wl: Workload) -> tuple[object, dict]:
    r = simulate(a, wl)  # type: ignore[arg-type]
    return r.layers.iloc[0], dict(r.results[0].actions)


def test_stride_two_products_by_hand() -> None:
    # 5x5 dense input, 3x3 kernel, stride 2, padding 1 (3x3 output), one PE, F = I = 1.
    # Rows by phase (y + 1) mod 2: phase 0 {1, 3}, phase 1 {0, 2, 4}; taps r mod 2: phase 0
    # {0, 2}, phase 1 {1}. Row pairs of equal phase: 2*2 + 3*1 = 7, all landing on an output
    # row (oy = (y + 1 - r) / 2 in 0..2); columns the same: 7 * 7 = 49 products, one per
    # cycle, and exactly the 49 real (non-padding) MACs of the 9 x 9 im2col. Pairing every
    # activation with every weight (stride ignored) would be 25 * 9 = 225.
    r, c = one(arch(n_pes=1, multipliers_f=1, multipliers_i=1), conv(5, 3, 2, 1))
    assert r.compute_cycles == 49
    assert c[("pe_array", "mac")] == 49
    assert r.effectual_macs == 49


def test_every_computed_product_is_charged() -> None:
    # Same input at stride 1: one phase, 25 * 9 = 225 products computed (225 cycles); only
    # 13 * 13 = 169 land on the 5x5 output (per axis 5 outputs x 3 taps minus 2 that read
    # padding); the other 56 are computed and discarded, and cost energy like any other.
    r, c = one(arch(n_pes=1, multipliers_f=1, multipliers_i=1), conv(5, 3, 1, 1))
    assert r.compute_cycles == 225
    assert r.effectual_macs == 169
    assert c[("pe_array", "mac")] == 225
    assert c[("pe_array", "psum_rf_read")] == c[("pe_array", "psum_rf_write")] == 225


def test_pes_synchronise_per_output_channel_group() -> None:
    # 2 PEs, one position each (M = 2 rows), K = 2 channels, N = 2 filters, groups of 1 filter,
    # F = I = 1. PE 0 holds an activation only in channel 0, PE 1 only in channel 1; filter 0
    # has a weight only in channel 0, filter 1 only in channel 1. Group 0: PE 0 works 1 cycle,
    # PE 1 idles; group 1 the reverse. A barrier per group: 1 + 1 = 2 cycles (one barrier per
    # layer would give max(1, 1) = 1).
    am = np.array([[[True, False], [False, True]]])
    wm = np.array([[[True, False], [False, True]]])
    layer = Layer("g", "gemm", "gemm", M=2, K=2, N=2, ifmap_elements=4, filter_elements=4,
                  ofmap_elements=4, weight=Operand(mask=wm, density=0.5),
                  activation=Operand(mask=am, density=0.5))
    r, _ = one(arch(n_pes=2, multipliers_f=1, multipliers_i=1, output_channel_group=1),
               Workload("w", (layer,)))
    assert r.compute_cycles == 2


def test_halo_partial_sums_by_hand() -> None:
    # 4x4 input on 4 PEs (2x2 grid of 2x2 tiles), 3x3 kernel, stride 1, padding 1: 4x4 output,
    # each PE owns a 2x2 output tile. PE (0, 0)'s inputs rows 0-1 reach output rows 0..2
    # (rows -1 clipped), likewise columns: footprint 3x3 = 9, of which 4 owned: 5 halo
    # positions; by symmetry every PE: 20 positions x 1 filter.
    _, c = one(arch(n_pes=4), conv(4, 3, 1, 1))
    assert c[("pe_array", "halo_psum")] == 20


def test_pe_array_area_holds_every_multiplier() -> None:
    # 64 PEs x 16 multipliers of 16 x 16 bits: at least 1,024 Horowitz int16 multipliers
    # (fit through 282 um^2 at 8 bits and 3495 at 32) plus 6 KB of accumulator banks per PE.
    a = load_arch(REPO / "arch_configs" / "scnn_like.yaml")
    area = table_for(a).area_mm2["pe_array"]
    mult = power_law({8: 282, 32: 3495}, 16, 2) * 1e-6
    assert area >= 1024 * mult + 64 * 6 * 0.00367
    assert area > 10 * 0.086  # the old one-MAC-per-PE figure


def test_speedup_over_dense_baseline_on_the_papers_networks() -> None:
    """SCNN's speed-up over DCNN (tests/reference/scnn_isca2017.yaml) on the Deep Compression
    AlexNet and VGG-16 profiles, conv layers. Both sides count compute time of the conv layers
    only; DCNN = the same 1,024 multipliers dense at full utilisation (MACs / 1024 per layer,
    the most favourable dense baseline, so ours reads low). Reached: AlexNet 1.96 vs 2.37
    (-17 %), VGG-16 2.52 vs 3.52 (-28 %): within 30 %; both above 1.5, VGG above AlexNet as
    in the paper. GoogLeNet has no bundled profile."""
    ref = read_yaml(REPO / "tests" / "reference" / "scnn_isca2017.yaml")["speedup_over_dcnn"]
    a = load_arch(REPO / "arch_configs" / "scnn_like.yaml")
    got = {}
    for net, prof in (("alexnet", "alexnet_deep_compression"),
                      ("vggnet", "vgg16_deep_compression")):
        df = simulate(a, load_workload(REPO / "workloads" / "profiles" / f"{prof}.yaml")).layers
        c = df[df.op == "conv2d"]
        got[net] = float((c.macs / 1024).sum() / c.compute_cycles.sum())
        assert got[net] == pytest.approx(ref["per_network"][net], rel=0.30), net
    assert 1.5 < got["alexnet"] < got["vggnet"]


def test_mapping_efficiency_is_the_tiling_fill() -> None:
    # 5x5 input on 4 PEs: a 2x2 grid of 3x3 tiles holds 36 slots for 25 positions: 25 / 36
    r, _ = one(arch(n_pes=4), conv(5, 3, 1, 1))
    assert r.mapping_efficiency == pytest.approx(25 / 36)


def test_effectual_count_from_strided_slices_equals_the_im2col() -> None:
    """The shortcut (per-tap strided sums of the padded input, no im2col) against the long
    way: the im2col mask's column sums times the weights' row sums, on random convolutions."""
    import dataclasses

    from simulator.mapping.masks import act_mask, weight_mask

    rng = np.random.default_rng(7)
    for _ in range(30):
        c_in, c_out, k = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
        h, s, p = int(rng.integers(k, 9)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
        g = 2 if c_in % 2 == 0 and c_out % 2 == 0 else 1
        layer = parse_network({"name": "n", "layers": [
            {"name": "c", "op": "conv2d", "in_channels": c_in, "out_channels": c_out,
             "in_h": h, "in_w": h, "kernel": k, "stride": s, "padding": p,
             "groups": g}]}).layers[0]
        wm = rng.random((c_out, c_in // g, k, k)) < 0.6
        am = rng.random((c_in, h, h)) < 0.5
        layer = dataclasses.replace(layer, weight=Operand(mask=wm, density=0.6),
                                    activation=Operand(mask=am, density=0.5))
        long_way = int((act_mask(layer).sum(axis=1) * weight_mask(layer).sum(axis=2)).sum())
        r, _ = one(arch(n_pes=4), Workload("w", (layer,)))
        assert r.effectual_macs == long_way
