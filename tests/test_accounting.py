"""Energy accounting that matches the hardware: packed words, PE-cycles, number formats, the
layer's own bits, exact SRAM words, and no silent default (issue 11). Expected numbers are
worked out by hand in the comments (Horowitz ISSCC 2014 45 nm points: int8 multiply 0.2 pJ,
int32 add 0.1 pJ, fp16 multiply 1.1 pJ, fp16 add 0.4 pJ, fp32 add 0.9 pJ)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, arch_dict

from simulator import ConfigError, Layer, Operand, Workload, parse_arch, simulate
from simulator.cost.table_file import load_energy_table, table_for
from simulator.errors import EnergyError, MappingError
from simulator.workload.spec import parse_network

INF = math.inf


PE_KEYS = {"pe", "weight_bits", "act_bits", "acc_bits", "sparsity"}


def arch(rows: int = 8, cols: int = 8, dataflow: str = "os", **kw: object):
    """A tiny arch (conftest.arch_dict); PE-array keys go under ``pe_array``."""
    pe = {k: kw.pop(k) for k in list(kw) if k in PE_KEYS}
    over = dict(kw)
    over["pe_array"] = {**pe, **over.get("pe_array", {})}  # type: ignore[dict-item]
    return parse_arch(arch_dict(rows, cols, dataflow, **over))


def gemm(m: int, k: int, n: int, **weight: object) -> Workload:
    act = weight.pop("act", Operand())
    return Workload("w", (Layer("g", "linear", "gemm", M=m, K=k, N=n, ifmap_elements=m * k,
                                filter_elements=k * n, ofmap_elements=m * n,
                                weight=Operand(**weight), activation=act),))  # type: ignore[arg-type]


def actions(report) -> dict[tuple[str, str], int]:  # type: ignore[no-untyped-def]
    return dict(report.results[0].actions)


# -- item 4: accumulator and register actions per packed word -------------------------------


def test_xnor_accumulator_and_sram_counted_per_word() -> None:
    # os on 8x8, binary M=16, K=128, N=16, 64-bit XNOR words: K' = ceil(128/64) = 2.
    # Folds: ceil(16/8) * ceil(16/8) = 4. Accumulator (os, PE-local): one read + one write per
    # word: M * N * K' = 16 * 16 * 2 = 512 (not one per binary MAC: 32,768).
    # SRAM (8-bit words, 1-bit operands): the ifmap is read once per column fold,
    # M * K * 2 = 4,096 bits = 512 words; the filter once per row fold, K * N * 2 = 4,096 bits
    # = 512 words. Operand hops per element at 1 bit (= per 64-bit word at 64 bits):
    # 32,768 MACs - 4,096 elements entering from SRAM = 28,672 each.
    a = arch(pe="xnor", weight_bits=1, act_bits=1, acc_bits=32)
    r = simulate(a, gemm(16, 128, 16, bits=1, scheme="binary",
                         act=Operand(bits=1, scheme="binary")))
    c = actions(r)
    assert c[("pe_array", "xnor_popcount")] == 512
    assert c[("pe_array", "psum_rf_read")] == c[("pe_array", "psum_rf_write")] == 512
    assert c[("ifmap", "read")] == 512 and c[("filter", "read")] == 512
    assert c[("pe_array", "ifmap_hop")] == c[("pe_array", "filter_hop")] == 32768 - 4096


def test_bitfusion_accumulator_per_fused_word() -> None:
    # Bit Fusion at 4x4 bits fuses F = 64 / (4 * 4) = 4 products per cycle into one partial
    # sum: os accumulator updates = M * N * ceil(K / 4) = 8 * 8 * 16 = 1,024 (not 4,096).
    a = arch(pe="bitfusion", weight_bits=4, act_bits=4)
    c = actions(simulate(a, gemm(8, 64, 8, bits=4, act=Operand(bits=4))))
    assert c[("pe_array", "psum_rf_read")] == c[("pe_array", "psum_rf_write")] == 1024


def test_bitserial_idle_is_counted_in_pe_cycles() -> None:
    # ws on 8x8, K = 8, N = 8, M = 64, 8-bit activations one bit per cycle (1 lane):
    # compute = 2*8 + 8 + 64*8 - 2 - 1 = 533 cycles; busy PE-cycles = M*K*N*8 / 1 = 32,768;
    # idle = 64 * 533 - 32,768 = 1,344 PE-cycles (4 %; counting MACs gave 30,016, 88 %).
    a = arch(dataflow="ws", pe="bitserial", weight_bits=8, act_bits=8)
    r = simulate(a, gemm(64, 8, 8, bits=8, act=Operand(bits=8)))
    assert int(r.layers.iloc[0]["compute_cycles"]) == 533
    assert actions(r)[("pe_array", "mac_idle")] == 64 * 533 - 64 * 8 * 8 * 8


def test_gating_removes_register_reads_and_mac_but_not_hops() -> None:
    # ws 4x4, M = 4, K = 4, N = 4, half of the activations zero and gated: 32 of 64 MACs are
    # gated. Stationary weight register reads and MACs: only the 32 that fire; the input and
    # partial-sum hops: all 64 scheduled positions minus the 16 values entering from SRAM.
    am = np.zeros((1, 4, 4), dtype=bool)
    am[0, :, :2] = True
    a = arch(4, 4, "ws", pe_array={"sparsity": {"activations": "gate"}})
    c = actions(simulate(a, gemm(4, 4, 4, act=Operand(mask=am, density=0.5))))
    assert c[("pe_array", "mac")] == 32 and c[("pe_array", "mac_gated")] == 32
    assert c[("pe_array", "filter_rf_read")] == 32
    assert c[("pe_array", "ifmap_hop")] == 64 - 16
    assert c[("pe_array", "psum_hop")] == 64 - 16


# -- item 3: number formats and the layer's bits --------------------------------------------


def test_fp16_mac_is_horowitz_fp16_multiply_plus_add() -> None:
    a = arch(pe={"impl": "mac", "number_format": "fp"}, bits=16, acc_bits=16)
    assert table_for(a).pj("pe_array", "mac") == 1.1 + 0.4  # fp16 multiply + fp16 add
    a32 = arch(pe={"impl": "mac", "number_format": "fp"}, bits=16, acc_bits=32)
    assert table_for(a32).pj("pe_array", "mac") == 1.1 + 0.9  # fp32 accumulate


def test_fp_layer_on_int_pe_is_an_error_and_runs_on_fp_pe() -> None:
    wl = gemm(4, 8, 4, bits=16, scheme="fp", act=Operand(bits=16, scheme="fp"))
    with pytest.raises(MappingError, match="number_format"):
        simulate(arch(bits=16), wl)
    r = simulate(arch(pe={"impl": "mac", "number_format": "fp"}, bits=16, acc_bits=16), wl)
    e = r.energy
    mac = e[(e.component == "pe_array") & (e.action == "mac")]
    assert float(mac.pj_per_action.iloc[0]) == 1.1 + 0.4


def test_mac_energy_follows_the_layers_bits() -> None:
    # int8 array, a layer at 4-bit weights: multiply 4x8 at the geometric-mean width
    # sqrt(32) on the quadratic fit below 8 bits: 0.2 * (32 / 64) = 0.1 pJ, + int32 add 0.1.
    r = simulate(arch(), gemm(8, 16, 8, bits=4))
    e = r.energy
    arith = e[(e.component == "pe_array") & e.action.str.startswith("mac")
              & ~e.action.str.startswith("mac_")]
    assert int(arith["count"].sum()) == 8 * 16 * 8
    assert float(arith.energy_pj.sum()) / (8 * 16 * 8) == pytest.approx(0.1 + 0.1)


def test_codebook_weight_bits_is_the_decoded_width_not_silently_dropped() -> None:
    net = parse_network({"name": "n", "layers": [
        {"name": "fc", "op": "linear", "in_features": 64, "out_features": 8,
         "codebook_size": 16, "weight_bits": 8}]})
    w = net.layers[0].weight
    assert w.bits == 4 and w.value_bits == 8  # 4-bit indices into 8-bit shared weights
    r = simulate(arch(bits=16), net)
    e = r.energy
    arith = e[(e.component == "pe_array") & e.action.str.startswith("mac@")]
    # multiply 8 x 16 (decoded weight x activation), not the 4-bit index nor the PE's 16 bits
    assert arith.action.tolist() == ["mac@int8x16"]


# -- item 5: no silent default ---------------------------------------------------------------


def test_sram_words_from_exact_fractional_bits() -> None:
    # ws 4x4, K = N = 16, 8-bit weights as a bitmask with 16 nonzeros: (16 * 8 + 256 mask
    # bits) / 256 elements = 1.5 bits per element. Every weight is loaded once (256 element
    # reads): 256 * 1.5 / 8 = 48 words of 8 bits (rounding 1.5 up to 2 bits gave 64).
    wm = np.zeros((1, 16, 16), dtype=bool)
    wm[0, np.arange(16), np.arange(16)] = True
    a = arch(4, 4, "ws", pe_array={"sparsity": {"weight_format": "bitmask"}})
    c = actions(simulate(a, gemm(4, 16, 16, mask=wm, density=16 / 256)))
    assert c[("filter", "read")] == 48


def _table_without_area(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO / "arch_configs" / "energy" / "45nm.yaml").read_text())
    del data["area"]
    path = tmp_path / "noarea.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_missing_area_is_an_error_naming_the_table(tmp_path: Path) -> None:
    with pytest.raises(EnergyError, match=r"horowitz_45nm.*area"):
        load_energy_table(_table_without_area(tmp_path), arch())


@pytest.mark.parametrize(("key", "words"), [
    ("pe_aray.shift_add", ["pe_aray", "pe_array", "ofmap"]),
    ("ofmap.raed", ["raed", "read", "write"]),
])
def test_unknown_override_key_is_an_error(tmp_path: Path, key: str, words: list[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\ntechnology_nm: 45\nactions:\n  {key}: {{pj: 1, source: x}}\n")
    with pytest.raises(ConfigError) as err:
        load_energy_table(path, arch())
    for w in words:
        assert w in str(err.value)


def test_tops_counts_dense_and_effective_tops_effectual_macs() -> None:
    am = np.zeros((1, 8, 16), dtype=bool)
    am[0, :, :4] = True  # a quarter of the activations nonzero
    a = arch(pe_array={"sparsity": {"activations": "skip"}})
    t = simulate(a, gemm(8, 16, 8, act=Operand(mask=am, density=0.25))).totals
    seconds = t["total_cycles"] / 1e9
    assert t["tops"] == pytest.approx(2 * 8 * 16 * 8 / seconds / 1e12)
    assert t["effective_tops"] == pytest.approx(2 * 8 * 4 * 8 / seconds / 1e12)


def test_energy_table_cli_shows_source_and_the_parameter_that_chose_it() -> None:
    from io import StringIO

    import pandas as pd
    from click.testing import CliRunner

    from simulator.cli import main

    arch_path = str(REPO / "arch_configs" / "eie_like.yaml")
    out = CliRunner().invoke(main, ["energy-table", arch_path, "--format", "csv",
                                    "--workload",
                                    str(REPO / "workloads" / "profiles" / "eie_layers.yaml")])
    assert out.exit_code == 0, out.output
    df = pd.read_csv(StringIO(out.output))
    assert list(df.columns) == ["component", "action", "pj_per_action", "unit", "kind",
                                "chosen_by", "source"]
    row = df[(df.component == "filter") & (df.action == "read")].iloc[0]
    assert "buffers.filter.size_kb=8192" in row.chosen_by and "banks=64" in row.chosen_by
    mac = df[(df.component == "pe_array") & (df.action == "mac")].iloc[0]
    assert "weight_bits=16" in mac.chosen_by and "Horowitz" in mac.source
    assert df.chosen_by.notna().all() and df.source.notna().all()


def test_fp_pe_area_uses_the_fp_curves() -> None:
    # one fp16 PE: fp16 multiply 1640 + fp16 add 1360 um^2 (Horowitz area table) + 48 DFFs
    a = arch(1, 1, pe={"impl": "mac", "number_format": "fp"}, bits=16, acc_bits=16)
    assert table_for(a).area_mm2["pe_array"] == pytest.approx((1640 + 1360 + 48 * 4.52) * 1e-6)
