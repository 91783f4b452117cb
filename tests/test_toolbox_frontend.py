"""The toolbox's bundled recipes on the digits models end to end (short trainings): what each
method leaves in the model and the trace, and the cost side by side on an architecture."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from click.testing import CliRunner  # noqa: E402

from simulator import load_arch, simulate  # noqa: E402
from simulator.cli import main  # noqa: E402
from simulator.dynamic import exit_report  # noqa: E402
from simulator.files import read_yaml  # noqa: E402
from simulator.frontend import compress  # noqa: E402
from simulator.frontend.approximate import approximate  # noqa: E402
from simulator.frontend.compare import compare  # noqa: E402
from simulator.frontend.digits import digits_model  # noqa: E402
from simulator.frontend.recipe import BUNDLED_RECIPES, Recipe, parse_recipe  # noqa: E402
from simulator.frontend.structured import circulant_project  # noqa: E402
from simulator.workload.approx import FunctionApprox  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def short(name: str, epochs: int = 1, **step: Any) -> Recipe:
    """A bundled recipe with short trainings (fine-tuning and the steps' own epochs)."""
    raw = copy.deepcopy(read_yaml(BUNDLED_RECIPES / f"{name}.yaml"))
    if "finetune" in raw:
        raw["finetune"]["epochs"] = min(raw["finetune"].get("epochs", 0), epochs)
    for s in raw["steps"]:
        if "epochs" in s:
            s["epochs"] = epochs
        s.update(step)
    return parse_recipe(raw, source=f"{name}.yaml")


def arch(name: str) -> Any:
    return load_arch(REPO / "arch_configs" / f"{name}.yaml")


@pytest.fixture(scope="session")
def vit(cache_dir: Path) -> tuple[Any, Any]:
    return digits_model("digits-vit", cache_dir=cache_dir, epochs=8)


def test_circulant_weights_stay_circulant_and_cost_less_storage(digits: Any) -> None:
    model, data = digits
    res = compress(model, short("circulant4"), data, name="digits-lenet")
    layers = {la.name: la for la in res.trace.workload.layers}
    for name in ("conv2", "fc1"):
        assert (layers[name].weight.structure, layers[name].weight.block) == ("circulant", 4)
        w = res.model.get_submodule(name).weight.detach().numpy()
        rows = w.reshape(w.shape[0], -1).astype(np.float64)
        np.testing.assert_allclose(circulant_project(rows, 4), rows, atol=1e-6)  # fine-tuned
    assert layers["conv1"].weight.structure == "unstructured"
    cmp = compare(arch("edge_fft"), res)
    row = cmp.layers.set_index("layer").loc["conv2"]
    # conv2: K = 16 x 3 x 3 = 144, N = 32: 4608 weights -> 4608 / 4 = 1152 vectors' values
    assert (row["weights_before"], row["weights_after"]) == (4608, 1152)
    model_row = cmp.model.set_index("figure")
    assert model_row.at["top-1 accuracy", "compressed"] == res.trace.accuracy.compressed
    rep = simulate(arch("edge_fft"), res.trace.workload)
    assert rep.layers.set_index("layer").loc[["conv2", "fc1"], "unit"].tolist() == ["fft"] * 2


def test_lowrank_by_energy_budget_keeps_each_pair_within_it(digits: Any) -> None:
    model, data = digits
    res = compress(model, short("lowrank-energy", epochs=0), data, name="digits-lenet")
    assert any("ranks chosen by energy" in n for n in res.notes)
    cmp = compare(arch("edge_8x8"), res).layers.set_index("layer")
    for name in ("conv2", "fc1"):
        assert cmp.at[name, "became"] == f"{name}.0, {name}.1"  # the dense original beside
        assert cmp.at[name, "energy_uj_after"] <= 0.5 * cmp.at[name, "energy_uj_before"]
    assert cmp.at["conv1", "became"] == "conv1"


def test_lowrank_by_accuracy_budget(digits: Any) -> None:
    model, data = digits
    res = compress(model, short("lowrank-accuracy", epochs=0), data, name="digits-lenet")
    note = next(n for n in res.notes if "ranks chosen by top-1 drop" in n)
    base, joint = (float(v) for v in note.split("before fine-tuning: ")[1].split(")")[0]
                   .split(" -> "))
    assert base - joint <= 0.01 and "over the budget" not in note


def test_distilled_student_is_half_as_wide(digits: Any) -> None:
    model, data = digits
    res = compress(model, short("distill-half", epochs=3), data, name="digits-lenet")
    net = res.model
    assert (net.conv1.out_channels, net.conv2.out_channels, net.fc1.out_features,
            net.fc2.out_features) == (8, 16, 32, 10)
    acc = res.trace.accuracy
    assert acc.baseline == pytest.approx(0.9815, abs=1e-4) and 0.2 < acc.compressed <= 1.0
    names = [la.name for la in res.trace.workload.layers]
    assert names == [la.name for la in res.baseline.workload.layers]  # side by side by name
    cmp = compare(arch("edge_8x8"), res).model.set_index("figure")
    assert cmp.at["stored weights", "compressed"] < 0.5 * cmp.at["stored weights", "baseline"]


def test_activation_functions_are_approximated_in_place(vit: Any) -> None:
    model, data = vit
    res = compress(model, short("pwl16"), data, name="digits-vit")
    fns = {la.name: la.approx for la in res.trace.workload.layers if la.approx is not None}
    assert {a.function for a in fns.values()} == {"layernorm", "softmax", "gelu"}
    assert fns["ln1"].row == 32 and fns["softmax"].row == 16 and fns["gelu"].row is None
    with torch.no_grad():
        assert not torch.equal(res.model(data.x_test[:8]), model(data.x_test[:8]))
    rep = simulate(arch("edge_8x8"), res.trace.workload).actions
    assert (rep["action"] == "lut_read_bit").any()


def test_measured_accuracy_is_the_approximated_network_s(cache_dir: Path) -> None:
    """The long way: the tanh LeNet's forward pass written out with the 4-segment tanh in
    every activation gives exactly the accuracy the frontend measured."""
    model, data = digits_model("digits-lenet-tanh", cache_dir=cache_dir, epochs=5)
    res = compress(model, parse_recipe({"name": "p", "steps": [
        {"method": "pwl", "segments": 4, "bits": 8}]}), data)
    f = approximate(FunctionApprox("tanh", "pwl", 4, 8, -4.0, 4.0))

    def act(t: Any) -> Any:
        return torch.from_numpy(np.ascontiguousarray(f(t.numpy().astype(np.float64)),
                                                     dtype=np.float32))

    m = model
    with torch.no_grad():
        h = m.pool1(act(m.conv1(data.x_test)))
        h = m.pool2(act(m.conv2(h))).flatten(1)
        pred = m.fc2(act(m.fc1(h))).argmax(1)
    assert res.trace.accuracy.compressed == float((pred == data.y_test).double().mean())
    assert res.trace.accuracy.compressed != res.trace.accuracy.baseline


def test_early_exit_rates_and_expected_cost(digits: Any) -> None:
    model, data = digits
    res = compress(model, short("early-exit", epochs=3), data, name="digits-lenet")
    plan = res.trace.workload.exits
    assert plan is not None and plan.names == ("exit0.fc", "fc2")
    assert plan.head_layers == (("exit0.pool.0", "exit0.fc"),)
    assert all(sum(r) == pytest.approx(1.0) for r in plan.rates)
    assert plan.thresholds[plan.operating] == 0.4
    assert res.trace.accuracy.compressed == plan.accuracy[plan.operating]
    er = exit_report(simulate(arch("edge_8x8"), res.trace.workload), res.trace.workload)
    t = er.thresholds
    # a larger entropy threshold lets more samples leave early: cheaper on average
    assert t["mean_cycles"].is_monotonic_decreasing


def test_sample_masks_and_adaptive_precision_reach_the_trace(digits: Any, tmp_path: Path) -> None:
    model, data = digits
    res = compress(model, short("sample-masks", samples=4), data, name="digits-lenet")
    conv2 = next(la for la in res.trace.workload.layers if la.name == "conv2")
    assert conv2.activation.mask_set is not None and conv2.activation.mask_set.shape == (
        4, 16, 4, 4)
    assert np.array_equal(conv2.activation.mask_set[0], conv2.activation.mask)
    res = compress(model, short("adaptive-precision"), data, name="digits-lenet")
    for la in res.trace.workload.layers:
        if la.kind == "gemm":
            fb = la.weight.filter_bits
            assert fb is not None and len(fb) == la.N * la.count and la.weight.bits == max(fb)
            assert set(fb) <= {2, 3, 4, 5, 6, 8}
    assert any("adaptive_precision): tolerance" in n for n in res.notes)


def test_binary_network_end_to_end_on_xnor_and_int8_arrays(digits: Any) -> None:
    model, data = digits
    res = compress(model, short("xnor"), data, name="digits-lenet")
    bits = {la.name: (la.weight.bits, la.activation.bits) for la in res.trace.workload.layers
            if la.kind == "gemm"}
    assert bits == {"conv1": (8, 8), "conv2": (1, 1), "fc1": (1, 1), "fc2": (8, 8)}
    rep = simulate(arch("edge_xnor_int8"), res.trace.workload)
    units = rep.layers.set_index("layer")["unit"]
    assert units[["conv1", "conv2", "fc1", "fc2"]].tolist() == ["int8", "xnor", "xnor", "int8"]
    assert set(rep.units["unit"]) == {"int8", "xnor", "vector_unit"}


def test_dynamic_fixed_point_weights_sit_on_a_power_of_two_grid(digits: Any) -> None:
    model, data = digits
    res = compress(model, short("dynamic-fixed8"), data, name="digits-lenet")
    for name in ("conv1", "fc2"):
        w = res.model.get_submodule(name).weight.detach().double().numpy()
        step = 2.0 ** np.ceil(np.log2(np.abs(w).max())) / 128  # 2^(il - 1) / 2^7
        np.testing.assert_allclose(w / step, np.round(w / step), atol=1e-6)


def test_cli_compress_prints_cost_side_by_side_and_run_prints_the_extras(
        digits: Any, tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["compress", "digits-lenet", "early-exit", "--no-finetune",
                               "--arch", str(REPO / "arch_configs" / "edge_8x8.yaml"),
                               "-o", str(tmp_path / "t")])
    assert out.exit_code == 0, out.output
    assert "per layer on edge_8x8" in out.output and "cycles per inference" in out.output
    out = runner.invoke(main, ["run", str(REPO / "arch_configs" / "edge_8x8.yaml"),
                               str(tmp_path / "t")])
    assert out.exit_code == 0, out.output
    assert "early exits" in out.output and "exit distribution" in out.output
