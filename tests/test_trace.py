"""Trace format v1: round trips, strict reading, atomic writing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator import TraceError, load_workload, simulate
from simulator.workload.layer import Operand
from simulator.workload.spec import parse_network
from simulator.workload.trace import Accuracy, Trace, write_trace
from simulator.workload.trace_reader import read_trace

NET = {"name": "tiny", "layers": [
    {"name": "c1", "op": "conv2d", "in_channels": 2, "out_channels": 4, "in_h": 6, "in_w": 6,
     "kernel": 3, "padding": 1},
    {"name": "p1", "op": "maxpool", "channels": 4, "in_h": 6, "in_w": 6, "kernel": 2},
    {"name": "f1", "op": "linear", "in_features": 36, "out_features": 5},
]}


def make_trace() -> Trace:
    rng = np.random.default_rng(1)
    wl = parse_network(NET)
    wm = rng.random((4, 2, 3, 3)) < 0.4
    am = rng.random((2, 6, 6)) < 0.7
    fm = rng.random((5, 36)) < 0.2
    c1, p1, f1 = wl.layers
    c1 = dataclasses.replace(
        c1, weight=Operand(bits=4, density=float(wm.mean()), mask=wm, scheme="int"),
        activation=Operand(bits=8, density=float(am.mean()), mask=am))
    f1 = dataclasses.replace(
        f1, weight=Operand(bits=4, density=float(fm.mean()), mask=fm, scheme="fp",
                           codebook_size=16),
        activation=Operand(density=0.5))
    return Trace(dataclasses.replace(wl, layers=(c1, p1, f1)), source="torch",
                 recipe={"name": "r", "steps": [{"method": "magnitude", "sparsity": 0.6}]},
                 accuracy=Accuracy(0.98, 0.97, "digits", 540), output_bits={"c1": 8},
                 calibration_density={"c1": 0.71})


@pytest.mark.parametrize("suffix", ["", ".zip"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    t = make_trace()
    path = write_trace(t, tmp_path / f"tr{suffix}")
    back = read_trace(path)
    assert back.recipe == t.recipe and back.accuracy == t.accuracy and back.source == "torch"
    assert back.output_bits["c1"] == 8 and back.calibration_density["c1"] == 0.71
    for a, b in zip(t.workload.layers, back.workload.layers, strict=True):
        assert (a.name, a.op, a.M, a.K, a.N, a.count, dict(a.dims)) == \
            (b.name, b.op, b.M, b.K, b.N, b.count, dict(b.dims))
        for x, y in ((a.weight, b.weight), (a.activation, b.activation)):
            assert (x.bits, x.density, x.structure, x.scheme, x.codebook_size) == \
                (y.bits, y.density, y.structure, y.scheme, y.codebook_size)
            assert (x.mask is None) == (y.mask is None)
            if x.mask is not None:
                assert np.array_equal(x.mask, y.mask)
    # load_workload dispatches traces; the same dims give the same GEMMs as the spec
    wl = load_workload(path)
    assert [la.macs for la in wl.layers] == [la.macs for la in parse_network(NET).layers]


def test_trace_simulates(tmp_path: Path, tiny_arch) -> None:  # type: ignore[no-untyped-def]
    path = write_trace(make_trace(), tmp_path / "tr")
    report = simulate(tiny_arch(4, 4, "ws"), load_workload(path))
    assert len(report.layers) == 3


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    man = path / "manifest.yaml"
    data = yaml.safe_load(man.read_text())
    edit(data)
    man.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d.update(format="approxsim-trace/2"), r"format.*approxsim-trace/2"),
    (lambda d: d["layers"][0]["weight"].pop("bits"), r"layers\[0\] \(c1\)\.weight\.bits"),
    (lambda d: d["layers"][2].update(color=1), r"layers\[2\] \(f1\)\.color: unknown key"),
    (lambda d: d["layers"][0]["weight"].update(density=0.9),
     r"layers\[0\] \(c1\)\.weight\.density.*disagrees"),
    (lambda d: d["layers"][0]["activation"].update(shape=[2, 6, 5]),
     r"layers\[0\] \(c1\)\.activation\.shape.*expected \[2, 6, 6\]"),
    (lambda d: d["layers"][0]["weight"].update(bits=0), r"c1\)\.weight\.bits"),
    (lambda d: d["layers"][0]["weight"].update(mask="nope"), r"c1\)\.weight\.mask.*'nope'"),
    (lambda d: d["layers"][0]["dims"].update(in_channels=3), r"c1.*(groups|shape)"),
    (lambda d: d["layers"][1].update(weight=d["layers"][0]["weight"]),
     r"layers\[1\] \(p1\)\.weight: must be null"),
])
def test_strict_reading(tmp_path: Path, edit, match: str) -> None:  # type: ignore[no-untyped-def]
    path = write_trace(make_trace(), tmp_path / "tr")
    _rewrite(path, edit)
    with pytest.raises(TraceError, match=match) as exc:
        read_trace(path)
    assert "manifest.yaml" in str(exc.value)


def test_corrupt_files(tmp_path: Path) -> None:
    path = write_trace(make_trace(), tmp_path / "tr")
    npz = path / "tensors.npz"
    npz.write_bytes(npz.read_bytes()[:40])
    with pytest.raises(TraceError, match=r"(?s)tensors\.npz.*corrupt or truncated"):
        read_trace(path)
    (path / "manifest.yaml").write_text("format: approxsim-trace/1\nlayers: [\n")
    with pytest.raises(TraceError, match=r"(?s)manifest\.yaml.*line"):
        read_trace(path)
    z = write_trace(make_trace(), tmp_path / "t.zip")
    z.write_bytes(z.read_bytes()[:100])
    with pytest.raises(TraceError, match=r"(?s)t\.zip.*corrupt or truncated"):
        read_trace(z)
    with pytest.raises(TraceError, match="file not found"):
        read_trace(tmp_path / "missing.zip")


def test_atomic_write_leaves_nothing(tmp_path: Path) -> None:
    t = make_trace()
    bad_layer = dataclasses.replace(t.workload.layers[0], weight=Operand(
        density=0.5, mask=np.zeros((3, 3), dtype=bool)))
    bad = dataclasses.replace(t, workload=dataclasses.replace(
        t.workload, layers=(bad_layer, *t.workload.layers[1:])))
    with pytest.raises(TraceError, match="c1"):
        write_trace(bad, tmp_path / "tr")
    assert list(tmp_path.iterdir()) == []
    # replacing an existing trace keeps the old one until the new one is complete
    good = write_trace(t, tmp_path / "tr")
    write_trace(t, good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tr"]
