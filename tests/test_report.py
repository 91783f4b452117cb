"""Report files: parseable, with the required columns, written atomically; totals add up."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from simulator import load_arch, load_workload, simulate
from simulator.report import LAYER_COLUMNS

REPO = Path(__file__).resolve().parent.parent
REQUIRED = ["layer", "op", "M", "K", "N", "macs", "compute_cycles", "stall_cycles",
            "total_cycles", "pe_utilisation", "mapping_efficiency", "sram_ifmap_reads",
            "sram_filter_reads", "sram_ofmap_writes", "dram_read_bytes", "dram_write_bytes"]
SUMMED = ["macs", "compute_cycles", "stall_cycles", "total_cycles", "sram_ifmap_reads",
          "sram_filter_reads", "sram_ofmap_writes", "dram_read_bytes", "dram_write_bytes"]


@pytest.fixture(scope="module")
def report():
    # LeNet-5 (convs, pools, linears) on SCALE-Sim's default array: gemm and vector layers.
    return simulate(load_arch(REPO / "arch_configs" / "scalesim_32x32_os.yaml"),
                    load_workload(REPO / "workloads" / "networks" / "lenet5.yaml"))


def test_layer_columns_include_required():
    assert set(REQUIRED) <= set(LAYER_COLUMNS)


def test_layers_frame(report):
    df = report.layers
    assert list(df.columns) == LAYER_COLUMNS
    assert len(df) == 6
    assert set(df["op"]) >= {"conv2d", "linear"}
    assert (df["stall_cycles"] == df["total_cycles"] - df["compute_cycles"]).all()


def test_totals_are_column_sums(report):
    df, totals = report.layers, report.totals
    assert totals["layers"] == len(df)
    for col in SUMMED:
        assert totals[col] == int(df[col].sum()), col
    # Network utilisation weighs layers by their cycles: all MACs over all PE-cycles.
    assert totals["pe_utilisation"] == pytest.approx(
        df["macs"].sum() / (32 * 32 * df["total_cycles"].sum()))
    assert totals["latency_us"] == pytest.approx(df["total_cycles"].sum() / 1000.0)


def _no_leftovers(directory: Path, written: list[Path]) -> None:
    """``directory`` holds exactly the result set (its files and manifest), nothing hidden."""
    sets = {p.parent for p in written}
    assert sorted(directory.iterdir()) == sorted(sets)
    for d in sets:
        assert sorted(d.iterdir()) == sorted([p for p in written if p.parent == d]
                                             + [d / "manifest.json"])
    assert not [p for p in directory.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_write_csv(report, tmp_path):
    out = tmp_path / "results"  # created on demand
    paths = report.write(out, "csv")
    assert len(paths) == 4 and all(p.parent.parent == out for p in paths)  # + energy.csv
    _no_leftovers(out, paths)
    layers_path = next(p for p in paths if p.name == "layers.csv")
    layers = pd.read_csv(layers_path)
    assert set(REQUIRED) <= set(layers.columns)
    assert list(layers["layer"]) == list(report.layers["layer"])
    for col in SUMMED:
        assert list(layers[col]) == list(report.layers[col]), col
    totals = pd.read_csv(next(p for p in paths if p.name == "totals.csv"))
    assert len(totals) == 1
    for col in SUMMED:
        assert totals.loc[0, col] == layers[col].sum(), col
    actions = pd.read_csv(next(p for p in paths if p.name == "actions.csv"))
    assert {"layer", "component", "action", "count"} <= set(actions.columns)


def test_write_json(report, tmp_path):
    paths = report.write(tmp_path, "json")
    assert len(paths) == 1
    _no_leftovers(tmp_path, paths)
    data = json.loads(paths[0].read_text(encoding="utf-8"))
    rows = data["layers"]
    assert [r["layer"] for r in rows] == list(report.layers["layer"])
    for row in rows:
        assert set(REQUIRED) <= set(row)
    for col in SUMMED:
        assert data["totals"][col] == sum(r[col] for r in rows), col
    # Vector layers have no folds: mapping efficiency is undefined, written as null.
    pools = [r for r in rows if r["op"] in ("maxpool", "avgpool")]
    assert pools and all(r["mapping_efficiency"] is None for r in pools)
    gemms = [r for r in rows if r["op"] in ("conv2d", "linear")]
    assert all(0 < r["mapping_efficiency"] <= 1 for r in gemms)


def test_write_overwrites_atomically(report, tmp_path):
    out = tmp_path / "out"
    first = report.write(out, "json")
    stale = first[0]
    stale.write_text("stale", encoding="utf-8")
    again = report.write(out, "json")
    assert again == first
    assert json.loads(stale.read_text(encoding="utf-8"))["totals"]["layers"] == 6
    _no_leftovers(out, again)


def test_write_rejects_unknown_format(report, tmp_path):
    with pytest.raises(ValueError, match="csv"):
        report.write(tmp_path, "xlsx")
    assert list(tmp_path.iterdir()) == []


def test_nan_mapping_efficiency_only_for_vector_layers(report):
    df = report.layers
    vector = df["folds"] == 0
    assert vector.any() and (~vector).any()
    assert df.loc[vector, "mapping_efficiency"].map(math.isnan).all()
    assert not df.loc[~vector, "mapping_efficiency"].map(math.isnan).any()


def _totals_from_frames(r) -> dict:
    """``Report.totals`` the long way: summing the :attr:`Report.layers` and
    :attr:`Report.energy` frames (the implementation before the frame-free one)."""
    from simulator.cost.metrics import energy_totals
    from simulator.report import _NOT_SUMMED

    df = r.layers
    summed = [c for c in LAYER_COLUMNS[7:] if c not in _NOT_SUMMED and c != "preload_bytes"]
    sums = {str(c): int(v) for c, v in df[summed].sum().items()}
    gemm = df[df["folds"] > 0]
    used = float((gemm["mapping_efficiency"] * gemm["folds"]).sum())
    total = sums["total_cycles"]
    e = r.energy
    off = [r.energy_table.entries[(c, a)].kind == "offchip"
           for c, a in zip(e["component"], e["action"], strict=True)]
    onchip = math.fsum(e["energy_pj"][[not o for o in off]])
    return {
        "arch": r.arch, "workload": r.workload, "layers": len(df), **sums,
        "pe_utilisation": (float((df["pe_utilisation"] * df["total_cycles"]).sum()) / total
                           if total else 0.0),
        "compute_utilisation": (float((gemm["compute_utilisation"]
                                       * gemm["compute_cycles"]).sum())
                                / float(gemm["compute_cycles"].sum()) if len(gemm) else 0.0),
        "mapping_efficiency": used / float(gemm["folds"].sum()) if len(gemm) else 0.0,
        "latency_us": total / r.clock_mhz,
        **energy_totals(math.fsum(df["energy_pj"]), total, r.clock_mhz, sums["macs"],
                        r.energy_table.area_mm2, sums["effectual_macs"], onchip),
        "preload_dram_bytes": r.preload.dram_read_bytes,
        "preload_cycles": r.preload.cycles, "preload_energy_pj": r.preload.energy_pj,
    }


@pytest.mark.parametrize("arch, net", [
    ("scalesim_32x32_os", "lenet5"), ("scalesim_32x32_ws", "resnet18"),
    ("eyeriss_12x14", "alexnet"), ("sparse_2of4_32x32_ws", "mobilenetv2"),
    ("edge_xnor_int8", "finn_sfc"), ("eie_like", "lenet5"), ("scnn_like", "lenet5"),
    ("llm_128x128_ws", "bert_base_layer"), ("edge_bitserial_w", "lenet5")])
def test_totals_equal_the_frame_sums_exactly(arch: str, net: str) -> None:
    """The frame-free totals are the frames' sums to the last bit (and type), NaN included."""
    r = simulate(load_arch(REPO / "arch_configs" / f"{arch}.yaml"),
                 load_workload(REPO / "workloads" / "networks" / f"{net}.yaml"))
    fast, slow = r.totals, _totals_from_frames(r)
    assert list(fast) == list(slow)
    for k, v in slow.items():
        assert type(fast[k]) is type(v), k
        assert fast[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(fast[k])), k
    assert r.layer_energy_pj == r.layers["energy_pj"].tolist()


def test_totals_equal_the_frame_sums_with_a_float_column_and_nan(report) -> None:
    """A float in a summed column makes the frame sum every column in float64, and pandas
    sums skip NaN: the frame-free totals do the same."""
    import dataclasses

    rs = list(report.results)
    rs[0] = dataclasses.replace(rs[0], sram_ifmap_reads=2.5, pe_utilisation=math.nan,
                                macs=2**60 + 1)
    r = dataclasses.replace(report, results=tuple(rs))
    fast, slow = r.totals, _totals_from_frames(r)
    assert fast == slow and fast["macs"] != sum(x.macs for x in rs)  # rounded via float64
