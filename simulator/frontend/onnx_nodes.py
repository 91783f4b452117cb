"""The node walk of the ONNX importer: one ONNX node -> a layer, a note or nothing
(rules in :mod:`simulator.frontend.onnx_graph`)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from simulator.frontend.onnx_graph import (
    _INT_BITS,
    QUANT_MARKERS,
    VIEWS,
    Const,
    OnnxImportError,
    OnnxModel,
    _attrs,
    _bcast,
    _Graph,
    _spatial,
    vector_spec,
)

#: ONNX ops that compute (MACs) but are not simulated: always reported as such
COMPUTING = frozenset({"ConvTranspose", "Einsum", "LSTM", "GRU", "RNN", "Attention",
                       "MultiHeadAttention", "DeformConv", "QLinearConvTranspose"})


def _deq(c: Const, g: _Graph, scale: str | None, zp: str | None, axis: int = 0) -> np.ndarray:
    """A quantised constant operand as float ``(q - zp) * scale`` (scale 1 when absent)."""
    v = c.value.astype(np.float64)
    z = g.const(zp) if zp else None
    s = g.const(scale) if scale else None
    if z is not None:
        v = v - _bcast(z.value, v, axis).astype(np.float64)
    if s is not None:
        v = v * _bcast(s.value, v, axis)
    return v.astype(np.float32)


def _int_bits(g: _Graph, name: str | None) -> int | None:
    c = g.const(name) if name else None
    return _INT_BITS.get(c.value.dtype.name) if c is not None else None


def walk(g: _Graph, model: Any) -> OnnxModel:
    out = OnnxModel([], {}, [])
    views: Counter[str] = Counter()
    markers: Counter[str] = Counter()
    pre: Counter[str] = Counter()
    other: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    asym = []
    for i, node in enumerate(model.graph.node):
        base = node.name or f"{node.op_type.lower()}_{i}"
        seen[base] += 1
        name = base if seen[base] == 1 else f"{base}#{seen[base]}"
        op = node.op_type
        ins = [x for x in node.input if x]
        if op in VIEWS:
            views[op] += 1
            continue
        if ins and all(g.const(x) is not None for x in ins) and op not in QUANT_MARKERS:
            pre[op] += 1  # constant folding: computed once, not per inference
            continue
        spec = _layer(g, node, name, out)
        if spec is not None:
            spec["name"] = name
            out.node_index[name] = i
            asym += [name] if spec.pop("_asym", False) else []
            out.specs.append(spec)
            continue
        if op in QUANT_MARKERS:
            markers[op] += 1
            continue
        vs = vector_spec(g, node)
        if vs is not None:
            out.specs.append({"name": name, **vs})
        elif op in COMPUTING:
            other[f"{op} (computes; MACs not counted)"] += 1
        else:
            other[op] += 1
    notes = [f"not simulated: {op} x{n}" for op, n in sorted(other.items())]
    if markers:
        notes.append("quantisation markers (the integer arithmetic of the next layer, its "
                     "bits taken from them): " + ", ".join(f"{k} x{v}" for k, v in
                                                           sorted(markers.items())))
    if pre:
        notes.append("not simulated (constant folding: inputs all constant, computed once): "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(pre.items())))
    if views:
        notes.append("not simulated (views, shapes and constants: no data movement, 0 MACs): "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(views.items())))
    if asym:
        notes.append(f"asymmetric padding ({', '.join(asym)}): modelled as the smaller pad on "
                     f"both sides plus the extra line as input (exact outputs and MACs)")
    out.notes = notes
    return out


def _layer(g: _Graph, node: Any, name: str, out: OnnxModel) -> dict[str, Any] | None:
    op, a = node.op_type, _attrs(node)
    src = g.src
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        x_name = node.input[0]
        w_name = node.input[3] if op == "QLinearConv" else node.input[1]
        w = g.const(w_name)
        if w is None:
            raise OnnxImportError(f"{src}: node {name!r} ({op}): its weights {w_name!r} are "
                                  f"not a constant (nor a quantised constant) of the graph")
        if op == "QLinearConv":
            wv = _deq(w, g, node.input[4], node.input[5])
            a_bits = _int_bits(g, node.input[2])
        elif op == "ConvInteger":
            wv = _deq(w, g, None, node.input[3] if len(node.input) > 3 else None)
            a_bits = _int_bits(g, node.input[2] if len(node.input) > 2 else None) or 8
        else:
            wv, a_bits = w.value.astype(np.float32), g.act_bits(x_name)
        x = g.shape(node, x_name)
        if len(x) == 3:  # Conv1d: (N, C, L) as a 1 x L image
            x, wv = [x[0], x[1], 1, x[2]], wv[:, :, None, :]
            a = {**a, **{k: [d, *a[k]] for k, d in (("strides", 1), ("dilations", 1))
                         if k in a}}
            if "pads" in a:
                p = list(a["pads"])
                a["pads"] = [0, p[0], 0, p[1]]
            a.setdefault("strides", [1, 1])
        if len(x) != 4:
            raise OnnxImportError(f"{src}: node {name!r}: only 1-D and 2-D Conv are supported")
        if x[0] != 1:
            raise OnnxImportError(f"{src}: node {name!r}: batch {x[0]}; give the graph one "
                                  f"example with --input-shape (layers are one inference)")
        sp = _spatial(a, x[2:], list(wv.shape[2:]))
        out.weights[name] = wv
        out.fields[name] = {"bits": w.bits, "scheme": "int"} if w.bits else {}
        if a_bits:
            out.act_bits[name] = a_bits
        out.inputs[name], out.weight_inputs[name] = x_name, w_name
        out.weight_shapes[name] = tuple(w.value.shape)
        return {"op": "conv2d", "in_channels": x[1], "out_channels": int(wv.shape[0]),
                "in_h": sp["in"][0], "in_w": sp["in"][1], "kernel": sp["kernel"],
                "stride": sp["stride"], "padding": sp["padding"], "dilation": sp["dilation"],
                "groups": int(a.get("group", 1)), "_asym": sp["asymmetric"]}
    if op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul", "QGemm"):
        a_name = node.input[0]
        b_name = node.input[3] if op in ("QLinearMatMul", "QGemm") else node.input[1]
        bc = g.const(b_name)
        if op in ("Gemm", "QGemm") and a.get("transA", 0):
            raise OnnxImportError(f"{src}: node {name!r}: Gemm with transA is not supported")
        x = g.shape(node, a_name)
        if bc is not None:
            if op in ("QLinearMatMul", "QGemm"):
                trans_b = op == "QGemm" and a.get("transB", 0)
                wv = _deq(bc, g, node.input[4], node.input[5], axis=0 if trans_b else 1)
                a_bits = _int_bits(g, node.input[2])
            elif op == "MatMulInteger":
                wv = _deq(bc, g, None, node.input[3] if len(node.input) > 3 else None, axis=1)
                a_bits = _int_bits(g, node.input[2] if len(node.input) > 2 else None) or 8
            else:
                wv, a_bits = bc.value.astype(np.float32), g.act_bits(a_name)
            wt = wv if op in ("Gemm", "QGemm") and a.get("transB", 0) else wv.T  # (out, in)
            out.weights[name] = np.ascontiguousarray(wt)
            out.fields[name] = {"bits": bc.bits, "scheme": "int"} if bc.bits else {}
            if a_bits:
                out.act_bits[name] = a_bits
            out.inputs[name], out.weight_inputs[name] = a_name, b_name
            out.weight_shapes[name] = tuple(bc.value.shape)
            tokens = int(math.prod(x[:-1])) if len(x) > 1 else 1
            return {"op": "linear", "in_features": int(wt.shape[1]),
                    "out_features": int(wt.shape[0]), "tokens": tokens}
        y = g.shape(node, b_name)
        xb, yb = (x[:-2] if len(x) > 2 else []), (y[:-2] if len(y) > 2 else [])
        batch = int(math.prod(np.broadcast_shapes(tuple(xb), tuple(yb)))) if xb or yb else 1
        out.inputs[name] = a_name
        a_bits = g.act_bits(a_name)
        if a_bits:
            out.act_bits[name] = a_bits
        return {"op": "matmul", "M": x[-2] if len(x) > 1 else 1, "K": x[-1], "N": y[-1],
                "batch": batch}
    if op in ("MaxPool", "AveragePool"):
        x = g.shape(node, node.input[0])
        kernel = list(a["kernel_shape"])
        sp = _spatial(a, x[2:], kernel)
        if set(a.get("dilations", [1])) != {1}:
            return None  # dilated pooling: a vector layer by counts
        return {"op": "maxpool" if op == "MaxPool" else "avgpool",
                "channels": int(math.prod(x[:2])), "in_h": sp["in"][0], "in_w": sp["in"][1],
                "kernel": sp["kernel"], "stride": sp["stride"], "padding": sp["padding"],
                "ceil_mode": bool(a.get("ceil_mode", 0)), "_asym": sp["asymmetric"]}
    if op in ("GlobalAveragePool", "GlobalMaxPool", "QLinearGlobalAveragePool"):
        x = g.shape(node, node.input[0])
        if op != "GlobalMaxPool":
            return {"op": "global_avgpool", "channels": int(math.prod(x[:2])), "in_h": x[2],
                    "in_w": x[3] if len(x) > 3 else 1}
        return {"op": "maxpool", "channels": int(math.prod(x[:2])), "in_h": x[2],
                "in_w": x[3] if len(x) > 3 else 1,
                "kernel": [x[2], x[3] if len(x) > 3 else 1]}
    return None
