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
Lane work is counted per stream piece of the chosen tiling (:mod:`.nest`), and for PE kinds
that reduce ``pack`` operands along K per cycle (:mod:`simulator.hardware.pe`) on the packed
K: a lane holds one word of ``pack`` consecutive k, effectual when any of them is, so packing
shrinks the lanes, never the stream. A skipping fold still moves its operands through the
SRAM ports: its busy time is the larger of its busiest lane's work and its port-limited time
at the compressed width (:mod:`.systolic`).

Activation density and format metadata are counted on the layer's *unique* input tensor
(``(C, H*W)`` for a conv, no im2col duplicates, no padding); effectual MACs on the im2col
view, where a conv's padding zeros are zeros (what zero-skipping hardware sees), and also as
if padding were data (``effectual_macs_ignoring_padding``: weight-pruning papers' FLOP counts,
e.g. Han et al., "Learning both Weights and Connections", NeurIPS 2015).

Filter or channel pruning (``structure: filter|channel``) removes all-zero filters (N) or input
channels (K) from the GEMM on every architecture: a compiler does not schedule them.

Masks come from the workload trace; an operand with only a density gets a seeded random mask
(seed = the network seed xor CRC-32 of the layer name), so results are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulator.errors import MappingError
from simulator.mapping.formats import Format, storage
from simulator.mapping.masks import (
    act_mask,
    act_tensor_mask,
    conv_positions,
    padded_act_mask,
    padding_taps,
    weight_mask,
)
from simulator.workload.layer import Layer
from simulator.workload.structure import nm_pattern, unquoted_nm


class SparsityParams(BaseModel):
    """``pe_array.sparsity``: modes per operand and compressed storage formats."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)
    weights: str = "none"
    activations: Literal["none", "gate", "skip"] = "none"
    weight_format: Format = "dense"
    act_format: Format = "dense"
    index_bits: int = Field(default=4, gt=0, le=32, strict=True)
    pointer_bits: int = Field(default=16, gt=0, le=64, strict=True)

    @field_validator("weights", mode="before")
    @classmethod
    def _mode(cls, v: Any) -> Any:
        if (hint := unquoted_nm(v)) is not None:
            raise ValueError(hint)
        if isinstance(v, str) and (v in ("none", "gate", "skip") or nm_pattern(v) is not None):
            return v
        raise ValueError(f"must be none, gate, skip or 'N:M' like '2:4' (got {v!r})")


@dataclass(frozen=True, slots=True)
class SparseView:
    """A layer's GEMM after structural pruning, with lane work per fold when skipping."""

    M: int
    K: int
    N: int
    K_pruned: int                # K after channel pruning, before N:M compression
    nm_index_bits: int           # bits of the N:M position index per stored weight (0: none)
    skip_act: np.ndarray | None  # (count, M, K) mask of skipped activations (None: not skipped)
    skip_weight: np.ndarray | None  # (count, K, N) mask of skipped weights
    effectual_macs: int
    effectual_macs_ignoring_padding: int
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


def sparse_view(layer: Layer, p: SparsityParams, w_bits: float, a_bits: float,
                seed: int = 0) -> SparseView:
    """What the array sees of ``layer``'s sparsity (module docstring); vectorised numpy."""
    w_mode, a_mode = p.weights, p.activations
    tensor = act_tensor_mask(layer, seed)  # drawn once: im2col view and unique storage
    a = (padded_act_mask(layer, seed, tensor) if a_mode != "none"
         else act_mask(layer, seed, tensor))
    w = weight_mask(layer, seed)
    pad = padding_taps(layer)
    g, m, k, n = layer.count, layer.M, layer.K, layer.N
    macs = g * m * k * n
    if w is not None and layer.weight.structure == "filter":
        keep_n = w.any(axis=(0, 1))
        w, n = w[:, :, keep_n], int(keep_n.sum())
    if w is not None and layer.weight.structure == "channel":
        keep_k = w.any(axis=(0, 2))
        w, k = w[:, keep_k, :], int(keep_k.sum())
        a = a[:, :, keep_k] if a is not None else None
        pad = pad[keep_k] if pad is not None else None
    if min(n, k) == 0:
        raise MappingError(f"layer {layer.name!r}: structural pruning removed every "
                           f"{'filter' if n == 0 else 'channel'}")
    nm = nm_pattern(w_mode)
    k_eff = k
    if nm is not None:
        if a_mode == "skip":
            raise MappingError(f"layer {layer.name!r}: N:M weights with activation skipping "
                               "is not modelled; use activations: gate or none")
        if w is not None and _nm_ok(w, *nm):
            k_eff = -(-k // nm[1]) * nm[0]
    pad_k = np.zeros(k, dtype=np.int64) if pad is None else pad
    a_k = a.sum(axis=1) if a is not None else np.broadcast_to(m - pad_k, (g, k))
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
    w_scale, w_meta = storage(None if w is None else w.transpose(0, 2, 1), (n, k), g, w_bits,
                               p.weight_format, p)
    a_density, a_scale, a_meta = _act_storage(layer, a_bits, p, seed, tensor)
    return SparseView(
        M=m, K=k_eff, N=n, K_pruned=k,
        nm_index_bits=math.ceil(math.log2(nm[1])) if nm is not None and k_eff < k else 0,
        skip_act=a if skip_a else None, skip_weight=w if skip_w else None,
        effectual_macs=both,
        effectual_macs_ignoring_padding=both + int((pad_k[None, :] * w_k).sum()),
        gated_macs=gated, skipped_macs=skipped,
        weight_density=float(w_k.sum()) / (g * k * n) if w is not None else 1.0,
        act_density=a_density, weight_scale=w_scale, act_scale=a_scale,
        weight_metadata_bytes=round(w_meta), act_metadata_bytes=round(a_meta))


def _act_storage(layer: Layer, a_bits: float, p: SparsityParams, seed: int,
                 tensor: np.ndarray | None) -> tuple[float, float, float]:
    """(density, stored / dense bytes, metadata bytes) of the layer's *unique* input tensor:
    a conv's ``(C, H*W)`` per sample (no im2col duplicates, no padding), else the GEMM view."""
    d = layer.dims
    if layer.op == "conv2d" and {"in_channels", "in_h", "in_w"} <= set(d):
        c, hw = int(d["in_channels"]), int(d["in_h"]) * int(d["in_w"])
        samples = max(1, layer.M // conv_positions(layer))
        t = tensor
        plane = None if t is None else t.reshape(1, c, hw)
        scale, meta = storage(plane, (c, hw), 1, a_bits, p.act_format, p)
        density = 1.0 if t is None else float(t.mean())
        return density, scale, meta * samples
    a = act_mask(layer, seed, tensor)
    scale, meta = storage(a, (layer.M, layer.K), layer.count, a_bits, p.act_format, p)
    return (1.0 if a is None else float(a.mean())), scale, meta


def _pack_k(mask: np.ndarray, pack: int, axis: int) -> np.ndarray:
    """``any`` over words of ``pack`` consecutive k along ``axis`` (the last word padded)."""
    if pack <= 1:
        return mask
    k = mask.shape[axis]
    pad = [(0, 0)] * mask.ndim
    pad[axis] = (0, (-k) % pack)
    m = np.pad(mask, pad)
    shape = list(m.shape)
    shape[axis: axis + 1] = [shape[axis] // pack, pack]
    return np.asarray(m.reshape(shape).any(axis=axis + 1))


def lane_work(dataflow: str, a: np.ndarray | None, w: np.ndarray | None,
              dims: tuple[int, int, int, int], rows: int, cols: int, pack: int,
              pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Busiest and mean lane stream steps per fold, shape ``(g, piece, row_chunk,
    col_chunk)``: ``pieces`` are the extents of the stream tiles in order (module docstring).

    ``dims`` is the unpacked ``(g, M, K, N)``; K is packed into words of ``pack`` first."""
    g, m, k, n = dims
    if pack > 1:
        a = None if a is None else _pack_k(a, pack, 2)
        w = None if w is None else _pack_k(w, pack, 1)
        k = -(-k // pack)
    starts = np.cumsum(pieces) - pieces
    if dataflow == "os":  # lane = output pixel m (rows), stream K (pieces); columns = filters
        nj = -(-n // cols)
        wany = None if w is None else _any_chunks(w, cols, 2).astype(np.float32)
        af = None if a is None or wany is None else a.astype(np.float32)
        per_piece = []
        for s0, ext in zip(starts.tolist(), pieces.tolist(), strict=True):
            ks = slice(s0, s0 + ext)
            if af is not None and wany is not None:
                lane = np.matmul(af[:, :, ks], wany[:, ks, :])
            elif a is not None:
                lane = np.repeat(a[:, :, ks].sum(axis=2, dtype=np.int64)[:, :, None], nj, 2)
            else:
                assert wany is not None
                lane = np.repeat(wany[:, ks, :].sum(axis=1)[:, None, :], m, axis=1)
            per_piece.append(lane)
        lanes = np.stack(per_piece, axis=1)  # (g, P, m, nj): lanes along axis 2
    elif dataflow == "ws":  # lane = k (rows), stream M (pieces); columns = filters
        base = (np.add.reduceat(a, starts, axis=1, dtype=np.int64) if a is not None
                else np.broadcast_to(pieces[None, :, None], (g, len(pieces), k)))
        wany = (_any_chunks(w, cols, 2) if w is not None
                else np.ones((g, k, -(-n // cols)), dtype=bool))
        lanes = base[:, :, :, None] * wany[:, None, :, :]  # (g, P, k, nj)
    else:  # is: lane = k (rows), stream N (pieces); columns = output pixels
        base = (np.add.reduceat(w, starts, axis=2, dtype=np.int64).transpose(0, 2, 1)
                if w is not None else np.broadcast_to(pieces[None, :, None], (g, len(pieces), k)))
        aany = (_any_chunks(a, cols, 1).transpose(0, 2, 1) if a is not None
                else np.ones((g, k, -(-m // cols)), dtype=bool))
        lanes = base[:, :, :, None] * aany[:, None, :, :]  # (g, P, k, mj)
    lanes = np.rint(lanes).astype(np.int64)
    return _chunk_reduce(lanes, rows, 2, "max"), _chunk_reduce(lanes, rows, 2, "mean")


