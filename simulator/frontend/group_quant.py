"""Group-wise quantisation for LLM workloads: weight-only (W4A16, W8A16) and the KV cache.

Registered in :data:`simulator.frontend.methods.METHODS` like every method (imported by
:mod:`simulator.frontend.recipe`, so recipes see them). Weight-only quantisation stores each
weight at ``bits`` with one scale (and zero point) per group of ``group_size`` values along the
reduction, and de-quantises to the activation precision before the MAC: weights move at their
bits plus the scales, MACs run at the activation width (Frantar et al. GPTQ, ICLR 2023; Lin et
al. AWQ, MLSys 2024). ``kv_cache`` sets the storage of an LLM's KV cache the same way (Liu et
al. KIVI, ICML 2024); it applies to LLM specs (:mod:`simulator.workload.llm`).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from simulator.frontend.methods import Compressed, Params, _rows, method


class WeightOnlyParams(Params):
    bits: Annotated[int, Field(ge=2, le=8, strict=True)]
    #: values per scale group along the reduction (K); None: one group per output channel
    group_size: Annotated[int, Field(ge=1, strict=True)] | None = 128
    symmetric: bool = False
    #: bits of one stored scale (fp16)
    scale_bits: Annotated[int, Field(ge=1, le=32, strict=True)] = 16


def group_scale_bits(p: WeightOnlyParams | KVCacheParams, k: int) -> float:
    """Metadata bits per value: one ``scale_bits`` scale per group of ``group_size`` values
    (a whole row of ``k`` when ``None``), plus a zero point at the value's own ``bits`` when
    asymmetric (GPTQ and AWQ pack their zero points at the weight width)."""
    g = p.group_size or k
    return (p.scale_bits + (0 if p.symmetric else p.bits)) / g


@method("weight_only", "quantise", "Frantar, Ashkboos, Hoefler, Alistarh, 'GPTQ', ICLR 2023 and "
        "Lin et al., 'AWQ', MLSys 2024: group-wise weight-only quantisation (round to nearest "
        "here), weights de-quantised to the activation precision (W4A16)", WeightOnlyParams)
def weight_only(w: np.ndarray, p: WeightOnlyParams) -> Compressed:
    """Round-to-nearest group quantisation along K: per group ``s = (max - min) / (2^b - 1)``,
    ``z = round(-min / s)``, ``q = clip(round(w / s) + z, 0, 2^b - 1)``, ``w ~ s (q - z)``
    (symmetric: ``s = max|w| / (2^(b-1) - 1)``, ``z = 0``). The values are stored at ``bits``
    plus :func:`group_scale_bits` of metadata and de-quantised before the MAC, so the MAC runs
    at the activation precision (``dequantize``)."""
    rows = _rows(w).astype(np.float64)
    k = rows.shape[1]
    g = p.group_size or k
    pad = (-k) % g
    blocks = np.pad(rows, ((0, 0), (0, pad)), mode="edge").reshape(rows.shape[0], -1, g)
    if p.symmetric:
        qmax = 2 ** (p.bits - 1) - 1
        s = np.abs(blocks).max(axis=2, keepdims=True) / qmax
        s = np.where(s > 0, s, 1.0)
        q = np.clip(np.round(blocks / s), -qmax, qmax) * s
    else:
        lo, hi = blocks.min(axis=2, keepdims=True), blocks.max(axis=2, keepdims=True)
        s = (hi - lo) / (2**p.bits - 1)
        s = np.where(s > 0, s, 1.0)
        z = np.round(-lo / s)
        q = (np.clip(np.round(blocks / s) + z, 0, 2**p.bits - 1) - z) * s
    out = q.reshape(rows.shape[0], -1)[:, :k].reshape(w.shape)
    return Compressed(out.astype(w.dtype), scheme="int", bits=p.bits,
                      scale_bits=group_scale_bits(p, k), dequantize=True)


class KVCacheParams(Params):
    bits: Annotated[int, Field(ge=1, le=16, strict=True)]
    #: values per scale group (per token, along the head dimension); None: one per head
    group_size: Annotated[int, Field(ge=1, strict=True)] | None = None
    symmetric: bool = False
    scale_bits: Annotated[int, Field(ge=1, le=32, strict=True)] = 16


@method("kv_cache", "activation", "Liu et al., 'KIVI: a tuning-free asymmetric 2bit quantization "
        "for KV cache', ICML 2024; Hooper et al., 'KVQuant', NeurIPS 2024 (bits per element plus "
        "per-group scales and zero points)", KVCacheParams)
def kv_cache(x: np.ndarray, p: KVCacheParams) -> float:
    """Storage bits per cached K / V element: ``bits`` plus the group's scale (and zero point,
    asymmetric) spread over ``group_size`` values (``x``: one head's row, for its length)."""
    return p.bits + group_scale_bits(p, x.shape[-1])
