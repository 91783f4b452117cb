"""The FINN-style FPGA target: FINN's folding and resource formulas on worked layers, the
device budget, LUTNet layers, and the unit inside ``simulate``."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_arch, load_workload, parse_arch, simulate
from simulator.arch.accelerator import build
from simulator.errors import ConfigError, MappingError
from simulator.hardware.fpga import FpgaFitError, bram18_blocks, fpga_report
from simulator.workload.layer import Layer, Operand, Workload


def finn_arch(device: str = "xc7z020", **pe) -> dict:
    return {"name": "finn", "clock_mhz": 100,
            "pe_array": {"impl": "fpga_finn", "device": device, "weight_bits": 1,
                         "act_bits": 1, "acc_bits": 16, **pe},
            "buffers": {b: {"impl": "sram", "size_kb": 4, "word_bits": 8,
                            "bandwidth_words": 64} for b in ("ifmap", "filter", "ofmap")},
            "dram": {"impl": "dram", "bandwidth_gb_per_s": 1.0, "latency_ns": 0,
                     "energy_pj_per_bit": 8},
            "vector_unit": {"impl": "simd", "lanes": 8}}


def unit(**pe):
    return build(parse_arch(finn_arch(**pe))).pe_array


def gemm(name: str, M: int, K: int, N: int, **weight) -> Layer:
    return Layer(name, "linear", "gemm", M=M, K=K, N=N, ifmap_elements=M * K,
                 filter_elements=K * N, ofmap_elements=M * N, weight=Operand(**weight))


def test_folding_formula_on_a_worked_conv_layer():
    """conv 16 -> 32, 3x3, pad 1 on 4x4 (digits-lenet's conv2): MW = 16 * 9 = 144, MH = 32,
    16 output pixels. PE = 8, SIMD = 16: each PE owns 32 / 8 = 4 rows (neuron folds), each
    row takes 144 / 16 = 9 cycles (synapse folds): 4 * 9 = 36 cycles per pixel, 576 per frame.
    LUTs (FINN-R, W = A = 1, acc 16, 1-bit thresholds): mult = 16 (2 ceil(2/6) - 1) 2 = 32,
    adder tree = 2 (2 * 16 - 1) = 62, acc = 16, thr = 1 * 16 * ceil(4 / 64) = 16, comp = 16:
    142 per PE; 300 + 1.1 * 8 * 142 = 1549.6 -> 1550 logic. WMEM = 144 * 32 / (8 * 16) = 36
    words <= 128: weights in LUTRAM, c2 = 8 * 16 * 1 * ceil(36 / 64) = 128 LUTs; 1678 total.
    FFs (ours): 8 (16 + 16 * 2) = 384."""
    u = unit(folding={"c2": {"pe": 8, "simd": 16}})
    layer = Layer("c2", "conv2d", "gemm", M=16, K=144, N=32, ifmap_elements=256,
                  filter_elements=144 * 32, ofmap_elements=512)
    pl = u.plan(layer)
    assert (pl.mw, pl.mh, pl.vectors, pl.cycles) == (144, 32, 16, 576)
    assert (pl.weights_in, pl.lutram, pl.luts, pl.ffs, pl.bram18, pl.dsps) == (
        "lutram", 128, 1550 + 128, 384, 0, 0)


def test_bram_packing_of_a_deep_weight_memory():
    """784 x 256 binary weights, PE = SIMD = 16: WMEM = 784 * 256 / 256 = 784 words of
    16 * 16 = 256 bits; > 36 bits wide and > 512 deep: RAMB18s of 18 x 1K, ceil(784 / 1024)
    * ceil(256 / 18) = 1 * 15 = 15."""
    pl = unit(folding={"fc1": {"pe": 16, "simd": 16}}).plan(gemm("fc1", 1, 784, 256))
    assert (pl.weights_in, pl.bram18, pl.lutram, pl.cycles) == ("bram", 15, 0, 16 * 49)
    assert bram18_blocks(1, 16384) == 1 and bram18_blocks(1, 16385) == 2
    assert bram18_blocks(36, 512) == 1 and bram18_blocks(37, 512) == 2


@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 20), mw_f=st.integers(1, 12), mh_f=st.integers(1, 12),
       simd=st.sampled_from([1, 2, 4, 8]), pe=st.sampled_from([1, 2, 4]))
def test_cycles_times_lanes_is_exactly_the_macs(M, mw_f, mh_f, simd, pe):
    """With FINN's divisibility every lane does one MAC every cycle: cycles x PE x SIMD =
    MACs, and the fast simulator's compute cycles are FINN's."""
    K, N = mw_f * simd, mh_f * pe
    arch = parse_arch(finn_arch(folding={"g": {"pe": pe, "simd": simd}}))
    layer = gemm("g", M, K, N)
    pl = build(arch).pe_array.plan(layer)
    assert pl.cycles * pe * simd == M * K * N
    report = simulate(arch, Workload("w", (layer,)))
    assert int(report.layers["compute_cycles"].iloc[0]) == pl.cycles
    assert report.layers["pe_utilisation"].iloc[0] == pytest.approx(1.0)


def test_folding_must_divide_and_says_what_would():
    with pytest.raises(MappingError, match=r"'fc'.*pe = 3 must divide MH = 64.*\[1, 2, 4, 8"):
        unit(folding={"fc": {"pe": 3, "simd": 4}}).plan(gemm("fc", 1, 128, 64))


def test_target_cycles_grows_simd_first():
    u = unit(target_cycles=16)
    pl = u.plan(gemm("fc", 1, 128, 64))  # 8192 MACs in 16 cycles: PE x SIMD >= 512
    assert (pl.pe, pl.simd, pl.cycles) == (4, 128, 16)


def test_a_network_over_budget_names_the_resource(repo):
    arch = parse_arch(finn_arch(folding={"big": {"pe": 1024, "simd": 1024}}))
    wl = Workload("w", (gemm("big", 1, 1024, 1024),))
    with pytest.raises(FpgaFitError, match=r"does not fit xc7z020.*luts [\d,]+ > 53,200"):
        simulate(arch, wl)
    with pytest.raises(ConfigError, match="unknown FPGA part 'xc9z999'"):
        build(parse_arch(finn_arch(device="xc9z999")))


def test_whole_network_must_fit_even_when_each_layer_does():
    """All units are resident at once: three layers of ~60 % of the LUTs each do not fit."""
    arch = parse_arch(finn_arch(folding={f"l{i}": {"pe": 32, "simd": 128} for i in range(3)}))
    layers = tuple(gemm(f"l{i}", 1, 128, 128) for i in range(3))
    u = build(arch).pe_array
    share = u.plan(layers[0]).luts / u.device.luts
    assert 0.4 < share < 1.0
    with pytest.raises(FpgaFitError, match="the network does not fit"):
        simulate(arch, Workload("w", layers))
    simulate(arch, Workload("w", layers[:1]))  # one alone fits


def test_sfc_max_on_zc706_against_finn(repo):
    """FINN SFC-max (ZC706, 200 MHz): 12.3 M frames/s measured, 0.31 us latency (Umuroglu et
    al. FPGA 2017, abstract). Folded to 16 cycles a frame, the model's pipeline interval gives
    200 MHz / 16 = 12.5 M frames/s (1.6 % above the board, which also moves the images) and a
    latency of (16 + 16 + 16 + 10) / 200 MHz = 0.29 us (FIFOs not modelled)."""
    arch = load_arch(repo / "arch_configs" / "fpga" / "finn_sfc_max_zc706.yaml")
    wl = load_workload(repo / "workloads" / "networks" / "finn_sfc.yaml")
    df, totals = fpga_report(build(arch).pe_array, wl.layers, arch.clock_mhz)
    assert totals["fps"] == pytest.approx(12.5e6)
    assert totals["fps"] / 12.3e6 - 1 == pytest.approx(0.016, abs=0.001)
    assert totals["latency_us"] == pytest.approx(0.29)
    assert list(df["cycles"]) == [16, 16, 16, 10]
    assert 0 < totals["luts_utilisation"] <= 1


def test_lutnet_layer_costs_one_lut_per_kept_k_lut():
    """A LUTNet layer, 128 -> 64, 4-input LUTs (bits = 16 entries), half its connections kept:
    unrolled (PE = 64, SIMD = 128), 64 kept per neuron. Per neuron: 64 LUTs + popcount tree
    2 (2 * 64 - 1) = 254 + acc 16 + thr 16 * ceil(1 / 64) = 16 + comp 16 = 366;
    300 + 1.1 * 64 * 366 = 26,066.4 -> 26,066, no weight memory. Its XNOR-popcount twin
    (binary, all 128 kept) by FINN-R: mult 128 * 1 * 2 = 256, tree 2 * 255 = 510, + 48:
    814 per neuron, 300 + 1.1 * 64 * 814 = 57,606 LUTs plus 64 * 128 LUTRAM bits' LUTs."""
    u = unit(device="xczu3eg", folding={"fc": {"pe": 64, "simd": 128}})
    lut = u.plan(gemm("fc", 1, 128, 64, bits=16, scheme="lutnet", density=0.5))
    assert (lut.pe, lut.simd, lut.cycles) == (64, 128, 1)
    assert (lut.luts, lut.lutram, lut.bram18, lut.weights_in) == (26066, 0, 0, "lut masks")
    xnor = u.plan(gemm("fc", 1, 128, 64, bits=1, scheme="binary"))
    assert xnor.luts == 57606 + 64 * 128 * math.ceil(1 / 64)
    with pytest.raises(MappingError, match="do not fit a 6-input"):
        u.plan(gemm("fc", 1, 128, 64, bits=128, scheme="lutnet"))


def test_yosys_lut_model_uses_the_synthesised_pe():
    """lut_model yosys: PE x the LUTs Yosys gave the XNOR-popcount PE of word SIMD."""
    from simulator.hardware.synthesis import load_synthesis

    u = unit(folding={"fc": {"pe": 4, "simd": 16}}, lut_model="yosys")
    pl = u.plan(gemm("fc", 1, 128, 64))
    entry = load_synthesis().find("xnor", 1, 1, 32, 16)
    assert entry is not None
    assert pl.luts - pl.lutram == 4 * entry.luts("xc7_nodsp")
    with pytest.raises(MappingError, match="synthesised xnor word 2"):
        unit(folding={"fc": {"pe": 4, "simd": 2}}, lut_model="yosys").plan(
            gemm("fc", 1, 128, 64))


def test_cli_prints_the_plan_and_rejects_what_does_not_fit(repo, tmp_path):
    from click.testing import CliRunner

    from simulator.cli import main

    arch = repo / "arch_configs" / "fpga" / "finn_sfc_max_zc706.yaml"
    sfc = repo / "workloads" / "networks" / "finn_sfc.yaml"
    res = CliRunner().invoke(main, ["fpga", str(arch), str(sfc)])
    assert res.exit_code == 0, res.output
    assert "12,500,000" in res.output and "fc1" in res.output
    small = tmp_path / "z7020.yaml"
    small.write_text(arch.read_text().replace("xc7z045", "xc7z020"))
    res = CliRunner().invoke(main, ["fpga", str(small), str(sfc)])
    assert res.exit_code == 2
    assert "does not fit xc7z020" in res.output and "luts" in res.output
    res = CliRunner().invoke(main, ["fpga", str(repo / "arch_configs" / "edge_8x8.yaml"),
                                    str(sfc)])
    assert res.exit_code == 2 and "not an FPGA target" in res.output
