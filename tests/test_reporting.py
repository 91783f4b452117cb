"""Reports: Pareto fronts worked by hand, every figure written and labelled (read back), the
tables' numbers equal to the store's, the differential report, and the CLI."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import write_sweep_inputs as write_inputs
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli import main
from simulator.reporting import ReportError, load_results, write_diff, write_report
from simulator.reporting.diff import GROUPS
from simulator.reporting.pareto import pareto_front
from simulator.sweep import ResultStore, sweep


def test_pareto_front_of_a_hand_made_frame() -> None:
    df = pd.DataFrame({
        "name": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "energy": [1.0, 2.0, 2.0, 3.0, 4.0, 1.0, np.nan, 5.0],
        "acc": [0.80, 0.90, 0.85, 0.90, 0.95, 0.80, 0.99, 0.95],
    })
    # a (1, .80) and f (1, .80) are equal: both on the front; b (2, .90) beats c (2, .85)
    # and d (3, .90); e (4, .95) beats h (5, .95); g has no energy: never on the front.
    front = pareto_front(df, {"energy": "min", "acc": "max"})
    assert df["name"][front].tolist() == ["a", "b", "e", "f"]
    assert front.index.equals(df.index)
    # three objectives: c is cheaper in area than b, so it joins the front
    df["area"] = [5.0, 5.0, 1.0, 5.0, 5.0, 5.0, 1.0, 5.0]
    three = pareto_front(df, {"energy": "min", "acc": "max", "area": "min"})
    assert df["name"][three].tolist() == ["a", "b", "c", "e", "f"]
    with pytest.raises(ValueError, match="'min' or 'max'"):
        pareto_front(df, {"energy": "least"})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=0, max_size=40),
       st.sampled_from(["min", "max"]), st.sampled_from(["min", "max"]))
def test_two_objective_sweep_equals_pairwise(pts: list[tuple[int, int]], sx: str,
                                             sy: str) -> None:
    """The O(n log n) path and the pairwise definition agree, ties included."""
    df = pd.DataFrame(pts, columns=["x", "y"], dtype=float)
    obj: Any = {"x": sx, "y": sy}
    fast = pareto_front(df, obj)
    slow = pareto_front(df, obj, method="pairwise")
    assert fast.tolist() == slow.tolist()
    for i in df.index[fast]:  # nobody dominates a front point (checked from the definition)
        better = df.copy()
        for c, s in obj.items():
            better[c] = df[c] if s == "min" else -df[c]
        me = better.loc[i]
        dom = ((better <= me).all(axis=1) & (better < me).any(axis=1))
        assert not dom.any()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 points: 2 array sizes x 2 weight modes x (tinynet, tinynet at 4-bit weights), each
    workload with a stated accuracy."""
    tmp = tmp_path_factory.mktemp("rep")
    path = write_inputs(tmp, axes={"pe_array.rows": [4, 8],
                                   "pe_array.sparsity.weights": ["none", "skip"]},
                        workloads=[{"path": "tinynet.yaml", "accuracy": 0.9},
                                   {"path": "tinynet.yaml", "label": "tinynet-w4",
                                    "network": "tinynet", "set": {"weight_bits": 4},
                                    "accuracy": 0.85, "accuracy_source": "made up"}])
    sweep(path, tmp / "out", workers=0)
    return tmp / "out"


FIGURES = {
    "accuracy_vs_energy": ["energy per inference (µJ)", "top-1 accuracy (%)",
                           "Accuracy vs energy per inference"],
    "accuracy_vs_latency": ["latency per inference (µs)", "top-1 accuracy (%)",
                            "Accuracy vs latency"],
    "efficiency_vs_area": ["area (mm²)", "efficiency (TOPS/W)", "Efficiency vs area"],
    "layer_energy": ["energy (nJ)", "Energy per layer by component", "DRAM", "PE arithmetic"],
    "layer_cycles": ["cycles", "Cycles per layer: compute and stall", "stall (waiting for data)"],
    "roofline": ["operational intensity (effectual ops / DRAM byte)",
                 "attained performance (GOPS)", "Roofline per architecture"],
}


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [t.strip() for el in root.iter() if el.tag.endswith("text")
            for t in el.itertext() if t.strip()]


def test_every_figure_is_written_and_labelled(store: Path, tmp_path: Path) -> None:
    import matplotlib.image

    paths = write_report([store], tmp_path)
    names = {p.name for p in paths}
    assert names == {f"{f}.{x}" for f in FIGURES for x in ("png", "svg")} | {
        "summary.csv", "summary.md", "summary.tex"}
    for stem, labels in FIGURES.items():
        png = matplotlib.image.imread(tmp_path / f"{stem}.png")
        assert png.shape[0] > 300 and png.shape[1] > 400
        assert float(png[..., :3].std()) > 0.05, f"{stem}.png is blank"
        texts = svg_texts(tmp_path / f"{stem}.svg")
        for label in labels:
            assert any(label in t for t in texts), (stem, label, texts[:20])
    assert any("Pareto front" in t for t in svg_texts(tmp_path / "accuracy_vs_energy.svg"))


def test_report_numbers_equal_the_store(store: Path, tmp_path: Path) -> None:
    write_report([store], tmp_path, formats=("png",))
    raw = ResultStore.open(store).points().set_index("point_hash")
    csv = pd.read_csv(tmp_path / "summary.csv").set_index("point_hash")
    assert sorted(csv.index) == sorted(raw.index)
    for col in ("accuracy", "energy_uj", "latency_us", "total_cycles", "tops_per_w",
                "area_mm2", "edp_j_s", "pe_array.rows"):
        assert csv[col].to_dict() == raw.loc[csv.index, col].to_dict(), col
    # the markdown table holds the same numbers at 4 significant digits
    lines = (tmp_path / "summary.md").read_text().splitlines()
    head = [h.strip() for h in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True))
        (full,) = [h for h in raw.index if h.startswith(cells["point_hash"])]
        for col in ("energy_uj", "latency_us", "tops_per_w"):
            assert float(cells[col]) == pytest.approx(raw.loc[full, col], rel=5e-4)
    tex = (tmp_path / "summary.tex").read_text()
    assert "\\begin{tabular}" in tex and "energy\\_uj" in tex
    # Pareto flags: per network, energy and accuracy; the 4-bit variant is cheaper, less
    # accurate: each network's front holds the cheapest point of each accuracy
    flags = csv[csv["pareto_acc_energy"]]
    for acc, group in csv.groupby("accuracy"):
        cheapest = group["energy_uj"].min()
        assert (flags[flags["accuracy"] == acc]["energy_uj"] == cheapest).all()


def test_differential_report(store: Path, tmp_path: Path) -> None:
    res = load_results([store])
    pts = res.points.sort_values("point_index")
    a = pts[(pts["workload"] == "tinynet") & (pts["pe_array.sparsity.weights"] == "none")
            & (pts["pe_array.rows"] == 4)].iloc[0]
    b = pts[(pts["workload"] == "tinynet") & (pts["pe_array.sparsity.weights"] == "skip")
            & (pts["pe_array.rows"] == 4)].iloc[0]
    diff, paths = write_diff([store], a["point_hash"][:8], b["point_hash"][:8], tmp_path)
    total = diff.iloc[-1]
    assert total["layer"] == "total"
    assert total["delta_energy_pj"] == pytest.approx(b["energy_pj"] - a["energy_pj"],
                                                     rel=1e-9)
    assert total["delta_total_cycles"] == b["total_cycles"] - a["total_cycles"]
    parts = sum(diff[f"delta_{g}_pj"] for g in GROUPS)
    np.testing.assert_allclose(parts, diff["delta_energy_pj"], rtol=1e-9, atol=1e-6)
    # c2 has half its weights zero: skipping them saves compute cycles there, nowhere else
    c2 = diff.set_index("layer").loc["c2"]
    assert c2["delta_compute_cycles"] < 0 and c2["delta_compute_pj"] < 0
    assert diff.set_index("layer").loc["c1", "delta_compute_cycles"] == 0
    assert [p.suffix for p in paths] == [".csv", ".md"]
    same, _ = write_diff([store], a["point_hash"][:8], a["point_hash"][:8])
    assert (same.filter(like="delta_").abs().to_numpy() == 0).all()
    with pytest.raises(ReportError, match="at least 6 characters"):
        res.point("ab")
    with pytest.raises(ReportError, match="no point hash starts with"):
        res.point("zzzzzzzz")


def test_cli_sweep_and_report(tmp_path: Path, store: Path) -> None:
    path = write_inputs(tmp_path, axes={"pe_array.rows": [4, 8]})
    runner = CliRunner()
    out = runner.invoke(main, ["sweep", str(path), "-o", str(tmp_path / "r"), "--workers", "0"])
    assert out.exit_code == 0, out.output
    assert "2 points: 0 already in" in out.output and "0 with errors" in out.output
    again = runner.invoke(main, ["sweep", str(path), "-o", str(tmp_path / "r"),
                                 "--workers", "0"])
    assert "2 points: 2 already in" in again.output
    rep = runner.invoke(main, ["report", str(tmp_path / "r"), str(store), "-o",
                               str(tmp_path / "rep"), "--format", "png"])
    assert rep.exit_code == 0, rep.output
    assert (tmp_path / "rep" / "roofline.png").stat().st_size > 10_000
    assert len(pd.read_csv(tmp_path / "rep" / "summary.csv")) == 2 + 8
    h = ResultStore.open(store).points()["point_hash"]
    d = runner.invoke(main, ["report", str(store), "--diff", h[0][:10], h[1][:10]])
    assert d.exit_code == 0, d.output
    assert re.search(r"energy [+-]\d", d.output) and "B - A per layer" in d.output
    bad = runner.invoke(main, ["report", str(tmp_path / "nope"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not an approxsim results store" in bad.output
    no_o = runner.invoke(main, ["report", str(store)])
    assert no_o.exit_code == 2 and "-o DIR" in no_o.output
    bad_sweep = tmp_path / "bad.yaml"
    bad_sweep.write_text(yaml.safe_dump({"name": "x", "arch": "tiny.yaml",
                                         "axes": {"pe_array.rowz": [1]},
                                         "workloads": ["tinynet.yaml"]}))
    err = runner.invoke(main, ["sweep", str(bad_sweep), "-o", str(tmp_path / "b")])
    assert err.exit_code == 2 and "axes.pe_array.rowz[0]" in err.output
    assert not (tmp_path / "b").exists()  # nothing is written for a bad sweep file
    assert math.isfinite(float(pd.read_csv(tmp_path / "rep" / "summary.csv")["energy_uj"][0]))


def test_columns_keep_one_dtype_across_parts(tmp_path: Path) -> None:
    """A part whose column is all empty (no point of it had an accuracy) must not turn the
    column into objects: the report would print the same store two ways."""
    store = ResultStore.create(tmp_path / "s", "test+0", "t")
    row = {"point_hash": "a" * 64, "point_index": 0, "sweep": "t", "network": "n",
           "workload": "w", "recipe": None, "accuracy": None, "accuracy_source": None,
           "error": None}
    store.append([row], [{}])
    store.append([{**row, "point_hash": "b" * 64, "point_index": 1, "accuracy": 0.5,
                   "accuracy_source": "x"}], [{}])
    pts = load_results([tmp_path / "s"]).points
    assert pts["accuracy"].dtype == np.float64 and np.isnan(pts["accuracy"][0])
    assert pts["accuracy_source"].tolist() == [None, "x"]


def test_tied_front_points_share_one_label(tmp_path: Path) -> None:
    """Points at the same position on a Pareto front (one recipe at equal cost on two
    architectures) get one label naming both, not two labels drawn over each other."""
    from simulator.reporting.figures import ACC_ENERGY, save, tradeoff

    df = pd.DataFrame({"recipe": ["a", "a", "b"], "arch": ["x", "y", "x"],
                       "accuracy": [0.9, 0.9, 0.5], "energy_uj": [1.0, 1.0, 2.0],
                       "latency_us": [1.0, 1.0, 1.0]})
    save(tradeoff(df, [ACC_ENERGY], "t", hue="recipe", style="arch"), tmp_path, "t", ("svg",))
    texts = svg_texts(tmp_path / "t.svg")
    assert "a / x, y" in texts
    assert not any(t in ("a / x", "a / y") for t in texts)
