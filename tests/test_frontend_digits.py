"""The digits pipeline end to end: train (tmp cache), compress, trace, read, simulate, CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from click.testing import CliRunner  # noqa: E402

from simulator import load_workload, read_trace, simulate, write_trace  # noqa: E402
from simulator.cli import main  # noqa: E402
from simulator.frontend import compress, load_model  # noqa: E402


def test_baseline_and_int8(digits: tuple[Any, Any]) -> None:
    model, data = digits
    res = compress(model, "int8", data, name="digits-lenet")
    acc = res.trace.accuracy
    assert acc is not None and acc.samples == 540 and "digits" in acc.dataset
    assert acc.baseline >= 0.95
    assert abs(acc.compressed - acc.baseline) <= 0.01
    conv1 = res.trace.workload.layers[0]
    assert (conv1.weight.bits, conv1.activation.bits) == (8, 8)


def test_cache_is_reused(digits: tuple[Any, Any], cache_dir: Path) -> None:
    model, _ = digits
    assert len(list(cache_dir.glob("digits_lenet_*.pt"))) == 1
    again, _, _ = load_model("digits-lenet", cache_dir=cache_dir)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_masks_equal_model_zeros_and_activations_equal_forward(digits: tuple[Any, Any]) -> None:
    model, data = digits
    res = compress(model, "prune50", data, name="digits-lenet")
    net = res.model
    layers = {la.name: la for la in res.trace.workload.layers}
    for name in ("conv1", "conv2", "fc1", "fc2"):
        w = net.get_submodule(name).weight.detach().numpy()
        assert np.array_equal(layers[name].weight.mask, w != 0)
        assert layers[name].weight.density == pytest.approx((w != 0).mean())
    # direct forward pass: the input of conv2 and fc1 over the calibration batch
    x = data.calibration
    with torch.no_grad():
        a_conv2 = net.pool1(torch.relu(net.conv1(x)))
        a_fc1 = net.pool2(torch.relu(net.conv2(a_conv2))).flatten(1)
    for name, act in (("conv2", a_conv2), ("fc1", a_fc1)):
        assert res.trace.calibration_density[name] == pytest.approx(
            float((act != 0).float().mean()), abs=1e-12)
        mask = layers[name].activation.mask
        assert any(np.array_equal(mask.reshape(-1), (a != 0).numpy().reshape(-1)) for a in act)
        assert layers[name].activation.density == pytest.approx(mask.mean())


@pytest.mark.parametrize("recipe", ["2of4", "filter-prune", "kmeans16", "lowrank", "ternary"])
def test_recipes_produce_runnable_traces(digits: tuple[Any, Any], recipe: str, tmp_path: Path,
                                         tiny_arch: Any) -> None:
    model, data = digits
    res = compress(model, recipe, data, name="digits-lenet")
    path = write_trace(res.trace, tmp_path / "trace")
    back = read_trace(path)
    names = [la.name for la in back.workload.layers]
    if recipe == "lowrank":
        assert {"conv2.0", "conv2.1", "fc1.0", "fc1.1"} <= set(names)
    if recipe == "2of4":
        fc1 = back.workload.layers[names.index("fc1")]
        groups = fc1.weight.mask.reshape(64, -1, 4)
        assert (groups.sum(axis=2) <= 2).all() and fc1.weight.structure == "2:4"
    if recipe == "kmeans16":
        assert all(la.weight.codebook_size == 16 for la in back.workload.layers
                   if la.kind == "gemm")
    report = simulate(tiny_arch(8, 8, "ws"), load_workload(path))
    assert len(report.layers) == len(names)
    assert res.trace.accuracy.compressed > 0.5


def test_cli_compress_and_run(digits: tuple[Any, Any], tmp_path: Path) -> None:
    out = tmp_path / "t.zip"
    runner = CliRunner()
    res = runner.invoke(main, ["compress", "digits-lenet", "int4", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "baseline" in res.output and out.is_file()
    res = runner.invoke(main, ["run", "arch_configs/edge_8x8.yaml", str(out)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("args", "match"), [
    (["digits-lenet", "nope-recipe"], "file not found"),
    (["no.such.module:make", "int8"], "cannot import"),
    (["missing.onnx", "int8"], "file not found"),
])
def test_cli_bad_input(args: list[str], match: str, tmp_path: Path,
                       digits: tuple[Any, Any]) -> None:
    res = CliRunner().invoke(main, ["compress", *args, "-o", str(tmp_path / "t")])
    assert res.exit_code == 2 and match in res.output
    assert not (tmp_path / "t").exists()


def test_layer_not_found_names_recipe_and_layer(digits: tuple[Any, Any], tmp_path: Path) -> None:
    from simulator.frontend import RecipeError, parse_recipe

    model, data = digits
    rec = parse_recipe({"name": "r", "steps": [{"method": "magnitude", "sparsity": 0.5,
                                                "layers": "fc9"}]}, source="r.yaml")
    with pytest.raises(RecipeError, match=r"(?s)r\.yaml.*steps\[0\]\.layers.*'fc9' not found"):
        compress(model, rec, data)


def test_untraceable_model(digits: tuple[Any, Any]) -> None:
    from simulator import SimulatorError
    from simulator.frontend import parse_recipe

    _, data = digits

    class Bad(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x: Any) -> Any:
            return self.fc(x)

    rec = parse_recipe({"name": "r", "steps": [{"method": "fixed_point", "bits": 8}]})
    with pytest.raises(SimulatorError, match="failed on the calibration batch"):
        compress(Bad(), rec, data)


def test_magnitude_mask_spreads_are_those_of_the_trained_fc1(digits: tuple[Any, Any]) -> None:
    """simulator.mapping.masks.MAGNITUDE_SIGMA is measured on this model's fc1 (a figure that
    drifts is a bug; analysis/row_lengths.py regenerates it and its comparison)."""
    from simulator.mapping.masks import MAGNITUDE_SIGMA, scale_spread

    model, _ = digits
    got = scale_spread(model.fc1.weight.detach().numpy())
    assert got == pytest.approx(MAGNITUDE_SIGMA, abs=6e-4)
