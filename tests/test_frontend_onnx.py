"""ONNX importer: a model exported from PyTorch gives the same layers and dims as the torch path."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from simulator import SimulatorError  # noqa: E402
from simulator.frontend.digits import DigitsLeNet  # noqa: E402
from simulator.frontend.onnx import compress_onnx, import_onnx  # noqa: E402
from simulator.frontend.recipe import parse_recipe  # noqa: E402
from simulator.frontend.torch import import_torch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # legacy exporter


def _export(tmp_path: Path, dynamic: bool = False) -> Path:
    torch.manual_seed(0)
    model = DigitsLeNet().eval()
    path = tmp_path / "lenet.onnx"
    kw = {"dynamic_axes": {"x": {0: "batch"}}} if dynamic else {}
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False,
                      input_names=["x"], **kw)
    return path


def test_same_layers_as_torch(tmp_path: Path) -> None:
    path = _export(tmp_path)
    specs, weights, notes = import_onnx(path)
    torch.manual_seed(0)
    ref = import_torch(DigitsLeNet().eval(), torch.zeros(2, 1, 8, 8))
    strip = [{k: v for k, v in s.items() if k != "name"} for s in specs]
    assert strip == [{k: v for k, v in la.spec.items() if k != "name"} for la in ref.layers]
    assert any("Relu x3" in n for n in notes)
    conv_w = next(w for s, w in zip(specs, weights.values(), strict=False)
                  if s["op"] == "conv2d")
    assert conv_w.shape == (16, 1, 3, 3)


def test_dynamic_shapes_need_fixing(tmp_path: Path) -> None:
    path = _export(tmp_path, dynamic=True)
    with pytest.raises(SimulatorError, match=r"(?s)lenet\.onnx.*dynamic"):
        import_onnx(path)
    specs, _, _ = import_onnx(path, input_shapes={"x": [1, 1, 8, 8]})
    assert specs[0]["in_h"] == 8


def test_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(SimulatorError, match=r"bad\.onnx: cannot load"):
        import_onnx(bad)


def test_compress_onnx_prunes_initializers(tmp_path: Path) -> None:
    rec = parse_recipe({"name": "p", "steps": [{"method": "magnitude", "sparsity": 0.5}]})
    res = compress_onnx(_export(tmp_path), rec)
    gemms = [la for la in res.trace.workload.layers if la.kind == "gemm"]
    assert all(la.weight.density == pytest.approx(0.5, abs=0.01) for la in gemms)


def test_cli_compress_onnx(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from simulator.cli import main

    rec = tmp_path / "r.yaml"
    rec.write_text("name: r\nsteps:\n  - {method: fixed_point, bits: 4}\n")
    res = CliRunner().invoke(main, ["compress", str(_export(tmp_path)), str(rec), "-o",
                                    str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "t" / "manifest.yaml").is_file()
