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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulator.errors import MappingError
from simulator.mapping.formats import Format, storage
from simulator.mapping.masks import act_mask, weight_mask
from simulator.workload.layer import Layer
from simulator.workload.structure import nm_pattern, unquoted_nm


class SparsityParams(BaseModel):
    """``pe_array.sparsity``: modes per operand and compressed storage formats."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
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
    w_scale, w_meta = storage(None if w is None else w.transpose(0, 2, 1), (n, k), g, w_bits,
                               p.weight_format, p)
    a_scale, a_meta = storage(a, (m, k), g, a_bits, p.act_format, p)
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
