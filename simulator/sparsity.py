"""Sparsity: real (or seeded random) masks in the GEMM view, and what the hardware does with them.

Per operand (weights, activations) the PE array is configured with a mode
(``pe_array.sparsity``):

* ``none``: zeros are multiplied like any value;
* ``gate``: a zero operand clock-gates the MAC (energy drops, a ``mac_gated`` action; no
  cycles saved -- Eyeriss, Chen et al., JSSC 2017, section V-D);
* ``skip``: zeros are never scheduled. Each array *row* is a decoupled lane with its own
  operand queue and offsets (as Cnvlutin's neuron lanes, Albericio et al., ISCA 2016), so a
  fold lasts as long as its busiest lane (``max`` over lanes of its effectual stream steps):
  load imbalance shows, not only the mean density;
* ``"N:M"`` (weights only, e.g. ``"2:4"``): structured-sparse MACs as in NVIDIA's sparse tensor
  cores (Mishra et al., arXiv:2104.08378): a layer whose weights keep at most N of every M
  along K runs on a K compressed to ``ceil(K / M) * N``, with ``log2(M)``-bit indices.

Lane work per dataflow (``a`` = activation mask M x K, ``w`` = weight mask K x N, a skipped
operand contributes its mask, a non-skipped one all-ones): ``os`` (row lane = output pixel m,
stream K): ``#k: a[m,k] and any_n w[k,n]``; ``ws`` (row lane = k, stream M):
``#m: a[m,k]`` if the lane holds any nonzero weight, else 0; ``is`` (row lane = k, stream N):
``#n: w[k,n]`` if the lane holds any nonzero activation, else 0. The ``any`` runs over the
fold's columns. Dense operands give the dense stream length, so skipping is never slower.

Filter or channel pruning (``structure: filter|channel``) removes all-zero filters (N) or input
channels (K) from the GEMM on every architecture: a compiler does not schedule them.

Masks come from the workload trace; an operand with only a density gets a seeded random mask
(seed = the network seed xor CRC-32 of the layer name), so results are deterministic.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulator.errors import MappingError
from simulator.workload import Layer

Format = Literal["dense", "bitmask", "csr", "csc", "rle"]


class SparsityParams(BaseModel):
    """``pe_array.sparsity``: modes per operand and compressed storage formats."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    weights: str = "none"
    activations: Literal["none", "gate", "skip"] = "none"
    weight_format: Format = "dense"
    act_format: Format = "dense"
    index_bits: int = Field(default=4, gt=0, le=32, strict=True)
    pointer_bits: int = Field(default=16, gt=0, le=64, strict=True)

    @field_validator("weights")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v in ("none", "gate", "skip") or nm_pattern(v) is not None:
            return v
        raise ValueError(f"must be none, gate, skip or 'N:M' like '2:4' (got {v!r})")


def nm_pattern(text: str) -> tuple[int, int] | None:
    """Parse ``"N:M"`` (0 < N < M) or return None."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        return None
    n, m = int(parts[0]), int(parts[1])
    return (n, m) if 0 < n < m else None


def _seed(seed: int, layer: str, operand: str) -> int:
    return seed ^ zlib.crc32(f"{layer}/{operand}".encode())


def _random_mask(shape: tuple[int, ...], density: float, seed: int) -> np.ndarray:
    """Independent Bernoulli(``density``) nonzeros, seeded: uniform 16-bit draws compared with
    ``round(density * 65536)`` (density resolution 1.5e-5), in chunks of 4 M values so a
    100 M-weight layer needs little more than its boolean mask in memory."""
    size = math.prod(shape)
    out = np.empty(size, dtype=bool)
    rng = np.random.default_rng(seed)
    threshold = round(density * 65536)
    step = 1 << 22
    for start in range(0, size, step):
        stop = min(size, start + step)
        draws = np.frombuffer(rng.bytes(2 * (stop - start)), dtype=np.uint16)
        np.less(draws, threshold, out=out[start:stop])
    return out.reshape(shape)


def weight_mask(layer: Layer, seed: int = 0) -> np.ndarray | None:
    """The weight (filter) nonzero mask in GEMM view ``(count, K, N)``, or None if dense."""
    op = layer.weight
    if op.mask is None and op.density >= 1.0:
        return None
    g, k, n = layer.count, layer.K, layer.N
    if op.mask is None:
        return _random_mask((g, k, n), op.density, _seed(seed, layer.name, "weight"))
    mask = np.asarray(op.mask, dtype=bool)
    if layer.op == "conv2d":  # (C_out, C_in/g, kh, kw) -> g x (K, N)
        return mask.reshape(g, n, k).transpose(0, 2, 1)
    if layer.op == "linear":  # (out, in) -> (K, N)
        return mask.reshape(1, n, k).transpose(0, 2, 1)
    return mask.reshape(g, k, n)


def act_tensor_mask(layer: Layer, seed: int = 0) -> np.ndarray | None:
    """A conv layer's input-activation mask in its own layout ``(C, H, W)``, or None."""
    op, d = layer.activation, layer.dims
    if (op.mask is None and op.density >= 1.0) or layer.op != "conv2d" \
            or not {"in_channels", "in_h", "in_w", "kernel"} <= set(d):
        return None
    shape = (int(d["in_channels"]), int(d["in_h"]), int(d["in_w"]))
    if op.mask is not None:
        return np.asarray(op.mask, dtype=bool).reshape(shape)
    return _random_mask(shape, op.density, _seed(seed, layer.name, "act"))


def act_mask(layer: Layer, seed: int = 0) -> np.ndarray | None:
    """The input-activation nonzero mask in GEMM view ``(count, M, K)`` (im2col), or None.

    A trace records the mask of one input sample; with a batch, every sample gets it."""
    op = layer.activation
    if op.mask is None and op.density >= 1.0:
        return None
    g, m, k = layer.count, layer.M, layer.K
    tensor = act_tensor_mask(layer, seed)
    if tensor is not None:
        cols = _im2col(tensor, layer)
    elif op.mask is None:
        return _random_mask((g, m, k), op.density, _seed(seed, layer.name, "act"))
    else:
        cols = np.asarray(op.mask, dtype=bool).reshape(g, -1, k)
    if cols.shape[1] != m:
        cols = np.tile(cols, (1, m // cols.shape[1], 1))
    return cols


def _pair(v: object) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    return int(v), int(v)  # type: ignore[call-overload]


def _im2col(mask: np.ndarray, layer: Layer) -> np.ndarray:
    """(C, H, W) mask -> (groups, M, K) with K ordered (C/g, kh, kw) as PyTorch weights."""
    d = layer.dims
    (kh, kw), (sh, sw) = _pair(d["kernel"]), _pair(d.get("stride", 1))
    (ph, pw), (dh, dw) = _pair(d.get("padding", 0)), _pair(d.get("dilation", 1))
    g = int(d.get("groups", 1))
    padded = np.pad(mask, ((0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(padded, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    win = win[:, ::sh, ::sw, ::dh, ::dw]  # (C, Ho, Wo, kh, kw)
    c, ho, wo = win.shape[:3]
    cols = win.reshape(g, c // g, ho * wo, kh * kw).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(cols.reshape(g, ho * wo, (c // g) * kh * kw))


def format_bits(mask: np.ndarray, value_bits: int, fmt: str, index_bits: int,
                pointer_bits: int) -> tuple[float, float]:
    """Storage of a 2-D ``mask``'s values in ``fmt``: (value bits, metadata bits).

    ``dense``: every element. ``bitmask``: nonzeros + one bit per element. ``csr``/``csc``:
    nonzeros with a relative index of ``index_bits`` (zeros since the previous nonzero of the
    row/column; a run longer than ``2**index_bits - 1`` costs a padding zero entry, as in EIE,
    Han et al., ISCA 2016, section III-B) and one pointer per row/column. ``rle``: the same
    over the flattened tensor, without pointers.
    """
    if fmt == "dense":
        return float(mask.size * value_bits), 0.0
    nnz = int(mask.sum())
    if fmt == "bitmask":
        return float(nnz * value_bits), float(mask.size)
    lines = mask.T if fmt == "csc" else mask
    flat = lines.reshape(-1) if fmt == "rle" else lines
    flat2 = flat.reshape(1, -1) if flat.ndim == 1 else flat
    width = flat2.shape[1]
    rows, cols = np.nonzero(flat2)
    prev = np.empty_like(cols)
    prev[1:], prev[:1] = cols[:-1], -1
    new_line = np.ones_like(cols, dtype=bool)
    new_line[1:] = rows[1:] != rows[:-1]
    gaps = cols - np.where(new_line, -1, prev) - 1
    pads = int((gaps // (1 << index_bits)).sum()) if width else 0
    entries = nnz + pads
    pointers = 0 if fmt == "rle" else flat2.shape[0] + 1
    return float(entries * value_bits), float(entries * index_bits + pointers * pointer_bits)


@dataclass(frozen=True, slots=True)
class SparseView:
    """A layer's GEMM after structural pruning, with lane work per fold when skipping."""

    M: int
    K: int
    N: int
    K_pruned: int                # K after channel pruning, before N:M compression
    nm_index_bits: int           # bits of the N:M position index per stored weight (0: none)
    work: np.ndarray | None      # (count, row_chunks, col_chunks) busiest-lane stream steps
    lane_mean: np.ndarray | None  # same shape: mean lane stream steps (imbalance)
    effectual_macs: int
    gated_macs: int
    skipped_macs: int
    weight_density: float
    act_density: float
    weight_scale: float          # stored weight bytes / dense weight bytes (incl. metadata)
    act_scale: float
    weight_metadata_bytes: int
    act_metadata_bytes: int


def _chunk_reduce(values: np.ndarray, lanes: int, axis: int, op: str) -> np.ndarray:
    n = values.shape[axis]
    starts = np.arange(0, n, lanes)
    if op == "max":
        return np.maximum.reduceat(values, starts, axis=axis)
    sums = np.add.reduceat(values, starts, axis=axis)
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    shape = [1] * values.ndim
    shape[axis] = len(starts)
    return sums / counts.reshape(shape)


def _any_chunks(mask: np.ndarray, lanes: int, axis: int) -> np.ndarray:
    """``any`` over chunks of ``lanes`` along ``axis`` of a (g, X, Y) mask."""
    return np.logical_or.reduceat(mask, np.arange(0, mask.shape[axis], lanes), axis=axis)


def _nm_ok(w: np.ndarray, n: int, m: int) -> bool:
    """True when every group of ``m`` consecutive k (per filter) holds at most ``n`` nonzeros."""
    g, k, cols = w.shape
    pad = (-k) % m
    wp = np.pad(w, ((0, 0), (0, pad), (0, 0)))
    return bool((wp.reshape(g, (k + pad) // m, m, cols).sum(axis=2) <= n).all())


def _storage(mask: np.ndarray | None, shape: tuple[int, int], count: int, bits: float,
             fmt: str, p: SparsityParams) -> tuple[float, float]:
    """(stored bits / dense bits, metadata bytes) of ``count`` 2-D tensors in ``fmt``."""
    dense_bits = count * shape[0] * shape[1] * bits
    if fmt == "dense" or dense_bits == 0:
        return 1.0, 0.0
    if mask is None:  # dense operand in a sparse format: closed form, no nonzero() over ones
        size = count * shape[0] * shape[1]
        ptrs = count * ((shape[1] if fmt == "csc" else shape[0]) + 1) * p.pointer_bits
        meta_bits = float({"bitmask": size, "rle": size * p.index_bits}.get(
            fmt, size * p.index_bits + ptrs))
        return (dense_bits + meta_bits) / dense_bits, meta_bits / 8
    vals = meta = 0.0
    for i in range(count):  # groups: a handful except depthwise, each small
        v, md = format_bits(mask[i], int(bits), fmt, p.index_bits, p.pointer_bits)
        vals, meta = vals + v, meta + md
    return (vals + meta) / dense_bits, meta / 8


def sparse_view(layer: Layer, p: SparsityParams, dataflow: str, rows: int, cols: int,
                w_bits: float, a_bits: float, seed: int = 0) -> SparseView:
    """What the array sees of ``layer``'s sparsity (module docstring); vectorised numpy."""
    a, w = act_mask(layer, seed), weight_mask(layer, seed)
    g, m, k, n = layer.count, layer.M, layer.K, layer.N
    macs = g * m * k * n
    if w is not None and layer.weight.structure == "filter":
        keep_n = w.any(axis=(0, 1))
        w, n = w[:, :, keep_n], int(keep_n.sum())
    if w is not None and layer.weight.structure == "channel":
        keep_k = w.any(axis=(0, 2))
        w, k = w[:, keep_k, :], int(keep_k.sum())
        a = a[:, :, keep_k] if a is not None else None
    if min(n, k) == 0:
        raise MappingError(f"layer {layer.name!r}: structural pruning removed every "
                           f"{'filter' if n == 0 else 'channel'}")
    w_mode, a_mode = p.weights, p.activations
    nm = nm_pattern(w_mode)
    k_eff = k
    if nm is not None:
        if a_mode == "skip":
            raise MappingError(f"layer {layer.name!r}: N:M weights with activation skipping "
                               "is not modelled; use activations: gate or none")
        if w is not None and _nm_ok(w, *nm):
            k_eff = -(-k // nm[1]) * nm[0]
    a_k = a.sum(axis=1) if a is not None else np.full((g, k), m)
    w_k = w.sum(axis=2) if w is not None else np.full((g, k), n)
    both = int((a_k * w_k).sum())
    zero_w_only = int((a_k * (n - w_k)).sum())
    zero_a_only = int(((m - a_k) * w_k).sum())
    zero_both = int(((m - a_k) * (n - w_k)).sum())
    skip_w, skip_a = w_mode == "skip", a_mode == "skip"
    gate_w, gate_a = w_mode == "gate", a_mode == "gate"
    skipped = gated = 0
    for cnt, zw, za in ((zero_w_only, True, False), (zero_a_only, False, True),
                        (zero_both, True, True)):
        if (zw and skip_w) or (za and skip_a):
            skipped += cnt
        elif (zw and gate_w) or (za and gate_a):
            gated += cnt
    if nm is not None and k_eff < k:
        skipped = g * m * (k - k_eff) * n
        gated = int(((m - a_k) * w_k).sum()) if gate_a else 0
    skipped += macs - g * m * k * n  # MACs removed by filter/channel pruning

    work = lane_mean = None
    a_skip, w_skip = (a if skip_a else None), (w if skip_w else None)
    if a_skip is not None or w_skip is not None:  # dense operands skip nothing
        work, lane_mean = _lane_work(dataflow, a_skip, w_skip, (g, m, k, n), rows, cols)
    w_scale, w_meta = _storage(None if w is None else w.transpose(0, 2, 1), (n, k), g, w_bits,
                               p.weight_format, p)
    a_scale, a_meta = _storage(a, (m, k), g, a_bits, p.act_format, p)
    return SparseView(
        M=m, K=k_eff, N=n, K_pruned=k,
        nm_index_bits=math.ceil(math.log2(nm[1])) if nm is not None and k_eff < k else 0,
        work=work, lane_mean=lane_mean, effectual_macs=both,
        gated_macs=gated, skipped_macs=skipped,
        weight_density=float(w_k.sum()) / (g * k * n) if w is not None else 1.0,
        act_density=float(a_k.sum()) / (g * m * k) if a is not None else 1.0,
        weight_scale=w_scale, act_scale=a_scale, weight_metadata_bytes=round(w_meta),
        act_metadata_bytes=round(a_meta))


def _lane_work(dataflow: str, a: np.ndarray | None, w: np.ndarray | None,
               dims: tuple[int, int, int, int], rows: int,
               cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Busiest and mean lane stream steps per fold, shape ``(g, row_chunks, col_chunks)``."""
    g, m, k, n = dims
    if dataflow == "os":  # lane = output pixel m (rows), stream K; columns = filters
        nj = -(-n // cols)
        if a is not None and w is not None:
            lane = np.matmul(a.astype(np.float32), _any_chunks(w, cols, 2).astype(np.float32))
        elif a is not None:
            lane = np.repeat(a.sum(axis=2, dtype=np.int64)[:, :, None], nj, axis=2)
        else:
            assert w is not None
            lane = np.repeat(_any_chunks(w, cols, 2).sum(axis=1)[:, None, :], m, axis=1)
    elif dataflow == "ws":  # lane = k (rows), stream M; columns = filters
        base = a.sum(axis=1) if a is not None else np.full((g, k), m)
        if w is not None:
            lane = base[:, :, None] * _any_chunks(w, cols, 2)
        else:
            lane = np.repeat(base[:, :, None], -(-n // cols), axis=2)
    else:  # is: lane = k (rows), stream N; columns = output pixels
        base = w.sum(axis=2) if w is not None else np.full((g, k), n)
        if a is not None:
            lane = base[:, :, None] * _any_chunks(a, cols, 1).transpose(0, 2, 1)
        else:
            lane = np.repeat(base[:, :, None], -(-m // cols), axis=2)
    lane = np.rint(lane).astype(np.int64)
    return _chunk_reduce(lane, rows, 1, "max"), _chunk_reduce(lane, rows, 1, "mean")
