"""One ATen / quantized operator call -> the layer(s) it is for the simulator.

Called by the dispatch-mode tracer (:mod:`simulator.frontend.torch`) with the operator, its
arguments and its output on *one* example, so every shape is the work of one inference.
GEMMs: ``convolution`` (2-D; 1-D as a 1 x L image), ``mm`` / ``addmm`` / ``mv`` (a linear
layer when one operand is a weight, else a matmul), ``bmm`` / ``baddbmm`` (batched matmul),
the fused scaled-dot-product-attention kernels (as their two matmuls ``Q K^T`` and ``P V``,
grouped by KV head for grouped-query attention, with a softmax between them) and the
``quantized`` namespace's ``linear``, ``linear_dynamic`` and ``conv2d`` (torch.ao modules, read
with their real bits). Pools become pool layers; the rest is classified by
:mod:`simulator.frontend.aten`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from simulator.frontend.aten import adaptive_bins, vector_op
from simulator.workload.geometry import compact

SDPA = frozenset({"_scaled_dot_product_flash_attention_for_cpu",
                  "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                  "_scaled_dot_product_cudnn_attention", "scaled_dot_product_attention"})
#: positional index of ``is_causal`` in each fused attention kernel's schema
_CAUSAL_ARG = {"_scaled_dot_product_flash_attention_for_cpu": 4,
               "_scaled_dot_product_flash_attention": 4,
               "_scaled_dot_product_efficient_attention": 6,
               "_scaled_dot_product_cudnn_attention": 7, "scaled_dot_product_attention": 5}
_QBITS = {torch.qint8: 8, torch.quint8: 8, torch.qint32: 32, torch.quint4x2: 4,
          torch.quint2x4: 2}


@dataclass
class Found:
    """One layer an operator call stands for (``spec`` without its name)."""

    kind: str  # "gemm" | "vector"
    label: str
    spec: dict[str, Any]
    act: torch.Tensor | None = None  # left operand: its zeros are the layer's activation zeros
    weight: torch.Tensor | None = None  # (out, in) for linear, (C_out, C_in/g, kh, kw) conv
    source: torch.Tensor | None = None  # the tensor that may be a model parameter
    transposed: bool = False  # the parameter is stored (in, out), e.g. GPT-2's Conv1D
    fields: dict[str, Any] = field(default_factory=dict)  # operand fields read from the model
    act_bits: int | None = None
    note: str | None = None
    rows: tuple[int, int] | None = None  # the weight is these rows of its parameter
    batch: int = 1  # examples a convolution runs on (1 on the one-example trace)


def tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in an argument (lists of tensors included)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors(v)]
    return []


def _linear(a: torch.Tensor, b: torch.Tensor, weight_right: bool) -> Found:
    """``a (M, K) @ b (K, N)`` with ``b`` (``weight_right``) or ``a`` a weight."""
    if weight_right:
        m, k, n = int(a.shape[0]), int(a.shape[1]), int(b.shape[1])
        return Found("gemm", "linear", {"op": "linear", "in_features": k, "out_features": n,
                                        "tokens": m}, act=a, weight=b.t(), source=b)
    m, k, n = int(a.shape[0]), int(a.shape[1]), int(b.shape[1])  # W (M, K) @ X (K, N)
    return Found("gemm", "linear", {"op": "linear", "in_features": k, "out_features": m,
                                    "tokens": n}, act=b.t(), weight=a, source=a)


def _matmul(label: str, a: torch.Tensor, b: torch.Tensor) -> Found:
    batch = int(math.prod(a.shape[:-2])) if a.dim() > 2 else 1
    return Found("gemm", label, {"op": "matmul", "M": int(a.shape[-2]), "K": int(a.shape[-1]),
                                 "N": int(b.shape[-1]), "batch": batch}, act=a)


def gemm(name: str, args: tuple[Any, ...], is_param: Any) -> list[Found] | None:
    """The layers of a GEMM operator, or None if ``name`` is not one. ``is_param(t)``: True
    when tensor ``t`` is (a view of) a model parameter."""
    if name in ("mm", "addmm"):
        a, b = (args[0], args[1]) if name == "mm" else (args[1], args[2])
        if is_param(b) or not is_param(a):
            return [_linear(a, b, True) if is_param(b) else _matmul("matmul", a, b)]
        return [_linear(a, b, False)]
    if name in ("bmm", "baddbmm"):
        a, b = (args[0], args[1]) if name == "bmm" else (args[1], args[2])
        return [_matmul("bmm", a, b)]
    if name == "mv":
        a, v = args[0], args[1]
        if is_param(a):
            return [_linear(a, v.reshape(-1, 1), False)]
        return [_matmul("matmul", a, v.reshape(-1, 1))]
    if name == "dot":
        return [_matmul("matmul", args[0].reshape(1, -1), args[1].reshape(-1, 1))]
    if name in ("convolution", "_convolution"):
        return _conv(args)
    return None


def _conv(args: tuple[Any, ...]) -> list[Found] | None:
    x, w = args[0], args[1]
    stride, padding, dilation, transposed, _, groups = args[3:9]
    if transposed:
        return None  # a transposed convolution: reported with its MACs, not simulated
    if x.dim() == 3:  # conv1d: (B, C, L) as a 1 x L image
        x, w = x.unsqueeze(2), w.unsqueeze(2)
        stride, padding, dilation = [1, *stride], [0, *padding], [1, *dilation]
    if x.dim() != 4:
        return None
    spec = {"op": "conv2d", "in_channels": int(x.shape[1]), "out_channels": int(w.shape[0]),
            "in_h": int(x.shape[2]), "in_w": int(x.shape[3]),
            "kernel": compact(list(w.shape[2:])), "stride": compact(stride),
            "padding": compact(padding), "dilation": compact(dilation), "groups": int(groups)}
    return [Found("gemm", "conv2d", spec, act=x[0] if x.shape[0] == 1 else x, weight=w,
                  source=args[1], batch=int(x.shape[0]))]


def causal_fraction(q_len: int, k_len: int) -> float:
    """Share of the ``q_len x k_len`` score matrix a causal mask keeps: PyTorch's ``is_causal``
    keeps ``tril(ones(L, S))`` (top-left aligned), ``sum_i min(i + 1, S)`` entries."""
    kept = sum(min(i + 1, k_len) for i in range(q_len))
    return kept / (q_len * k_len)


def attention(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Found]:
    """A fused attention kernel as ``Q K^T`` (batch = KV heads, ``M`` = the query heads sharing
    one KV head times the queries), softmax (scale, mask and softmax: 5 or 6 ops per score)
    and ``P V``. The masked share of the work is stated in the note: the array computes it."""
    q, k, v = args[0], args[1], args[2]
    idx = _CAUSAL_ARG.get(name, 4)
    causal = bool(kwargs.get("is_causal", args[idx] if len(args) > idx else False))
    mask = kwargs.get("attn_mask", args[3] if name == "_scaled_dot_product_efficient_attention"
                      and len(args) > 3 else None)
    hq = int(q.shape[-3]) if q.dim() > 2 else 1
    hk = int(k.shape[-3]) if k.dim() > 2 else 1
    outer = int(math.prod(q.shape[:-3])) if q.dim() > 3 else 1
    lq, e, s, ev = int(q.shape[-2]), int(q.shape[-1]), int(k.shape[-2]), int(v.shape[-1])
    g = hq // hk if hk and hq % hk == 0 else 1
    heads = outer * (hk if g > 1 else hq)
    qk = {"op": "matmul", "M": g * lq, "K": e, "N": s, "batch": heads}
    av = {"op": "matmul", "M": g * lq, "K": s, "N": ev, "batch": heads}
    scores = outer * hq * lq * s
    sm = {"op": "vector", "label": "softmax", "in_elements": scores, "out_elements": scores,
          "vector_ops": scores * (5 + (mask is not None))}
    note = None
    if causal:
        note = f"causal mask: {causal_fraction(lq, s):.1%} of the Q K^T and P V MACs are " \
               f"effective"
    elif isinstance(mask, torch.Tensor):
        kept = float((mask if mask.dtype == torch.bool else mask > -math.inf).float().mean())
        note = f"attention mask: {kept:.1%} of the Q K^T and P V MACs are effective"
    return [Found("gemm", "qk", qk, act=q, note=note), Found("vector", "softmax", sm),
            Found("gemm", "av", av, note=note)]


def native_mha(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Found]:
    """``nn.MultiheadAttention``'s fused inference kernel (``_native_multi_head_attention``:
    query, key, value, embed_dim, heads, qkv_weight, qkv_bias, proj_weight, ...): the q, k and
    v projections (row blocks of the packed ``in_proj_weight``), the two attention matmuls
    with their softmax, and the output projection."""
    q, k, v, d, h, w_qkv = args[0], args[1], args[2], int(args[3]), int(args[4]), args[5]
    w_out = args[7]
    out = []
    for i, x in enumerate((q, k, v)):
        a = x.reshape(-1, d)
        w = w_qkv[i * d:(i + 1) * d]
        f = Found("gemm", "linear", {"op": "linear", "in_features": d, "out_features": d,
                                     "tokens": int(a.shape[0])}, act=a, weight=w, source=w)
        out.append(f)
    b = int(q.shape[0]) if q.dim() == 3 else 1
    lq, s, hd = int(q.shape[-2]), int(k.shape[-2]), d // h
    scores = b * h * lq * s
    out += [Found("gemm", "qk", {"op": "matmul", "M": lq, "K": hd, "N": s, "batch": b * h}),
            Found("vector", "softmax", {"op": "vector", "label": "softmax",
                                        "in_elements": scores, "out_elements": scores,
                                        "vector_ops": 5 * scores}),
            Found("gemm", "av", {"op": "matmul", "M": lq, "K": s, "N": hd, "batch": b * h})]
    out.append(Found("gemm", "linear", {"op": "linear", "in_features": d, "out_features": d,
                                        "tokens": b * lq}, weight=w_out, source=w_out))
    return out


def quantized(name: str, args: tuple[Any, ...]) -> list[Found] | None:
    """torch.ao quantised modules: their packed int weights, scales and zero points."""
    if name in ("linear", "linear_relu", "linear_dynamic", "linear_relu_dynamic"):
        w, _ = torch.ops.quantized.linear_unpack(args[1])
        x = args[0]
        a = x.reshape(-1, x.shape[-1])
        f = Found("gemm", "linear", {"op": "linear", "in_features": int(w.shape[1]),
                                     "out_features": int(w.shape[0]), "tokens": int(a.shape[0])},
                  act=a, weight=w.dequantize(), fields=_qfields(w),
                  act_bits=_QBITS.get(x.dtype, 8))
        if "dynamic" in name:
            f.note = "dynamic quantisation: activations quantised to 8 bits at run time"
        return [f]
    if name in ("conv2d", "conv2d_relu"):
        packed = args[1]
        w, _ = torch.ops.quantized.conv2d_unpack(packed)
        x = args[0]
        spec = {"op": "conv2d", "in_channels": int(x.shape[1]), "out_channels": int(w.shape[0]),
                "in_h": int(x.shape[2]), "in_w": int(x.shape[3]),
                "kernel": compact(list(w.shape[2:])), "stride": compact(packed.stride()),
                "padding": compact(packed.padding()), "dilation": compact(packed.dilation()),
                "groups": int(packed.groups())}
        return [Found("gemm", "conv2d", spec, act=x[0].dequantize(), weight=w.dequantize(),
                      fields=_qfields(w), act_bits=_QBITS.get(x.dtype, 8))]
    return None


def _qfields(w: torch.Tensor) -> dict[str, Any]:
    """Bits and per-channel scale storage of a quantised weight: an fp32 scale and an 8-bit
    zero point per output channel (per-channel affine) or per tensor, spread over its values."""
    per_channel = w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric,
                                  torch.per_channel_affine_float_qparams)
    values = w.numel() // int(w.shape[0]) if per_channel else w.numel()
    return {"bits": _QBITS.get(w.dtype, 8), "scheme": "int", "scale_bits": 40 / values}


def pool(name: str, args: tuple[Any, ...], out: Any) -> Found | None:
    """Max / average / adaptive pooling of an NCHW (or CHW) tensor as a pool layer, or a
    vector layer with exact counts where no pool layer describes it."""
    x = args[0]
    if x.dim() < 3:
        return None
    ch = int(math.prod(x.shape[:-2]))
    h, w = int(x.shape[-2]), int(x.shape[-1])
    y = out[0] if isinstance(out, (tuple, list)) else out
    oh, ow = int(y.shape[-2]), int(y.shape[-1])
    if name in ("max_pool2d_with_indices", "max_pool2d", "avg_pool2d"):
        kernel = list(args[1])
        stride = list(args[2]) if len(args) > 2 and args[2] else kernel
        pad = list(args[3]) if len(args) > 3 else [0]
        maxp = name != "avg_pool2d"
        dil = list(args[4]) if maxp and len(args) > 4 else [1]
        ceil = bool(args[5] if maxp and len(args) > 5 else (args[4] if not maxp
                                                            and len(args) > 4 else False))
        if set(dil) == {1}:
            return Found("vector", "maxpool" if maxp else "avgpool", {
                "op": "maxpool" if maxp else "avgpool", "channels": ch, "in_h": h, "in_w": w,
                "kernel": compact(kernel), "stride": compact(stride), "padding": compact(pad),
                "ceil_mode": ceil})
        kk = math.prod(kernel) if len(kernel) > 1 else kernel[0] ** 2
        return _vector("maxpool", ch * h * w, ch * oh * ow, ch * oh * ow * kk)
    if (oh, ow) == (1, 1) and "avg" in name:
        return Found("vector", "global_avgpool", {"op": "global_avgpool", "channels": ch,
                                                  "in_h": h, "in_w": w})
    if h % oh == 0 and w % ow == 0:
        kern = compact([h // oh, w // ow])
        op = "avgpool" if "avg" in name else "maxpool"
        return Found("vector", op, {"op": op, "channels": ch, "in_h": h, "in_w": w,
                                    "kernel": kern, "stride": kern})
    window = adaptive_bins(h, oh) * adaptive_bins(w, ow)  # summed over all output bins
    return _vector("adaptive_pool", ch * h * w, ch * oh * ow,
                   ch * window + ch * oh * ow * ("avg" in name))


def _vector(label: str, n_in: int, n_out: int, ops: int) -> Found:
    return Found("vector", label, {"op": "vector", "label": label, "in_elements": max(n_in, 1),
                                   "out_elements": max(n_out, 1), "vector_ops": int(ops)})


def vector(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Found | None:
    """An element-wise / reduction operator with its exact element counts, or None."""
    vop = vector_op(name)
    if vop is None:
        return None
    ins = tensors(list(args)) + tensors(list(kwargs.values()))
    outs = tensors(out)
    n_in = sum(int(t.numel()) for t in ins)
    n_out = int(outs[0].numel()) if outs else 0
    basis = int(ins[0].numel()) if vop.per_input and ins else n_out
    return _vector(vop.label, n_in, n_out, vop.ops * basis)


def torchao_fields(w: torch.Tensor) -> dict[str, Any]:
    """Bits and scale storage of a torchao-quantised weight (a tensor subclass with ``qdata``,
    ``scale``, ``block_size``, optional ``zero_point``): the integer width of ``qdata`` (4 for
    the Int4 layouts), one scale (and zero point) per ``block_size`` block; weight-only
    (de-quantised before the MAC) unless it quantises activations too."""
    q, scale = getattr(w, "qdata", None), getattr(w, "scale", None)
    if not isinstance(q, torch.Tensor) or not isinstance(scale, torch.Tensor):
        return {}
    bits = 4 if "4" in type(w).__name__ else q.element_size() * 8
    block = getattr(w, "block_size", None)
    per = math.prod(block) if block else w.numel() // max(int(scale.numel()), 1)
    zp = getattr(w, "zero_point", None)
    meta = scale.element_size() * 8 + (bits if isinstance(zp, torch.Tensor) else 0)
    return {"bits": bits, "scheme": "int", "scale_bits": meta / max(per, 1),
            "dequantize": getattr(w, "act_quant_kwargs", None) is None}
