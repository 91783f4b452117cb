"""ONNX importer and compression (onnxruntime): every gap of issue 13 as a test on a small
model built here (exported from PyTorch or written with onnx.helper), no downloads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from simulator import SimulatorError  # noqa: E402
from simulator.frontend.digits import DigitsLeNet  # noqa: E402
from simulator.frontend.onnx import compress_onnx, import_onnx  # noqa: E402
from simulator.frontend.recipe import RecipeError, load_recipe  # noqa: E402
from simulator.frontend.torch import import_torch  # noqa: E402
from simulator.workload.spec import parse_network  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # legacy exporter
RECIPES = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "workloads"
                                  / "recipes").glob("*.yaml"))


def _export(tmp_path: Path, model: Any = None, shape: tuple[int, ...] = (1, 1, 8, 8),
            dynamic: bool = False, name: str = "m") -> Path:
    torch.manual_seed(0)
    model = (model or DigitsLeNet()).eval()
    path = tmp_path / f"{name}.onnx"
    kw = {"dynamic_axes": {"x": {0: "batch"}}} if dynamic else {}
    torch.onnx.export(model, (torch.zeros(*shape),), str(path), dynamo=False,
                      input_names=["x"], **kw)
    return path


def _macs(specs: list[dict[str, Any]]) -> int:
    return parse_network({"name": "m", "layers": specs}).macs


def _ort_shape(path: Path, feed: np.ndarray) -> tuple[int, ...]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return tuple(sess.run(None, {sess.get_inputs()[0].name: feed})[0].shape)


def _save(tmp_path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any],
          inits: list[Any], name: str = "g", opset: int = 19) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def test_same_layers_as_torch(tmp_path: Path) -> None:
    m = import_onnx(_export(tmp_path))
    torch.manual_seed(0)
    ref = import_torch(DigitsLeNet().eval(), torch.zeros(2, 1, 8, 8))
    strip = [{k: v for k, v in s.items() if k != "name"} for s in m.specs]
    assert strip == [{k: v for k, v in la.spec.items() if k != "name"} for la in ref.layers]
    assert next(iter(m.weights.values())).shape == (16, 1, 3, 3)


def test_linear_rows_are_all_leading_dimensions(tmp_path: Path) -> None:
    # a (5, 16) token matrix through Linear(16, 32): 5 rows, not 1 (ViT's (197, 768))
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    m = import_onnx(_export(tmp_path, model, (1, 5, 16)))
    lin = [s for s in m.specs if s["op"] == "linear"]
    assert [s["tokens"] for s in lin] == [5, 5]
    assert _macs(m.specs) == 5 * 16 * 32 + 5 * 32 * 8


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad(tmp_path: Path, mode: str) -> None:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    path = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=mode,
                                             strides=[2, 2])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w], mode)
    out = _ort_shape(path, np.zeros((1, 3, 8, 8), np.float32))  # SAME: 4x4, VALID: 3x3
    m = import_onnx(path)
    assert _macs(m.specs) == out[2] * out[3] * 4 * 27


def test_ceil_mode_pool(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3],
                                             strides=[2, 2], ceil_mode=1)],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 16, 16])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [], "pool")
    with pytest.raises(SimulatorError, match="no Conv"):
        import_onnx(path)  # a pool alone is no model; the layer itself:
    from simulator.frontend.onnx_graph import _Graph, load_graph
    from simulator.frontend.onnx_nodes import walk

    model = load_graph(path)
    spec = walk(_Graph(model, "pool"), model).specs[0]
    low = parse_network({"name": "p", "layers": [spec]}).layers[0]
    out = _ort_shape(path, np.zeros((1, 2, 16, 16), np.float32))  # (1, 2, 8, 8): ceil
    assert low.ofmap_elements == int(np.prod(out))


def _quantised(tmp_path: Path, fmt: str) -> tuple[Path, Path]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    src = _export(tmp_path, name="float")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"x": np.random.default_rng(i).random((1, 1, 8, 8),
                                                                     np.float32)}
                               for i in range(4)])

        def get_next(self) -> Any:
            return next(self.items, None)

    out = tmp_path / f"q_{fmt}.onnx"
    if fmt == "dynamic":
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
    else:
        quantize_static(str(src), str(out), Reader(), quant_format=getattr(QuantFormat, fmt),
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return src, out


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator", "dynamic"])
def test_quantised_onnx_models_keep_their_layers_and_bits(tmp_path: Path, fmt: str) -> None:
    src, q = _quantised(tmp_path, fmt)
    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    expect = {"QDQ": "DequantizeLinear", "QOperator": "QLinearConv",
              "dynamic": "MatMulInteger"}[fmt]
    assert expect in ops
    ref, m = import_onnx(src), import_onnx(q)
    assert _macs(m.specs) == _macs(ref.specs)
    gemms = [s["name"] for s in m.specs if s["op"] in ("conv2d", "linear")]
    assert len(gemms) == 4
    quant = [n for n in gemms if m.fields.get(n, {}).get("bits") == 8]
    assert quant and (fmt == "dynamic" or len(quant) == 4)
    if fmt != "dynamic":
        assert all(m.act_bits.get(n) == 8 for n in gemms)


def test_qonnx_quant_and_bipolar_nodes_give_the_bits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.float32(0.1), "s"),
             numpy_helper.from_array(np.float32(0.0), "z"),
             numpy_helper.from_array(np.float32(4.0), "b"),
             numpy_helper.from_array(rng.standard_normal((8, 36)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Quant", ["w", "s", "z", "b"], ["wq"],
                              domain="qonnx.custom_op.general", signed=1, narrow=0),
             helper.make_node("Conv", ["x", "wq"], ["c"]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("BipolarQuant", ["w2", "s"], ["w2q"],
                              domain="qonnx.custom_op.general"),
             helper.make_node("Gemm", ["f", "w2q"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "qonnx", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 5, 5])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid(
                                                        "qonnx.custom_op.general", 1)])
    path = tmp_path / "qonnx.onnx"
    onnx.save(model, str(path))
    m = import_onnx(path)
    conv, fc = (s["name"] for s in m.specs if s["op"] in ("conv2d", "linear"))
    assert (m.fields[conv]["bits"], m.fields[fc]["bits"]) == (4, 1)
    # 4-bit signed levels -8..7 times 0.1
    assert set(np.round(np.unique(m.weights[conv]) / 0.1).astype(int)) <= set(range(-8, 8))
    assert _macs(m.specs) == 9 * 4 * 27 + 36 * 8


def test_dynamic_shapes_name_the_cli_option(tmp_path: Path) -> None:
    path = _export(tmp_path, dynamic=True)
    with pytest.raises(SimulatorError, match=r"(?s)m\.onnx.*dynamic.*--input-shape"):
        import_onnx(path)
    assert import_onnx(path, input_shapes={"x": [1, 1, 8, 8]}).specs[0]["in_h"] == 8
    from click.testing import CliRunner

    from simulator.cli import main

    res = CliRunner().invoke(main, ["compress", str(path), "int8", "-o", str(tmp_path / "t"),
                                    "--input-shape", "x=1,1,8,8"])
    assert res.exit_code == 0, res.output


def test_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(SimulatorError, match=r"bad\.onnx: cannot load"):
        import_onnx(bad)


def test_int8_on_onnx_quantises_activations_with_onnxruntime(tmp_path: Path) -> None:
    res = compress_onnx(_export(tmp_path), load_recipe("int8"),
                        calibration=np.random.default_rng(0).random((8, 1, 8, 8), np.float32))
    gemms = [la for la in res.trace.workload.layers if la.kind == "gemm"]
    assert all(la.weight.bits == 8 and la.activation.bits == 8 for la in gemms)
    acc = res.trace.accuracy
    assert acc is not None and acc.samples == 8 and acc.agreement is not None
    assert 0.9 < acc.output_cosine <= 1.0 and acc.warning  # 8 samples: warned
    # measured densities: conv2's input is after a ReLU and a max-pool, not all nonzero
    assert gemms[1].activation.density < 1.0 and gemms[1].activation.mask is not None


def test_accuracy_with_a_labelled_test_set(tmp_path: Path) -> None:
    x = np.random.default_rng(1).random((6, 1, 8, 8), np.float32)
    res = compress_onnx(_export(tmp_path), load_recipe("int4"), test=(x, np.arange(6) % 10))
    acc = res.trace.accuracy
    assert acc is not None and acc.baseline is not None and acc.samples == 6


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_bundled_recipe_works_on_onnx_or_says_why(tmp_path: Path, recipe: str) -> None:
    rec = load_recipe(recipe)
    path = _export(tmp_path)
    if rec.finetune.epochs > 0:
        with pytest.raises(RecipeError, match=r"finetune.*fine-tuning need a PyTorch model"):
            compress_onnx(path, rec)
        import dataclasses

        rec = dataclasses.replace(rec, finetune=rec.finetune.model_copy(update={"epochs": 0}))
    if any(s.method.stage == "lowrank" or s.method.model_level or s.method.name == "act_binary"
           for s in rec.steps):
        with pytest.raises(RecipeError, match="needs a PyTorch model"):
            compress_onnx(path, rec)
        return
    res = compress_onnx(path, rec)
    assert res.trace.recipe is not None and res.trace.accuracy is not None


def test_onnx_route_needs_no_torch(tmp_path: Path) -> None:
    path = _export(tmp_path)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from simulator.frontend.onnx import compress_onnx\n"
            "from simulator.frontend.recipe import load_recipe\n"
            f"r = compress_onnx({str(path)!r}, load_recipe('prune50').__class__("
            "**{**load_recipe('int8').__dict__}) if False else load_recipe('int8'))\n"
            "print(len(r.trace.workload.layers))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) == 9
