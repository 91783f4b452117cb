"""Energy: action counts worked by hand, counts x table, fits, scaling, missing entries."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO, arch_dict, make_layer
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import ConfigError, parse_arch, simulate
from simulator.arch.accelerator import build
from simulator.cli import main
from simulator.cost.curves import power_law
from simulator.cost.table import EnergyTable, Entry, layer_energy_pj
from simulator.cost.table_file import load_energy_table, table_for
from simulator.cost.technology import STILLMAKER_BAAS, scale_factor
from simulator.errors import EnergyError
from simulator.workload.layer import Layer, Workload

#: Counts of the 5x3x6 GEMM on a 4x4 array (unlimited bandwidth, 1 MiB 8-bit SRAMs), by hand.
#: os: M on rows (folds 4+1), N on columns (4+2), K=3 streamed: 4 folds of 3+4+4-2 = 9 cycles,
#: minus 1 = 35. SRAM: ifmap M_f*K per fold = 12+12+3+3 = 30, filter K*N_f = 12+6+12+6 = 36,
#: ofmap M*N = 30. Hops: moving operands, MACs - edge reads: 90-30, 90-36. DRAM: each tensor
#: once (15 + 18 bytes in, 30 out). Idle: 16 PEs x 35 cycles - 90 MACs.
HAND_OS = {
    ("pe_array", "mac"): 90, ("pe_array", "mac_gated"): 0, ("pe_array", "mac_idle"): 470,
    ("pe_array", "ifmap_hop"): 60, ("pe_array", "filter_hop"): 54,
    ("pe_array", "psum_rf_read"): 90, ("pe_array", "psum_rf_write"): 90,
    ("ifmap", "read"): 30, ("ifmap", "write"): 15, ("filter", "read"): 36,
    ("filter", "write"): 18, ("ofmap", "read"): 30, ("ofmap", "write"): 30,
    ("dram", "read_bit"): 264, ("dram", "write_bit"): 240,
    **{(c, "leak_cycle"): 35 for c in ("pe_array", "vector_unit", "ifmap", "filter", "ofmap")},
}
#: ws: K=3 on rows, N on columns (4+2): 2 folds of 2*4+4+5-2 = 15 cycles, minus 1 = 29.
#: Weights loaded once per fold (18 = SRAM filter reads = PE register writes), read per MAC;
#: partial sums (32-bit) into 8-bit-word ofmap: 30 x 4 words.
HAND_WS = {
    ("pe_array", "mac"): 90, ("pe_array", "mac_gated"): 0, ("pe_array", "mac_idle"): 374,
    ("pe_array", "ifmap_hop"): 60, ("pe_array", "psum_hop"): 60,
    ("pe_array", "filter_rf_write"): 18, ("pe_array", "filter_rf_read"): 90,
    ("ifmap", "read"): 30, ("ifmap", "write"): 15, ("filter", "read"): 18,
    ("filter", "write"): 18, ("ofmap", "read"): 30, ("ofmap", "write"): 120,
    ("dram", "read_bit"): 264, ("dram", "write_bit"): 240,
    **{(c, "leak_cycle"): 29 for c in ("pe_array", "vector_unit", "ifmap", "filter", "ofmap")},
}


def tiny(dataflow: str, **kw: object):
    return parse_arch(arch_dict(4, 4, dataflow, **kw))


def flat_table(pairs) -> EnergyTable:
    """Distinct binary-exact prices, so sums are exact to the last pJ."""
    return EnergyTable.from_pj("flat", 45, {k: 2.0 ** (i % 7 - 3) for i, k in
                                            enumerate(sorted(pairs))}, "test")


@pytest.mark.parametrize(("dataflow", "hand"), [("os", HAND_OS), ("ws", HAND_WS)])
def test_hand_worked_counts_and_energy(dataflow, hand):
    wl = Workload("w", (make_layer(),))
    table = flat_table(hand)
    report = simulate(tiny(dataflow), wl, table)
    assert dict(report.results[0].actions) == hand
    expected = sum(n * table.pj(*k) for k, n in hand.items())
    assert report.totals["energy_pj"] == expected
    assert report.layers["energy_pj"].tolist() == [expected]
    e = report.energy
    assert list(e.columns) == ["arch", "layer", "component", "action", "count",
                               "pj_per_action", "energy_pj"]
    assert e["energy_pj"].sum() == expected
    assert set(report.actions.columns) == {"arch", "layer", "component", "action", "count"}


def test_missing_entries_named_all_at_once():
    wl = Workload("w", (make_layer(),))
    pairs = dict(HAND_OS)
    for k in [("pe_array", "mac_idle"), ("dram", "write_bit"), ("ofmap", "leak_cycle")]:
        pairs.pop(k)
    with pytest.raises(EnergyError) as err:
        simulate(tiny("os"), wl, flat_table(pairs))
    msg = str(err.value)
    assert "3 counted action(s)" in msg
    for name in ("pe_array.mac_idle", "dram.write_bit", "ofmap.leak_cycle"):
        assert name in msg


counts = st.dictionaries(st.sampled_from(sorted(HAND_OS)), st.integers(0, 10**9), min_size=1)


@settings(max_examples=60, deadline=None)
@given(counts, counts, st.integers(0, 1000), st.integers(0, 1000))
def test_energy_is_linear_in_counts(c1, c2, a, b):
    table = table_for(tiny("os"))
    keys = set(c1) | set(c2)
    mix = {k: a * c1.get(k, 0) + b * c2.get(k, 0) for k in keys}
    e1, e2, em = layer_energy_pj([c1, c2, mix], table)
    assert em == pytest.approx(a * e1 + b * e2, rel=1e-12, abs=1e-9)


@given(st.sampled_from(sorted(STILLMAKER_BAAS)))
def test_scaling_multiplies_dynamic_entries_by_the_factor(nm):
    base = table_for(tiny("ws"))
    scaled = base.scaled(nm)
    assert scaled.technology_nm == nm
    for key, e in base.entries.items():
        s = scaled.entries[key]
        if e.kind == "dynamic":
            assert s.pj == pytest.approx(e.pj * STILLMAKER_BAAS[nm] / STILLMAKER_BAAS[45],
                                         rel=1e-12)
        else:  # leakage follows area at the arch's node; DRAM is the arch's own figure
            assert s.pj == e.pj


def test_arch_node_selects_scaled_table():
    at45 = table_for(tiny("ws"))
    at7 = table_for(tiny("ws", technology_nm=7))
    assert at7.pj("pe_array", "mac") == pytest.approx(at45.pj("pe_array", "mac") * 0.094)
    assert at7.pj("dram", "read_bit") == at45.pj("dram", "read_bit") == 8.0
    assert at7.area_mm2["ifmap"] == pytest.approx(at45.area_mm2["ifmap"] * (7 / 45) ** 2)
    assert scale_factor(45, 40) == pytest.approx(math.exp(
        math.log(1.0) + math.log(40 / 45) / math.log(32 / 45) * math.log(0.66)))
    with pytest.raises(EnergyError, match="technology_nm"):
        scale_factor(45, 3)


def test_int8_mac_is_horowitz_multiply_plus_accumulate_add():
    table = table_for(tiny("os"))  # int8 x int8, 32-bit accumulator, 45 nm
    assert table.pj("pe_array", "mac") == 0.2 + 0.1  # int8 multiply + int32 add (Horowitz)
    int16 = table_for(tiny("os", bits=16))
    assert int16.pj("pe_array", "mac") == pytest.approx(power_law({8: 0.2, 32: 3.1}, 16) + 0.1)


def test_fits_reproduce_published_points():
    model = table_for(tiny("os"))
    assert model.pj("ifmap", "read") == pytest.approx(100 * 8 / 64)  # 1 MiB, 8-bit words
    for x, y in {8: 0.03, 16: 0.05, 32: 0.1}.items():
        assert power_law({8: 0.03, 16: 0.05, 32: 0.1}, x, 1) == y
    assert power_law({8: 0.2, 32: 3.1}, 64, 2) == pytest.approx(3.1 * 4)  # quadratic beyond
    assert power_law({8: 0.03, 16: 0.05, 32: 0.1}, 4, 1) == pytest.approx(0.015)  # linear


@settings(max_examples=60, deadline=None)
@given(st.floats(0.25, 65536), st.floats(0.25, 65536), st.sampled_from([8, 16, 32, 64]),
       st.sampled_from(["energy/45nm.yaml", "energy/eyeriss65nm.yaml"]))
def test_bigger_sram_never_costs_less_per_access(kb1, kb2, word_bits, path):
    small, big = sorted((kb1, kb2))

    def read_pj(kb: float) -> float:
        arch = parse_arch(arch_dict(4, 4, "ws", energy_table=path, buffers={
            "ifmap": {"size_kb": kb, "word_bits": word_bits}}))
        return load_energy_table(path, arch).pj("ifmap", "read")

    assert read_pj(small) <= read_pj(big)


def test_eyeriss_table_ratios_and_anchor():
    arch = parse_arch(arch_dict(4, 4, "ws", bits=16, technology_nm=65,
                                energy_table="energy/eyeriss65nm.yaml"))
    t = table_for(arch)
    mac = t.pj("pe_array", "mac")
    horowitz16 = power_law({8: 0.2, 32: 3.1}, 16) + 0.1  # 45 nm int16 MAC
    assert mac == 1.10 == pytest.approx(horowitz16 * STILLMAKER_BAAS[65], rel=0.01)
    assert t.pj("pe_array", "ifmap_rf_read") == pytest.approx(mac)      # RF 1x
    assert t.pj("pe_array", "ifmap_hop") == pytest.approx(2 * mac)      # network 2x
    assert t.pj("ifmap", "read") == pytest.approx(6 * mac)              # 1 MiB buffer: 6x
    assert t.pj("pe_array", "leak_cycle") == 0.0


def test_fixed_entries_by_impl_and_instance(tmp_path):
    path = tmp_path / "flat.yaml"
    path.write_text("name: flat\ntechnology_nm: 45\nactions:\n"
                    "  sram.read: {pj: 1.5, source: by impl}\n"
                    "  ofmap.read: {pj: 4.0, source: by instance}\n"
                    "  pe_array.mac: {pj: 0.5, technology_nm: 32, source: scaled entry}\n")
    t = load_energy_table(path, tiny("os"))
    assert t.pj("ifmap", "read") == t.pj("filter", "read") == 1.5
    assert t.pj("ofmap", "read") == 4.0
    assert t.pj("pe_array", "mac") == pytest.approx(0.5 / 0.66)
    assert "by instance" in t.entries[("ofmap", "read")].source


def test_bad_table_file_reports_paths(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ntechnology_nm: 45\nactions:\n  nodot: {pj: 1, source: x}\n"
                    "  ifmap.read: {pj: -1}\n")
    with pytest.raises(ConfigError) as err:
        load_energy_table(path, tiny("os"))
    assert "actions.ifmap.read.pj" in str(err.value)
    assert "actions.ifmap.read.source" in str(err.value)


def test_dram_energy_is_required():
    data = arch_dict(4, 4, "os")
    del data["dram"]["energy_pj_per_bit"]
    with pytest.raises(ConfigError, match=r"dram\.energy_pj_per_bit"):
        parse_arch(data)


def test_scalesim_import_states_its_dram_energy():
    from simulator.arch.scalesim import SCALESIM_DRAM_PJ_PER_BIT, load_scalesim_cfg

    cfg = REPO / "workloads" / "scalesim" / "scalesim_8x8_os.cfg"
    assert SCALESIM_DRAM_PJ_PER_BIT == 8.0
    assert build(load_scalesim_cfg(cfg)).dram.params.energy_pj_per_bit == 8.0
    assert build(load_scalesim_cfg(cfg, dram_pj_per_bit=20)).dram.params.energy_pj_per_bit == 20


def test_totals_and_area():
    wl = Workload("w", (make_layer(64, 64, 64),))
    r = simulate(tiny("ws"), wl)
    t = r.totals
    seconds = t["total_cycles"] / 1e9
    assert t["energy_pj"] == pytest.approx(r.energy["energy_pj"].sum())
    assert t["avg_power_mw"] == pytest.approx(t["energy_pj"] * 1e-9 / seconds)
    assert t["tops"] == pytest.approx(2 * 64**3 / seconds / 1e12)
    assert t["tops_per_w"] == pytest.approx(t["tops"] / (t["avg_power_mw"] * 1e-3))
    assert t["edp_j_s"] == pytest.approx(t["energy_pj"] * 1e-12 * seconds)
    assert t["inferences_per_s"] == pytest.approx(1 / seconds)
    pe_um2 = 282 + 137 + (8 + 8 + 32) * 4.52  # int8 multiply + int32 add + flip-flops
    area = r.energy_table.area_mm2
    assert area["pe_array"] == pytest.approx(16 * pe_um2 * 1e-6)
    assert area["ifmap"] == pytest.approx(1024 * 0.00367)
    assert t["tops_per_mm2"] == pytest.approx(t["tops"] / sum(area.values()))


@pytest.mark.parametrize("path", sorted((REPO / "arch_configs").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_bundled_arch_has_a_complete_table(path):
    from simulator import load_arch

    arch = load_arch(path)
    table = table_for(arch)
    pool = Layer("pool", "maxpool", "vector", ifmap_elements=400, ofmap_elements=100,
                 vector_ops=400)
    wl = Workload("w", (make_layer(40, 30, 20), pool))
    report = simulate(arch, wl, table)
    assert report.totals["energy_pj"] > 0
    assert all(isinstance(e, Entry) and e.source for e in table.entries.values())


def test_cli_energy_table_and_run_breakdown():
    runner = CliRunner()
    arch = str(REPO / "arch_configs" / "edge_8x8.yaml")
    out = runner.invoke(main, ["energy-table", arch, "--format", "csv"])
    assert out.exit_code == 0, out.output
    from io import StringIO

    df = pd.read_csv(StringIO(out.output))
    row = df[(df.component == "pe_array") & (df.action == "mac")].iloc[0]
    assert row.pj_per_action == pytest.approx(0.3) and "Horowitz" in row.source
    run = runner.invoke(main, ["run", arch, str(REPO / "workloads" / "networks" / "lenet5.yaml")])
    assert run.exit_code == 0, run.output
    assert "energy by component" in run.output and "tops_per_w" in run.output
