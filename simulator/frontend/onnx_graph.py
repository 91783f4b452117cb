"""ONNX importer, the graph: shape inference, constants and quantisation (torch-free).

The rules of the whole importer (:mod:`simulator.frontend.onnx`):

Layers: ``Conv`` / ``ConvInteger`` / ``QLinearConv`` (2-D, grouped, depthwise; 1-D as a 1 x L
image), ``Gemm`` / ``MatMul`` / ``MatMulInteger`` / ``QLinearMatMul`` with a constant operand (a
linear layer whose rows are *all* leading dimensions of the input: ``(197, 768)`` is 197 tokens),
else a batched matmul; ``MaxPool`` / ``AveragePool`` (``ceil_mode``) and
``GlobalAveragePool``; element-wise and reduction ops become vector layers with the counts of
:mod:`simulator.frontend.aten` (never dropped). ``auto_pad`` (``SAME_UPPER``, ``SAME_LOWER``,
``VALID``) and explicit pads are applied as ONNX defines them; an asymmetric pad is modelled as
the smaller pad on both sides plus the extra row / column as part of the input, which keeps
the output size and MACs exact (the ifmap reads one padding line more).

**Constants** are initializers, ``Constant`` nodes and what ``Identity``, ``Cast``,
``Transpose``, ``Reshape``, ``DequantizeLinear``, ``QuantizeLinear``, ``Clip`` and QONNX
``Quant`` / ``BipolarQuant`` make of them, so weights in QDQ, QCDQ and QONNX graphs resolve, with
their bits: the integer type's width (int8 8, int4 4), QONNX's ``bitwidth`` input,
``ceil(log2(levels))`` of a QCDQ clip range, 1 for bipolar. A layer whose input comes from a
``DequantizeLinear`` / ``Quant`` gets those activation bits; the quantisation nodes themselves
are markers of the integer arithmetic of the next layer (listed, not simulated). Nodes whose
inputs are all constants are computed once (shape arithmetic), not per inference.

Shapes come from ``onnx.shape_inference``; a symbolic or unknown dimension (a dynamic batch) is
an error that names the input to fix with ``--input-shape NAME=DIMS`` (``input_shapes=``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import SimulatorError
from simulator.frontend._deps import require
from simulator.frontend.aten import vector_op
from simulator.frontend.imported import ImportedLayer, ImportResult
from simulator.workload.geometry import compact

#: ONNX op -> the ATen-table name whose vector count it has (:mod:`simulator.frontend.aten`)
VECTOR = {"Relu": "relu", "LeakyRelu": "leaky_relu", "Add": "add", "Sub": "sub", "Mul": "mul",
          "Div": "div", "Neg": "neg", "Abs": "abs", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
          "Reciprocal": "reciprocal", "Pow": "pow", "Tanh": "tanh", "Sigmoid": "sigmoid",
          "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish", "Elu": "elu",
          "Softplus": "softplus", "Erf": "erf", "Gelu": "gelu", "Softmax": "_softmax",
          "LogSoftmax": "_log_softmax", "LayerNormalization": "native_layer_norm",
          "BatchNormalization": "native_batch_norm", "GroupNormalization": "native_group_norm",
          "InstanceNormalization": "native_group_norm", "ReduceMean": "mean",
          "ReduceSum": "sum", "ReduceMax": "amax", "ReduceMin": "amin", "ArgMax": "argmax",
          "Clip": "clamp", "Where": "where", "Equal": "eq", "Greater": "gt", "Less": "lt",
          "Max": "maximum", "Min": "minimum", "Concat": "cat", "Transpose": "copy",
          "Gather": "embedding", "GatherElements": "gather", "Pad": "constant_pad_nd",
          "Cast": "copy", "Tile": "repeat", "Sin": "sin", "Cos": "cos", "Not": "logical_not",
          "Resize": "copy", "Upsample": "copy", "CumSum": "cumsum", "Mish": "mish",
          "Round": "round", "Floor": "floor", "Ceil": "ceil", "Sign": "sign", "Mod": "fmod",
          # onnxruntime's QOperator contrib ops (com.microsoft)
          "QLinearAdd": "add", "QLinearMul": "mul", "QLinearSigmoid": "sigmoid",
          "QLinearLeakyRelu": "leaky_relu", "QLinearConcat": "cat", "QLinearSoftmax": "_softmax"}
#: nodes that only re-view or describe tensors
VIEWS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Size",
                   "Constant", "ConstantOfShape", "Range", "Dropout", "Slice", "Split",
                   "Expand"})
QUANT_MARKERS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                           "Quant", "BipolarQuant", "Trunc"})
_INT_BITS = {"int8": 8, "uint8": 8, "int16": 16, "uint16": 16, "int32": 32, "int4": 4,
             "uint4": 4}


class OnnxImportError(SimulatorError):
    """An ONNX file cannot be loaded or has a layer this importer cannot describe."""


@dataclass
class Const:
    """A constant tensor and the bits it is stored at (None: a float)."""

    value: np.ndarray
    bits: int | None = None


@dataclass
class OnnxModel:
    """What :func:`import_onnx` found: layers in graph order, their weights and notes."""

    specs: list[dict[str, Any]]
    weights: dict[str, np.ndarray]
    notes: list[str]
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    act_bits: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # layer -> its left operand tensor
    weight_inputs: dict[str, str] = field(default_factory=dict)  # layer -> weight tensor name
    node_index: dict[str, int] = field(default_factory=dict)  # layer -> its node in the graph
    weight_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # as stored
    proto: Any = None

    def proto_weight_shape(self, name: str) -> tuple[int, ...]:
        return self.weight_shapes[name]

    def result(self, weights: dict[str, np.ndarray] | None = None,
               densities: dict[str, float] | None = None,
               masks: dict[str, np.ndarray] | None = None) -> ImportResult:
        ws = self.weights if weights is None else weights
        dens, ms = densities or {}, masks or {}
        return ImportResult([ImportedLayer(s["name"], s, dens.get(s["name"], 1.0),
                                           ms.get(s["name"]), ws.get(s["name"]),
                                           param=s["name"] if s["name"] in ws else None,
                                           fields=dict(self.fields.get(s["name"], {})),
                                           act_bits=self.act_bits.get(s["name"]))
                             for s in self.specs], list(self.notes))


def _attrs(node: Any) -> dict[str, Any]:
    onnx = require("onnx")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_graph(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> Any:
    """The model with fixed input shapes and inferred shapes (an :class:`OnnxImportError`
    naming the file otherwise)."""
    onnx = require("onnx")
    src = str(path)
    try:
        model = onnx.load(src)
        names = {i.name for i in model.graph.input}
        unknown = sorted(set(input_shapes or {}) - names)
        if unknown:
            raise OnnxImportError(f"{src}: --input-shape names {unknown}, but the graph's "
                                  f"inputs are {sorted(names)}")
        for inp in model.graph.input:
            if input_shapes and inp.name in input_shapes:
                dims = inp.type.tensor_type.shape.dim
                if len(dims) != len(input_shapes[inp.name]):
                    raise OnnxImportError(f"{src}: --input-shape {inp.name}: the input has "
                                          f"{len(dims)} dimensions, got "
                                          f"{input_shapes[inp.name]}")
                for d, v in zip(dims, input_shapes[inp.name], strict=True):
                    d.ClearField("dim_param")
                    d.dim_value = v
        return _run_shapes(onnx.shape_inference.infer_shapes(model))
    except OnnxImportError:
        raise
    except Exception as exc:  # protobuf / onnx raise many types
        raise OnnxImportError(f"{src}: cannot load or infer shapes: {type(exc).__name__}: "
                              f"{exc}") from None


def _run_shapes(model: Any) -> Any:
    """Shapes ONNX's inference cannot give (onnxruntime's contrib ops, e.g. ``QGemm``), read
    from one onnxruntime run on zero inputs, when the inputs are static and onnxruntime is
    installed; the model is returned unchanged otherwise."""
    import copy
    import importlib.util

    from onnx import helper

    g = model.graph
    known = {vi.name for vi in [*g.input, *g.value_info, *g.output]
             if vi.type.tensor_type.HasField("shape")}
    inits = {t.name for t in g.initializer}
    missing = [o for n in g.node for o in n.output if o and o not in known]
    inputs = [i for i in g.input if i.name not in inits]
    static = all(d.HasField("dim_value") for i in inputs for d in i.type.tensor_type.shape.dim)
    if not missing or not static or importlib.util.find_spec("onnxruntime") is None:
        return model
    import onnxruntime as ort

    probe = copy.deepcopy(model)
    for name in missing:
        probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(probe.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        feed = {i.name: np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim],
                                 helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
                for i in inputs}
        outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed),
                        strict=True))
    except Exception:
        return model
    for name in missing:
        v = np.asarray(outs[name])
        elem = helper.np_dtype_to_tensor_dtype(v.dtype) if v.dtype.kind != "O" else 1
        g.value_info.append(helper.make_tensor_value_info(name, elem, list(v.shape)))
    return model


class _Graph:
    def __init__(self, model: Any, src: str) -> None:
        from onnx import numpy_helper

        self.src = src
        g = model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.shapes: dict[str, list[int | str]] = {}
        for vi in [*g.input, *g.value_info, *g.output]:
            self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value")
                                    else (d.dim_param or "?")
                                    for d in vi.type.tensor_type.shape.dim]
        self.inputs = [i.name for i in g.input if i.name not in self.inits]
        self._const: dict[str, Const | None] = {}

    def const(self, name: str) -> Const | None:
        """The constant ``name`` evaluates to (module docstring), or None."""
        if name == "":
            return None
        if name not in self._const:
            self._const[name] = self._eval(name)
        return self._const[name]

    def _eval(self, name: str) -> Const | None:
        if name in self.inits:
            init = self.inits[name]
            return Const(init, _INT_BITS.get(init.dtype.name))
        node = self.producer.get(name)
        if node is None:
            return None
        a, op = _attrs(node), node.op_type
        if op == "Constant":
            from onnx import numpy_helper

            t = a.get("value")
            return Const(numpy_helper.to_array(t)) if t is not None else None
        args = [self.const(i) for i in node.input]
        if any(x is None for i, x in zip(node.input, args, strict=True) if i):
            return None
        v: list[Any] = [x.value if x is not None else None for x in args]
        first = args[0]
        assert first is not None
        if op in ("Identity", "Cast"):
            return Const(v[0].astype(np.float32) if op == "Cast" else v[0], first.bits)
        if op == "Transpose":
            return Const(np.transpose(v[0], a.get("perm")), first.bits)
        if op == "Reshape":
            return Const(v[0].reshape([int(d) for d in v[1]]), first.bits)
        if op == "DequantizeLinear":
            return Const(_dq(v[0], v[1], v[2] if len(v) > 2 else None, a.get("axis", 1)),
                         first.bits)
        if op == "QuantizeLinear":
            zp = v[2] if len(v) > 2 and v[2] is not None else np.zeros((), np.uint8)
            q = np.round(v[0] / _bcast(v[1], v[0], a.get("axis", 1))) \
                + _bcast(zp, v[0], a.get("axis", 1))
            info = np.iinfo(zp.dtype) if zp.dtype.kind in "iu" else np.iinfo(np.uint8)
            return Const(np.clip(q, info.min, info.max).astype(zp.dtype), _INT_BITS.get(
                zp.dtype.name, 8))
        if op == "Clip":
            lo = float(v[1]) if len(v) > 1 and v[1] is not None else -math.inf
            hi = float(v[2]) if len(v) > 2 and v[2] is not None else math.inf
            bits = first.bits
            if math.isfinite(lo) and math.isfinite(hi) and first.bits is not None:
                bits = max(1, math.ceil(math.log2(hi - lo + 1)))
            return Const(np.clip(v[0], lo, hi), bits)
        if op == "Quant":  # QONNX: (x, scale, zeropt, bitwidth)
            bits = int(np.asarray(v[3]).reshape(-1)[0])
            signed, narrow = a.get("signed", 1), a.get("narrow", 0)
            lo = -(2 ** (bits - 1)) + narrow if signed else 0
            hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
            q = np.clip(np.round(v[0] / v[1] + v[2]), lo, hi)
            return Const(((q - v[2]) * v[1]).astype(np.float32), bits)
        if op == "BipolarQuant":
            return Const((np.where(v[0] >= 0, 1.0, -1.0) * v[1]).astype(np.float32), 1)
        return None

    def shape(self, node: Any, name: str) -> list[int]:
        c = self.const(name)
        if c is not None:
            return list(c.value.shape)
        s = self.shapes.get(name)
        if s is None or any(not isinstance(d, int) or d <= 0 for d in s):
            hint = ", ".join(f"{i}={'x'.join(str(d) for d in self.shapes.get(i, []))}"
                             for i in self.inputs)
            raise OnnxImportError(f"{self.src}: node {node.name or node.op_type!r} input "
                                  f"{name!r}: shape {s} is unknown or dynamic; fix the graph "
                                  f"inputs with --input-shape NAME=DIMS (inputs: {hint})")
        return [int(d) for d in s]

    def act_bits(self, name: str) -> int | None:
        """Bits of an activation quantised right before (QDQ, QONNX ``Quant``)."""
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear":
            up = self.producer.get(node.input[0])
            zp = self.const(node.input[2]) if len(node.input) > 2 else None
            if zp is not None:
                return _INT_BITS.get(zp.value.dtype.name, 8)
            return 8 if up is not None else None
        if node.op_type == "Quant":
            c = self.const(node.input[3])
            return int(np.asarray(c.value).reshape(-1)[0]) if c is not None else None
        if node.op_type == "BipolarQuant":
            return 1
        return None


def _bcast(p: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
    p = np.asarray(p)
    if p.ndim == 1 and x.ndim > 1 and p.size > 1:
        shape = [1] * x.ndim
        shape[axis] = p.size
        return p.reshape(shape)
    return p


def _dq(x: np.ndarray, s: np.ndarray, zp: np.ndarray | None, axis: int) -> np.ndarray:
    z = np.zeros(()) if zp is None else _bcast(zp, x, axis).astype(np.float64)
    return ((x.astype(np.float64) - z) * _bcast(s, x, axis)).astype(np.float32)


def _pads(a: dict[str, Any], x: list[int], kernel: list[int], strides: list[int],
          dil: list[int]) -> tuple[list[int], list[int]]:
    """(begin, end) pads per spatial axis, ``auto_pad`` resolved as the ONNX operator spec."""
    n = len(kernel)
    mode = a.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            out = -(-x[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - x[i])
            small = total // 2
            begin.append(small if mode == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        return begin, end
    if mode == "VALID":
        return [0] * n, [0] * n
    pads = list(a.get("pads", [0] * (2 * n)))
    return pads[:n], pads[n:]


def _spatial(a: dict[str, Any], x: list[int], kernel: list[int], ceil: bool = False
             ) -> dict[str, Any]:
    """Spec fields of a 2-D window op: asymmetric pads as symmetric + extra input lines."""
    strides = list(a.get("strides", [1] * len(kernel)))
    dil = list(a.get("dilations", [1] * len(kernel)))
    begin, end = _pads(a, x, kernel, strides, dil)
    pad = [min(b, e) for b, e in zip(begin, end, strict=True)]
    extra = [abs(b - e) for b, e in zip(begin, end, strict=True)]
    return {"in": [x[i] + extra[i] for i in range(len(kernel))], "kernel": compact(kernel),
            "stride": compact(strides), "padding": compact(pad), "dilation": compact(dil),
            "asymmetric": any(extra)}


def numel(shape: list[int]) -> int:
    return int(math.prod(shape)) if shape else 1


def vector_spec(g: _Graph, node: Any) -> dict[str, Any] | None:
    """A vector layer for an element-wise / reduction node, or None (unknown / no shapes)."""
    label = VECTOR.get(node.op_type)
    vop = vector_op(label) if label else None
    if vop is None:
        return None
    ins: list[Any] = [g.shapes.get(i) if (c := g.const(i)) is None else list(c.value.shape)
                      for i in node.input if i]
    outs: list[Any] = [g.shapes.get(o) for o in node.output[:1]]
    known = [s for s in ins + outs if s is not None and all(isinstance(d, int) and d > 0
                                                            for d in s)]
    if len(known) != len(ins) + len(outs):
        return None
    n_in = sum(numel(s) for s in ins if s is not None)
    n_out = numel(outs[0]) if outs[0] is not None else 0
    basis = numel(ins[0]) if vop.per_input and ins and ins[0] is not None else n_out
    return {"op": "vector", "label": vop.label, "in_elements": max(n_in, 1),
            "out_elements": max(n_out, 1), "vector_ops": vop.ops * basis}

