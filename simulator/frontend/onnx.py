"""ONNX importer: graph, shape inference and initializers -> network-spec layers.

``Conv`` (grouped and depthwise), ``Gemm`` and ``MatMul`` (a constant right operand is a
linear layer, else a batched matmul), ``MaxPool``, ``AveragePool`` and ``GlobalAveragePool``
become layers; every other node is reported in ``notes`` by op type (never silently dropped).
Shapes come from ``onnx.shape_inference``; a layer input whose shape is unknown or symbolic
(a dynamic batch, say) is an error unless ``input_shapes`` fixes the graph inputs.
Compression applies the recipe's weight methods (prune, share, quantise) to the initializers
in numpy; without a runtime there is no accuracy and no activation zeros (density 1).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import SimulatorError
from simulator.frontend._deps import require
from simulator.frontend.imported import ImportedLayer, ImportResult
from simulator.frontend.recipe import Recipe, RecipeError
from simulator.frontend.trace_builder import CompressionResult, build_trace, record_fields
from simulator.workload.geometry import compact

LAYER_OPS = ("Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool")


class OnnxImportError(SimulatorError):
    """An ONNX file cannot be loaded or has a layer this importer cannot describe."""


def _attrs(node: Any) -> dict[str, Any]:
    onnx = require("onnx")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def import_onnx(path: str | Path, input_shapes: dict[str, list[int]] | None = None
                ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[str]]:
    """(layer specs, weight arrays by layer name, notes) of an ONNX model, for batch 1."""
    onnx = require("onnx")
    from onnx import numpy_helper, shape_inference

    src = str(path)
    try:
        model = onnx.load(src)
        for inp in model.graph.input:
            if input_shapes and inp.name in input_shapes:
                dims = inp.type.tensor_type.shape.dim
                for d, v in zip(dims, input_shapes[inp.name], strict=True):
                    d.ClearField("dim_param")
                    d.dim_value = v
        model = shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # protobuf / onnx raise many types
        raise OnnxImportError(f"{src}: cannot load or infer shapes: {type(exc).__name__}: "
                              f"{exc}") from None
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    shapes: dict[str, list[int | str]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                           for d in vi.type.tensor_type.shape.dim]

    def shape_of(node: Any, name: str) -> list[int]:
        if name in inits:
            return list(inits[name].shape)
        s = shapes.get(name)
        if s is None or any(not isinstance(d, int) or d <= 0 for d in s):
            raise OnnxImportError(f"{src}: node {node.name or node.op_type!r} input {name!r}: "
                                  f"shape {s} is unknown or dynamic; fix it with input_shapes")
        return [int(d) for d in s]

    specs: list[dict[str, Any]] = []
    weights: dict[str, np.ndarray] = {}
    other: Counter[str] = Counter()
    for i, node in enumerate(g.node):
        name = node.name or f"{node.op_type.lower()}_{i}"
        a = _attrs(node)
        if node.op_type == "Conv":
            x, w = shape_of(node, node.input[0]), inits.get(node.input[1])
            if w is None or len(x) != 4:
                raise OnnxImportError(f"{src}: node {name!r}: only 2-D Conv with constant "
                                      f"weights is supported")
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if pads[:2] != pads[2:]:
                raise OnnxImportError(f"{src}: node {name!r}: asymmetric pads {pads}")
            specs.append({"name": name, "op": "conv2d", "in_channels": x[1],
                          "out_channels": int(w.shape[0]), "in_h": x[2], "in_w": x[3],
                          "kernel": compact(list(w.shape[2:])),
                          "stride": compact(list(a.get("strides", [1, 1]))),
                          "padding": compact(pads[:2]),
                          "dilation": compact(list(a.get("dilations", [1, 1]))),
                          "groups": int(a.get("group", 1))})
            weights[name] = w
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in inits:
            w = inits[node.input[1]]
            if node.op_type == "Gemm" and a.get("transA", 0):
                raise OnnxImportError(f"{src}: node {name!r}: Gemm with transA is not supported")
            w = w if node.op_type == "Gemm" and a.get("transB", 0) else w.T  # -> (out, in)
            x = shape_of(node, node.input[0])
            tokens = int(np.prod(x[1:-1])) if len(x) > 2 else 1
            specs.append({"name": name, "op": "linear", "in_features": int(w.shape[1]),
                          "out_features": int(w.shape[0]), "tokens": tokens})
            weights[name] = np.ascontiguousarray(w)
        elif node.op_type == "MatMul":
            x, y = shape_of(node, node.input[0]), shape_of(node, node.input[1])
            specs.append({"name": name, "op": "matmul", "M": x[-2], "K": x[-1], "N": y[-1],
                          "batch": int(np.prod(x[:-2])) if len(x) > 2 else 1})
        elif node.op_type in ("MaxPool", "AveragePool"):
            x = shape_of(node, node.input[0])
            pads = list(a.get("pads", [0, 0, 0, 0]))
            specs.append({"name": name, "op": "maxpool" if node.op_type == "MaxPool"
                          else "avgpool", "channels": x[1], "in_h": x[2], "in_w": x[3],
                          "kernel": compact(list(a["kernel_shape"])),
                          "stride": compact(list(a.get("strides", a["kernel_shape"]))),
                          "padding": compact(pads[:2])})
        elif node.op_type == "GlobalAveragePool":
            x = shape_of(node, node.input[0])
            specs.append({"name": name, "op": "global_avgpool", "channels": x[1],
                          "in_h": x[2], "in_w": x[3]})
        else:
            other[node.op_type] += 1
    notes = [f"not simulated (fused or no compute): {op} x{n}" for op, n in sorted(other.items())]
    if not specs:
        raise OnnxImportError(f"{src}: no Conv, Gemm or MatMul node found")
    return specs, weights, notes


def compress_onnx(path: str | Path, recipe: Recipe,
                  input_shapes: dict[str, list[int]] | None = None) -> CompressionResult:
    """Apply ``recipe``'s weight methods to an ONNX model's initializers; return the result."""
    specs, weights, notes = import_onnx(path, input_shapes)
    info: dict[str, dict[str, Any]] = {}
    compressed = {k: v.astype(np.float32).copy() for k, v in weights.items()}
    for step in recipe.steps:
        if step.method.stage in ("lowrank", "activation"):
            raise RecipeError(recipe.source, [(f"{step.path}.method", f"{step.method.name!r} "
                                               f"needs a PyTorch model (ONNX is weights-only)")])
        for n in step.targets(list(compressed), recipe.source):
            out = step.method.fn(compressed[n], step.params)
            compressed[n] = out.weight
            record_fields(info, n, out)
    name = Path(path).stem

    def imported(ws: dict[str, np.ndarray]) -> ImportResult:
        return ImportResult([ImportedLayer(s["name"], s, 1.0, None, ws.get(s["name"]))
                             for s in specs], notes)

    before = build_trace(imported(weights), name, "onnx", {}, {}, None, None)
    after = build_trace(imported(compressed), name, "onnx", info, {}, recipe, None)
    return CompressionResult(after, before, None, notes)
