"""What each ATen operator of a PyTorch forward pass is for the simulator (torch-free tables).

The PyTorch importer (:mod:`simulator.frontend.torch`) sees the model as the ATen operators it
dispatches. GEMM operators (``convolution``, ``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``mv``,
the fused scaled-dot-product-attention kernels and the ``quantized`` namespace's ``linear`` /
``conv2d``) are handled by the importer itself. This module classifies the rest:

* **views** move no data (a view, a transpose, a slice): not simulated, listed by op;
* **creation** operators make a tensor from nothing (``empty``, ``arange``, ``full``): listed;
* **vector** operators run on the vector unit with a primitive-operation count per *output*
  element (``per_input``: per input element, for reductions). The counts are assumptions of
  one SIMD op per add, compare or multiply and one per transcendental on a LUT-based special
  function unit, as :data:`simulator.workload.spec.ELEMENTWISE_OPS` states: relu / clamp /
  compare / copy 1, add / sub / mul / div 1, exp / log / rsqrt / sqrt / tanh / sin / cos 1,
  sigmoid 3, silu 4, gelu 7 (tanh form), hardswish 3, softmax 4, log-softmax 5, layernorm /
  groupnorm 7, batchnorm 2 (inference: scale and shift), reductions (sum, mean, amax) 1 per
  input element, gathers (embedding, index_select, gather) 1 per output element.

Anything else is reported as ``not simulated`` with its share of the model's MACs, counted by
``torch.utils.flop_counter``'s formulas where one exists (so a computing operator the importer
does not know can never hide).
"""

from __future__ import annotations

from typing import NamedTuple

#: ATen overload packets that only re-view their input (no data movement)
VIEWS = frozenset({
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute",
    "expand", "unsqueeze", "squeeze", "select", "slice", "split", "split_with_sizes",
    "unbind", "alias", "detach", "as_strided", "as_strided_", "resize_", "set_", "chunk",
    "narrow", "diagonal", "view_as",
    "expand_as", "unflatten", "flatten", "movedim", "lift_fresh", "_local_scalar_dense",
    "unfold", "view_as_real", "view_as_complex", "item", "q_scale", "q_zero_point",
    "q_per_channel_scales", "q_per_channel_zero_points", "int_repr",
    "sym_size", "sym_stride", "sym_numel", "is_nonzero", "_assert_async",
    "_assert_tensor_metadata",
})
#: creation operators (no input tensor is read)
CREATION = frozenset({
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like",
    "full", "full_like", "arange", "scalar_tensor", "randn", "rand", "randint", "randperm",
    "linspace", "new_empty", "new_zeros", "new_ones", "new_full", "eye", "tril_indices",
    "triu_indices", "uniform_", "normal_", "fill_", "zero_", "bernoulli_",
})


class VectorOp(NamedTuple):
    """A vector-unit operator: its label and primitive ops per output (or input) element."""

    label: str
    ops: int
    per_input: bool = False


_ONE = ("relu", "threshold", "hardtanh", "clamp", "clamp_min", "clamp_max", "add", "sub",
        "rsub", "mul", "div", "neg", "abs", "exp", "log", "rsqrt", "sqrt", "reciprocal", "pow",
        "tanh", "sin", "cos", "where", "masked_fill", "eq", "ne", "gt", "lt", "ge", "le",
        "maximum", "minimum", "leaky_relu", "sign", "floor", "ceil", "round", "bitwise_and",
        "bitwise_or", "bitwise_not", "logical_and", "logical_or", "logical_not", "clone",
        "copy", "copy_", "_to_copy", "cat", "stack", "constant_pad_nd", "reflection_pad2d",
        "replication_pad2d", "repeat", "roll", "flip", "tril", "triu", "cumsum", "erf",
        "embedding", "index_select", "gather", "index", "sigmoid_", "relu_", "add_", "mul_",
        "div_", "sub_", "masked_fill_", "fmod", "remainder", "_unsafe_index", "mish_",
        "log1p", "expm1", "atan", "pad", "scatter", "index_add", "channel_shuffle",
        "pixel_shuffle", "pixel_unshuffle", "col2im", "im2col", "contiguous", "fill", "lerp",
        "addcmul", "addcdiv", "isnan", "isinf", "nan_to_num")
VECTOR: dict[str, VectorOp] = {name.rstrip("_"): VectorOp(name.rstrip("_"), 1) for name in _ONE}
VECTOR.update({
    "sigmoid": VectorOp("sigmoid", 3), "silu": VectorOp("silu", 4), "gelu": VectorOp("gelu", 7),
    "hardswish": VectorOp("hardswish", 3), "hardsigmoid": VectorOp("hardsigmoid", 2),
    "elu": VectorOp("elu", 3), "softplus": VectorOp("softplus", 3), "mish": VectorOp("mish", 5),
    "_softmax": VectorOp("softmax", 4), "softmax": VectorOp("softmax", 4),
    "_log_softmax": VectorOp("log_softmax", 5), "log_softmax": VectorOp("log_softmax", 5),
    "native_layer_norm": VectorOp("layernorm", 7), "layer_norm": VectorOp("layernorm", 7),
    "native_group_norm": VectorOp("groupnorm", 7), "group_norm": VectorOp("groupnorm", 7),
    "_native_batch_norm_legit_no_training": VectorOp("batchnorm", 2),
    "_native_batch_norm_legit": VectorOp("batchnorm", 2),
    "native_batch_norm": VectorOp("batchnorm", 2), "batch_norm": VectorOp("batchnorm", 2),
    "mean": VectorOp("mean", 1, True), "sum": VectorOp("sum", 1, True),
    "amax": VectorOp("amax", 1, True), "amin": VectorOp("amin", 1, True),
    "max": VectorOp("max", 1, True), "min": VectorOp("min", 1, True),
    "argmax": VectorOp("argmax", 1, True), "var": VectorOp("var", 3, True),
    "var_mean": VectorOp("var_mean", 3, True), "std": VectorOp("std", 3, True),
    "norm": VectorOp("norm", 2, True), "linalg_vector_norm": VectorOp("norm", 2, True),
    "prod": VectorOp("prod", 1, True), "any": VectorOp("any", 1, True),
    "all": VectorOp("all", 1, True), "topk": VectorOp("topk", 2, True),
    "sort": VectorOp("sort", 2, True),
    # (de)quantisation: a multiply and an add (round / saturate folded in)
    "quantize_per_tensor": VectorOp("quantize", 2), "quantize_per_channel": VectorOp("quantize", 2),
    "dequantize": VectorOp("dequantize", 2),
    "fake_quantize_per_tensor_affine": VectorOp("fake_quantize", 4),
    "fake_quantize_per_channel_affine": VectorOp("fake_quantize", 4),
})
#: pooling operators lowered to pool layers (others of their family: vector, exact counts)
POOLS = frozenset({"max_pool2d_with_indices", "max_pool2d", "avg_pool2d",
                   "_adaptive_avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"})


def vector_op(name: str) -> VectorOp | None:
    """The vector-unit description of ATen overload packet ``name``, or None."""
    return VECTOR.get(name.rstrip("_") if name.endswith("_") and not name.startswith("_")
                      else name)


def group_label(labels: list[str]) -> str:
    """One name for a fused run of vector ops inside one module call (``rmsnorm`` for the
    square / mean / rsqrt / scale pattern of RMSNorm, Zhang and Sennrich 2019)."""
    uniq = list(dict.fromkeys(labels))
    if len(uniq) == 1:
        return uniq[0]
    for known in ("layernorm", "groupnorm", "batchnorm", "softmax"):
        if known in uniq:
            return known
    if "mean" in uniq and "rsqrt" in uniq:
        return "rmsnorm"
    return "+".join(uniq[:4]) + ("+..." if len(uniq) > 4 else "")


def adaptive_bins(size: int, out: int) -> int:
    """Sum over the ``out`` adaptive-pooling bins of their extent along one axis (PyTorch's
    bins: ``[floor(i size / out), ceil((i + 1) size / out))``)."""
    return sum(-(-(i + 1) * size // out) - (i * size) // out for i in range(out))
