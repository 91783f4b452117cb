"""ONNX models: import (:mod:`simulator.frontend.onnx_graph`, :mod:`.onnx_nodes`) and
compression, run with **onnxruntime** (extra ``onnx``; torch is never needed).

:func:`compress_onnx` applies a recipe's weight methods (prune, share, quantise, weight-only) to
the graph's constant weights in numpy, then runs the original and the compressed graph with
onnxruntime on the calibration inputs, one example at a time: every GEMM input is added as a
graph output, so each layer's activation density (and one example's mask) is measured, and
``act_fixed_point`` calibrates its scale on the real inputs and fake-quantises them in the
compressed graph (``Clip(Round(x / s)) * s`` nodes before the layer). With a labelled test set
the top-1 accuracy of both graphs is measured; without one, the *agreement* of the compressed
with the original graph (top-1 agreement and output cosine, on the calibration inputs, labelled
so, with a warning below :data:`MIN_SAMPLES`). Without calibration inputs the run uses seeded
random-normal inputs, and says so. A recipe that fine-tunes or factorises (low rank) is an
error: an ONNX graph has no training and no module to split.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from simulator.frontend._deps import require
from simulator.frontend.methods import ActParams
from simulator.frontend.onnx_graph import OnnxImportError, OnnxModel, _Graph, load_graph
from simulator.frontend.recipe import Recipe, RecipeError
from simulator.frontend.trace_builder import (
    CompressionResult,
    TraceExtras,
    build_trace,
    record_fields,
)
from simulator.workload.trace import Accuracy

__all__ = ["MIN_SAMPLES", "OnnxImportError", "compress_onnx", "import_onnx"]

#: below this many inputs an agreement or accuracy figure gets a warning (a 95 % binomial
#: interval at p = 0.9 is +-6 points at 100 samples, +-15 at 16)
MIN_SAMPLES = 100
SYNTHETIC = 8


def import_onnx(path: str | Path, input_shapes: dict[str, list[int]] | None = None
                ) -> OnnxModel:
    """The layers, weights and notes of an ONNX model (rules: :mod:`.onnx_graph`)."""
    from simulator.frontend.onnx_nodes import walk

    model = load_graph(path, input_shapes)
    out = walk(_Graph(model, str(path)), model)
    out.proto = model
    if not any(s["op"] in ("conv2d", "linear", "matmul") for s in out.specs):
        raise OnnxImportError(f"{path}: no Conv, Gemm or MatMul node found")
    return out


def _session(proto: Any, extra: list[str]) -> Any:
    onnx = require("onnx")
    ort = require("onnxruntime")
    m = copy.deepcopy(proto)
    have = {o.name for o in m.graph.output}
    for name in dict.fromkeys(extra):
        if name not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _feeds(proto: Any, calibration: Any, seed: int) -> tuple[list[dict[str, np.ndarray]], str]:
    """One feed dict per example, and what the inputs are."""
    from onnx import helper

    g = proto.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if calibration is None:
        rng = np.random.default_rng(seed)
        feeds = []
        for _ in range(SYNTHETIC):
            f = {}
            for i in inputs:
                dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
                dt = helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
                f[i.name] = (rng.integers(0, 2, dims).astype(dt) if dt.kind in "iu"
                             else rng.standard_normal(dims).astype(dt))
            feeds.append(f)
        return feeds, f"synthetic (random normal, seed {seed}, {SYNTHETIC} inputs)"
    arr = calibration if isinstance(calibration, dict) else {inputs[0].name: calibration}
    n = len(next(iter(arr.values())))
    return [{k: np.asarray(v[j:j + 1]) for k, v in arr.items()} for j in range(n)], \
        f"calibration inputs ({n})"


def _fake_quant(proto: Any, node_index: int, tensor: str, scale: float, unsigned: bool,
                bits: int, tag: str) -> None:
    """Insert ``Clip(Round(x / s), lo, hi) * s`` before input ``tensor`` of one node."""
    from onnx import helper, numpy_helper

    g = proto.graph
    lo, hi = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
    consts = {f"{tag}_s": np.float32(scale), f"{tag}_lo": np.float32(lo),
              f"{tag}_hi": np.float32(hi)}
    for k, v in consts.items():
        g.initializer.append(numpy_helper.from_array(np.asarray(v, np.float32), k))
    nodes = [helper.make_node("Div", [tensor, f"{tag}_s"], [f"{tag}_d"]),
             helper.make_node("Round", [f"{tag}_d"], [f"{tag}_r"]),
             helper.make_node("Clip", [f"{tag}_r", f"{tag}_lo", f"{tag}_hi"], [f"{tag}_c"]),
             helper.make_node("Mul", [f"{tag}_c", f"{tag}_s"], [f"{tag}_q"])]
    target = g.node[node_index]
    for j, name in enumerate(target.input):
        if name == tensor:
            target.input[j] = f"{tag}_q"
    for pos, nd in enumerate(nodes):
        g.node.insert(node_index + pos, nd)


def _replace_weight(proto: Any, m: OnnxModel, name: str, w: np.ndarray, tag: str) -> bool:
    """Feed layer ``name`` a new float weight in the layout its node consumes; False for
    integer-weight nodes (QLinear*, *Integer), whose float weights cannot be fed."""
    from onnx import numpy_helper

    node = proto.graph.node[m.node_index[name]]
    if node.op_type not in ("Conv", "Gemm", "MatMul"):
        return False  # integer weights (QLinearConv, QGemm, MatMulInteger, ...)
    orig = m.proto_weight_shape(name)
    if node.op_type == "MatMul" or (node.op_type == "Gemm" and not any(
            a.name == "transB" and a.i for a in node.attribute)):
        w = w.T
    proto.graph.initializer.append(numpy_helper.from_array(
        np.ascontiguousarray(w.reshape(orig)).astype(np.float32), tag))
    node.input[1] = tag
    return True


def _outputs(sess: Any, feeds: list[dict[str, np.ndarray]], names: list[str]
             ) -> list[dict[str, np.ndarray]]:
    outs = []
    for f in feeds:
        vals = sess.run(None, f)
        outs.append(dict(zip([o.name for o in sess.get_outputs()], vals, strict=True)))
    return outs


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Top-1 agreement (argmax over the last axis) and cosine of two output batches."""
    agree = float((a.argmax(-1) == b.argmax(-1)).mean())
    fa, fb = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    den = float(np.linalg.norm(fa) * np.linalg.norm(fb))
    return agree, float(fa @ fb / den) if den else 1.0


def compress_onnx(path: str | Path, recipe: Recipe,
                  input_shapes: dict[str, list[int]] | None = None, *,
                  calibration: Any = None, test: tuple[np.ndarray, np.ndarray] | None = None,
                  seed: int = 0) -> CompressionResult:
    """Apply ``recipe`` to an ONNX model and measure it with onnxruntime (module docstring)."""
    if recipe.finetune.epochs > 0:
        raise RecipeError(recipe.source, [("finetune", f"{recipe.finetune.epochs} epochs of "
                                                       f"fine-tuning need a PyTorch model: an "
                                                       f"ONNX graph cannot be trained (use "
                                                       f"--no-finetune for the post-training "
                                                       f"result)")])
    m = import_onnx(path, input_shapes)
    names = list(m.weights)
    ops = {s["name"]: s["op"] for s in m.specs}
    compressed = {k: v.astype(np.float32).copy() for k, v in m.weights.items()}
    info: dict[str, dict[str, Any]] = {}
    act_steps = []
    for step in recipe.steps:
        if step.method.stage == "lowrank":
            raise RecipeError(recipe.source, [(f"{step.path}.method", f"{step.method.name!r} "
                                               f"splits a layer in two: that needs a PyTorch "
                                               f"model (an ONNX graph has no module to split)")])
        if step.method.model_level:
            raise RecipeError(recipe.source, [(f"{step.path}.method", f"{step.method.name!r} "
                                               f"({step.method.stage}) changes or trains the "
                                               f"model itself: that needs a PyTorch model")])
        targets = step.targets(names, recipe.source, ops=ops)
        if step.method.stage == "activation":
            if not isinstance(step.params, ActParams):
                raise RecipeError(recipe.source, [(f"{step.path}.method", f"{step.method.name!r}"
                                                   f" is not a fixed-point activation scheme: "
                                                   f"an LLM spec's KV cache, or binary inputs, "
                                                   f"which needs a PyTorch model")])
            act_steps.append((step, targets))
            continue
        for n in targets:
            out = step.method.fn(compressed[n], step.params)
            compressed[n] = out.weight
            record_fields(info, n, out)
    feeds, what = _feeds(m.proto, calibration, seed)
    probe = list(dict.fromkeys(m.inputs.values()))
    base_sess = _session(m.proto, probe)
    base = _outputs(base_sess, feeds, probe)
    work = copy.deepcopy(m.proto)
    notes = list(m.notes)
    act_bits: dict[str, int] = {}
    skipped = [n for n in names if not np.array_equal(compressed[n], m.weights[n])
               and not _replace_weight(work, m, n, compressed[n], f"{n}__approxsim_w")]
    if skipped:
        notes.append(f"integer-weight nodes keep their stored weights in the compressed run "
                     f"(the trace has the compressed ones): {', '.join(skipped)}")
    for act_step, targets in act_steps:
        params = act_step.params
        assert isinstance(params, ActParams)
        for j, n in enumerate(sorted(targets, key=lambda t: -m.node_index[t])):
            x = np.concatenate([o[m.inputs[n]].reshape(-1) for o in base])
            scale, unsigned = act_step.method.fn(x, params)
            idx = next(i for i, nd in enumerate(work.graph.node)
                       if list(nd.output) == list(m.proto.graph.node[m.node_index[n]].output))
            _fake_quant(work, idx, m.inputs[n], scale, unsigned, params.bits, f"aq{j}_{n}")
            act_bits[n] = params.bits
    comp = _outputs(_session(work, probe), feeds, probe)
    first = base_sess.get_outputs()[0].name
    b_out = np.concatenate([o[first] for o in base])
    c_out = np.concatenate([o[first] for o in comp])
    agree, cos = _agreement(b_out, c_out)
    samples = len(feeds)
    acc_b = acc_c = None
    dataset = f"agreement with the uncompressed graph on {what}"
    if test is not None:
        tf, _ = _feeds(m.proto, test[0], seed)
        tb = np.concatenate([o[first] for o in _outputs(base_sess, tf, [])])
        tc = np.concatenate([o[first] for o in _outputs(_session(work, []), tf, [])])
        acc_b = float((tb.argmax(-1).reshape(-1) == np.asarray(test[1]).reshape(-1)).mean())
        acc_c = float((tc.argmax(-1).reshape(-1) == np.asarray(test[1]).reshape(-1)).mean())
        dataset, samples = f"labelled test set ({len(tf)} inputs)", len(tf)
    warn = (f"only {samples} samples (< {MIN_SAMPLES}): the figure is uncertain by several "
            f"points" if samples < MIN_SAMPLES else None)
    acc = Accuracy(acc_b, acc_c, dataset, samples, agree, cos, None, warn)
    if warn:
        notes.append(warn)
    if calibration is None:
        notes.append(f"activation densities from {what}: pass --calibration for real ones")

    def measured(outs: list[dict[str, np.ndarray]]) -> tuple[dict[str, float], dict[str, Any]]:
        dens, masks = {}, {}
        for n, t in m.inputs.items():
            vals = [o[t] for o in outs]
            dens[n] = float(np.mean([(v != 0).mean() for v in vals]))
            spec = next(s for s in m.specs if s["name"] == n)
            masks[n] = _mask(spec, vals[0])
        return dens, masks

    name = Path(path).stem
    before = build_trace(m.result(None, *measured(base)), name, "onnx", None, None, None)
    after = build_trace(m.result(compressed, *measured(comp)), name, "onnx",
                        TraceExtras(info, act_bits), recipe, acc)
    return CompressionResult(after, before, None, notes)


def _mask(spec: dict[str, Any], v: np.ndarray) -> np.ndarray | None:
    """One example's input mask in the layer's operand layout (None if it does not fit)."""
    mask = v != 0
    shape: tuple[int, ...]
    if spec["op"] == "conv2d":
        shape = (spec["in_channels"], spec["in_h"], spec["in_w"])
    elif spec["op"] == "linear":
        shape = (spec["tokens"], spec["in_features"])
    else:
        shape = (spec["batch"], spec["M"], spec["K"])
    return mask.reshape(shape) if mask.size == int(np.prod(shape)) else None
