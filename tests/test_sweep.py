"""Sweeps: expansion worked by hand, validation errors with paths, content hashes stable across
processes, invalid combinations as rows, the trace cache, and the energy categories."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SWEEP_ARCH as ARCH
from conftest import SWEEP_NET as NET
from conftest import write_sweep_inputs as write_inputs

from simulator.errors import SimulatorError
from simulator.frontend._deps import MissingExtraError
from simulator.sweep import ResultStore, SweepError, parse_sweep, sweep
from simulator.sweep.breakdown import COLUMNS, categories
from simulator.sweep.expand import expand
from simulator.sweep.sources import Sources
from simulator.workload.layer import Operand, Workload

ROOT = Path(__file__).resolve().parent.parent

def points_of(tmp: Path, **fields: Any) -> list[Any]:
    path = write_inputs(tmp, **fields)
    spec = parse_sweep(yaml.safe_load(path.read_text()), str(path), tmp)
    return expand(spec, Sources(spec.seed, tmp / "traces"))


def test_grid_3x2_is_six_points_with_the_right_dicts(tmp_path: Path) -> None:
    pts = points_of(tmp_path, axes={"pe_array.rows": [8, 16, 32],
                                    "pe_array.sparsity.weights": ["none", "skip"]})
    # product order, the last axis fastest, worked out by hand:
    expected = [(8, "none"), (8, "skip"), (16, "none"), (16, "skip"), (32, "none"),
                (32, "skip")]
    assert [(p.axes["pe_array.rows"], p.axes["pe_array.sparsity.weights"]) for p in pts] \
        == expected
    for p, (rows, mode) in zip(pts, expected, strict=True):
        want = json.loads(json.dumps(ARCH))
        want["pe_array"]["rows"] = rows
        want["pe_array"]["sparsity"] = {"weights": mode}  # created: the base has none
        assert p.arch == want
        assert p.workload == "tinynet"
    assert [p.index for p in pts] == list(range(6))
    assert len({p.hash for p in pts}) == 6


def test_zip_random_and_labelled_axes(tmp_path: Path) -> None:
    zipped = points_of(tmp_path, sampling="zip", axes={"pe_array.rows": [4, 8, 16],
                                                       "pe_array.cols": [2, 4, 8]})
    assert [(p.arch["pe_array"]["rows"], p.arch["pe_array"]["cols"]) for p in zipped] == \
        [(4, 2), (8, 4), (16, 8)]
    axes = {"pe_array.rows": [4, 8, 16, 32], "buffers.ifmap.size_kb": [8, 16, 64]}
    grid = points_of(tmp_path, axes=axes)
    rnd = points_of(tmp_path, axes=axes, sampling={"random": {"n": 5, "seed": 3}})
    again = points_of(tmp_path, axes=axes, sampling={"random": {"n": 5, "seed": 3}})
    other = points_of(tmp_path, axes=axes, sampling={"random": {"n": 5, "seed": 4}})
    assert len(rnd) == 5 and [p.hash for p in rnd] == [p.hash for p in again]
    assert {p.hash for p in rnd} <= {p.hash for p in grid}
    assert {p.hash for p in rnd} != {p.hash for p in other}
    # random points are listed in grid order
    order = [p.hash for p in grid]
    assert [order.index(p.hash) for p in rnd] == sorted(order.index(p.hash) for p in rnd)
    lab = points_of(tmp_path, axes={"array": {
        "dense": {}, "shift": {"pe_array.pe": "shift", "pe_array.weight_bits": 4}}})
    assert [p.axes["array"] for p in lab] == ["dense", "shift"]
    assert lab[1].arch["pe_array"]["pe"] == "shift" and lab[1].arch["pe_array"]["weight_bits"] \
        == 4 and lab[0].arch == ARCH


@pytest.mark.parametrize(("fields", "where", "what"), [
    ({"axes": {"pe_array.rowz": [4]}}, "axes.pe_array.rowz[0]", "unknown key"),
    ({"axes": {"pe_array.rows": [4, 0]}}, "axes.pe_array.rows[1]", "greater than 0"),
    ({"axes": {"pe_array.rows": [4, 4]}}, "axes.pe_array.rows", "listed twice"),
    ({"axes": {"pe_array.impl.x": [1]}}, "axes.pe_array.impl.x[0]", "not a mapping"),
    ({"axes": {"a.b": [1, 2], "pe_array.rows": [4]}, "sampling": "zip"}, "sampling",
     "equal length"),
    ({"axes": {"pe_array.rows": [4, 8]}, "sampling": {"random": {"n": 3}}},
     "sampling.random.n", "grid of 2"),
    ({"axes": {"energy_pj": {"x": {}}}}, "axes.energy_pj", "result column"),
    ({"workloads": ["missing.yaml"]}, "workloads[0]", "file not found"),
    ({"recipes": ["int8"]}, "models", "go together"),
    ({"models": ["digits-lenet"], "recipes": ["nope"]}, "recipes[0]", "bundled recipe"),
    ({"workloads": [{"path": "tinynet.yaml", "set": {"weight_bitz": 4}}]}, "workloads[0].set",
     "unknown field"),
    ({"sampling": "spiral"}, "sampling", ""),
])
def test_bad_sweep_files_name_the_key(tmp_path: Path, fields: dict[str, Any], where: str,
                                      what: str) -> None:
    with pytest.raises(SweepError) as err:
        points_of(tmp_path, **fields)
    assert any(p == where and what in m for p, m in err.value.errors), err.value.errors
    assert str(tmp_path / "sweep.yaml") in str(err.value)


def test_duplicate_points_are_an_error(tmp_path: Path) -> None:
    """A labelled axis whose choices give the same architecture would be run once."""
    with pytest.raises(SweepError, match="are the same"):
        points_of(tmp_path, axes={"array": {"a": {}, "b": {"pe_array.rows": 4}}})


HASH_SCRIPT = """
import json, sys, yaml
from pathlib import Path
from simulator.sweep import parse_sweep
from simulator.sweep.expand import expand
from simulator.sweep.sources import Sources
from simulator.workload.layer import Operand, Workload
tmp = Path(sys.argv[1])
spec = parse_sweep(yaml.safe_load((tmp / "sweep.yaml").read_text()), "s", tmp)
print(json.dumps([p.hash for p in expand(spec, Sources(0, tmp / "traces"))]))
"""


def test_hashes_are_stable_across_processes(tmp_path: Path) -> None:
    axes = {"pe_array.rows": [4, 8], "pe_array.sparsity.weights": ["none", "skip"],
            "array": {"a": {}, "b": {"dram.bandwidth_gb_per_s": 1.5}}}
    here = [p.hash for p in points_of(tmp_path, axes=axes)]
    # another process with another str-hash seed (this one's is random): nothing may depend on
    # hash() or on the process
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", HASH_SCRIPT, str(tmp_path)], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == here
    assert len(set(here)) == 8
    # the hash follows content: a changed layer changes every point's hash
    net = json.loads(json.dumps(NET))
    net["layers"][0]["out_channels"] = 4
    (tmp_path / "tinynet.yaml").write_text(yaml.safe_dump(net))
    spec = parse_sweep(yaml.safe_load((tmp_path / "sweep.yaml").read_text()), "s", tmp_path)
    changed = [p.hash for p in expand(spec, Sources(0, tmp_path / "traces"))]
    assert not set(changed) & set(here)


def test_invalid_combinations_are_rows_not_crashes(tmp_path: Path) -> None:
    """XNOR PEs cannot run 8-bit layers: their points are rows with the error."""
    path = write_inputs(tmp_path, axes={"pe_array.pe": ["mac", "xnor"],
                                        "pe_array.rows": [4, 8]})
    summary = sweep(path, tmp_path / "out", workers=0)
    assert (summary.points, summary.ran, summary.errors) == (4, 4, 2)
    pts = ResultStore.open(tmp_path / "out").points().sort_values("point_index")
    bad = pts[pts["pe_array.pe"] == "xnor"]
    assert set(bad["error_type"]) == {"MappingError"}
    assert bad["error"].str.contains("cannot run on pe 'xnor'").all()
    assert bad["total_cycles"].isna().all()
    good = pts[pts["pe_array.pe"] == "mac"]
    assert good["error"].isna().all() and (good["total_cycles"] > 0).all()
    lay = ResultStore.open(tmp_path / "out").layers()
    assert set(lay["point_hash"]) == set(good["point_hash"])  # no layers for failed points
    assert len(lay) == 2 * 4


def test_store_refuses_other_directories_and_versions(tmp_path: Path) -> None:
    path = write_inputs(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(SimulatorError, match="not empty and is not a results store"):
        sweep(path, tmp_path / "busy", workers=0)
    sweep(path, tmp_path / "out", workers=0)
    man = tmp_path / "out" / "store.json"
    data = json.loads(man.read_text())
    man.write_text(json.dumps({**data, "code_version": "0.0.0+old"}))
    with pytest.raises(SimulatorError, match=r"holds results of approxsim code 0\.0\.0"):
        sweep(path, tmp_path / "out", workers=0)


def test_missing_extras_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_inputs(tmp_path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(MissingExtraError, match=r"approxsim\[sweep\]"):
        sweep(path, tmp_path / "out", workers=0)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from simulator.reporting.figures import figure

    with pytest.raises(MissingExtraError, match=r"approxsim\[plot\]"):
        figure(4, 3)


def test_energy_categories_sum_and_metadata_by_hand(tiny_arch: Any) -> None:
    """Categories add up to each layer's energy; the metadata share is worked by hand."""
    from simulator import parse_network, simulate

    arch = tiny_arch(4, 4, "ws", bits=8, pe_array={"sparsity": {
        "weights": "skip", "weight_format": "bitmask"}})
    spec = parse_network({"name": "m", "layers": [
        {"name": "fc", "op": "linear", "in_features": 64, "out_features": 32}]})
    mask = np.zeros((32, 64), dtype=bool)
    mask.flat[::4] = True  # exactly 512 of the 2048 weights are nonzero
    layer = dataclasses.replace(spec.layers[0], weight=Operand(density=0.25, mask=mask))
    rep = simulate(arch, Workload("m", (layer,)))
    (r,) = rep.results
    assert rep.energy_table is not None
    cats = categories(r, rep.energy_table)
    assert set(cats) == set(COLUMNS)
    assert math.fsum(cats.values()) == pytest.approx(rep.layers["energy_pj"][0], rel=1e-12)
    # bitmask: 1 bit per weight (64 x 32 = 2048 bits = 256 bytes), values 0.25 x 2048 x 8 bits
    assert r.weight_metadata_bytes == 256
    f_w = 2048 / (2048 + 0.25 * 2048 * 8)  # = 1/5
    e = rep.energy_table.entries
    assert r.weight_density == 0.25
    filter_sram = sum(n * e[k].pj for k, n in r.actions.items()
                      if k[0] == "filter" and k[1] != "leak_cycle")
    dram_read = r.actions[("dram", "read_bit")] * e[("dram", "read_bit")].pj
    dram_filter = dram_read * r.dram_filter_read_bytes / r.dram_read_bytes
    assert cats["energy_metadata_pj"] == pytest.approx(f_w * (filter_sram + dram_filter),
                                                       rel=1e-12)
    assert cats["energy_filter_pj"] == pytest.approx((1 - f_w) * filter_sram, rel=1e-12)
    small = parse_network({"name": "s", "layers": [  # sparse conv and fc, and a vector op
        {"name": "c", "op": "conv2d", "in_channels": 8, "out_channels": 16, "in_h": 8,
         "in_w": 8, "kernel": 3, "padding": 1, "weight_density": 0.3, "act_density": 0.6},
        {"name": "p", "op": "maxpool", "channels": 16, "in_h": 8, "in_w": 8, "kernel": 2},
        {"name": "f", "op": "linear", "in_features": 256, "out_features": 64,
         "weight_density": 0.1, "act_density": 0.4, "codebook_size": 16}]})
    for name in ("scnn_like", "eie_like", "edge_8x8", "cnvlutin_like_16x16_os"):
        from simulator import load_arch

        rep = simulate(load_arch(ROOT / "arch_configs" / f"{name}.yaml"), small)
        assert rep.energy_table is not None
        for res, total in zip(rep.results, rep.layers["energy_pj"], strict=True):
            assert math.fsum(categories(res, rep.energy_table).values()) == \
                pytest.approx(total, rel=1e-9)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_recipes_are_compressed_once_and_cached(tmp_path: Path, cache_dir: Path) -> None:
    """Digits x (baseline, int8): traces cached in the store; a rerun compresses nothing."""
    path = write_inputs(tmp_path, workloads=[], models=["digits-lenet"],
                        recipes=["baseline", "int8"])
    phases: list[str] = []

    def progress(phase: str, done: int, total: int) -> None:
        phases.append(phase)

    cache = cache_dir  # the session's trained digits model
    sweep(path, tmp_path / "out", workers=0, cache_dir=cache, progress=progress)
    assert "compress digits-lenet/int8" in phases and "compress digits-lenet/baseline" in phases
    traces = sorted((tmp_path / "out" / "traces").glob("*.zip"))
    assert len(traces) == 2
    pts = ResultStore.open(tmp_path / "out").points().set_index("recipe")
    assert pts.loc["baseline", "accuracy"] == pts.loc["baseline", "baseline_accuracy"]
    assert pts.loc["int8", "baseline_accuracy"] == pts.loc["baseline", "accuracy"]
    assert 0.9 < pts.loc["int8", "accuracy"] <= 1.0
    assert pts["network"].tolist() == ["digits-lenet"] * 2
    # a new store with the same sweep but the trace cache copied: nothing is compressed again
    phases.clear()
    (tmp_path / "again" / "traces").mkdir(parents=True)
    for t in traces:
        (tmp_path / "again" / "traces" / t.name).write_bytes(t.read_bytes())
    (tmp_path / "again" / "store.json").write_text((tmp_path / "out" / "store.json").read_text())
    sweep(path, tmp_path / "again", workers=0, cache_dir=cache, progress=progress)
    assert not [p for p in phases if p.startswith("compress")]
    again = ResultStore.open(tmp_path / "again").points().set_index("recipe")
    assert again.loc["int8", "total_cycles"] == pts.loc["int8", "total_cycles"]


def test_the_package_is_callable(tmp_path: Path) -> None:
    """``simulator.sweep(...)`` runs a sweep; ``simulator.sweep.store`` is still a module."""
    import simulator
    import simulator.sweep.store as store_module

    summary = simulator.sweep(write_inputs(tmp_path), tmp_path / "out", workers=0)
    assert (summary.points, summary.ran) == (1, 1)
    assert store_module.ResultStore is ResultStore


def test_specs_traces_and_topologies_are_workloads(tmp_path: Path) -> None:
    """A sweep takes a network spec, a trace (with its measured accuracy) and a SCALE-Sim
    topology CSV; each point's workload is read once and its accuracy comes along."""
    from simulator import parse_network, write_trace
    from simulator.workload.trace import Accuracy, Trace

    trace = tmp_path / "tinynet_trace.zip"
    other = json.loads(json.dumps(NET))
    other["layers"][2]["weight_density"] = 0.25  # not the spec's layers: another workload
    net = parse_network(other)
    write_trace(Trace(net, accuracy=Accuracy(0.9, 0.85, "made-up set", 100)), trace)
    topo = ROOT / "workloads" / "scalesim" / "tiny.csv"
    path = write_inputs(tmp_path, workloads=[
        "tinynet.yaml", {"path": trace.name, "label": "tinynet-trace"}, str(topo)])
    summary = sweep(path, tmp_path / "out", workers=0)
    assert (summary.points, summary.errors) == (3, 0)
    pts = ResultStore.open(tmp_path / "out").points().set_index("workload")
    assert pts.loc["tinynet-trace", "accuracy"] == 0.85
    assert pts.loc["tinynet-trace", "baseline_accuracy"] == 0.9
    assert "made-up set" in pts.loc["tinynet-trace", "accuracy_source"]
    assert pd.isna(pts.loc["tinynet", "accuracy"])
    assert pts.loc["tiny", "total_cycles"] > 0 and pts.loc["tiny", "layers"] == 3
    # another density is other content (another hash), but the dense array multiplies zeros
    # and stores them: the same cycles and energy
    assert pts.loc["tinynet-trace", "point_hash"] != pts.loc["tinynet", "point_hash"]
    assert pts.loc["tinynet-trace", "energy_pj"] == pts.loc["tinynet", "energy_pj"]
