"""Nonzero masks of a layer's operands in the GEMM view: real ones from a trace, or seeded
random ones for operands that carry only a density.

An operand with only a density gets independent Bernoulli nonzeros, seeded with the network
seed xor CRC-32 of ``"<layer>/<operand>"``, so results are deterministic. Activation masks
are expanded to the im2col view (``(groups, M, K)``), so a convolution's padding zeros appear
as zeros, as the array sees them.
"""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from simulator.mapping.schedule import MAX_MASK_ELEMENTS, check_size
from simulator.workload.geometry import pair
from simulator.workload.layer import Layer


def mask_seed(seed: int, layer: str, operand: str) -> int:
    return seed ^ zlib.crc32(f"{layer}/{operand}".encode())


def _bounded(layer: Layer, shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    check_size(layer.name, f"the {what} mask", math.prod(shape), MAX_MASK_ELEMENTS,
               "MAX_MASK_ELEMENTS")
    return shape


def random_mask(shape: tuple[int, ...], density: float, seed: int) -> np.ndarray:
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


def random_nm_mask(shape: tuple[int, int, int], n: int, m: int, seed: int) -> np.ndarray:
    """A ``(count, K, N)`` mask keeping exactly ``n`` of every ``m`` consecutive k per column
    (an N:M-structured layer given only its structure), each group's pattern drawn uniformly
    from the ``C(m, n)`` choices, seeded; a last partial group keeps at most ``n``."""
    g, k, cols = shape
    patterns = np.array([[i in c for i in range(m)]
                         for c in itertools.combinations(range(m), n)], dtype=bool)
    groups = -(-k // m)
    pick = np.random.default_rng(seed).integers(0, len(patterns), (g, groups, cols),
                                                dtype=np.uint8)
    mask = patterns[pick].transpose(0, 1, 3, 2).reshape(g, groups * m, cols)
    return np.ascontiguousarray(mask[:, :k, :])


def weight_mask(layer: Layer, seed: int = 0) -> np.ndarray | None:
    """The weight (filter) nonzero mask in GEMM view ``(count, K, N)``, or None if dense.

    Without a mask, an ``N:M`` structure draws an N:M mask (:func:`random_nm_mask`), any
    other density independent Bernoulli nonzeros."""
    op = layer.weight
    if op.mask is None and op.density >= 1.0:
        return None
    g, k, n = layer.count, layer.K, layer.N
    nm = op.structure.split(":") if ":" in op.structure else None
    if op.mask is None and nm is not None:
        return random_nm_mask((g, k, n), int(nm[0]), int(nm[1]),
                              mask_seed(seed, layer.name, "weight"))
    if op.mask is None:
        return random_mask(_bounded(layer, (g, k, n), "weight"), op.density,
                           mask_seed(seed, layer.name, "weight"))
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
    return random_mask(_bounded(layer, shape, "activation"), op.density,
                       mask_seed(seed, layer.name, "act"))


def act_mask(layer: Layer, seed: int = 0) -> np.ndarray | None:
    """The input-activation nonzero mask in GEMM view ``(count, M, K)`` (im2col), or None.

    A trace records the mask of one input sample; with a batch, every sample gets it."""
    op = layer.activation
    if op.mask is None and op.density >= 1.0:
        return None
    g, m, k = layer.count, layer.M, layer.K
    tensor = act_tensor_mask(layer, seed)
    if tensor is not None:
        _bounded(layer, (g, m, k), "im2col activation")
        cols = _im2col(tensor, layer)
    elif op.mask is None:
        return random_mask(_bounded(layer, (g, m, k), "activation"), op.density,
                           mask_seed(seed, layer.name, "act"))
    else:
        cols = np.asarray(op.mask, dtype=bool).reshape(g, -1, k)
    if cols.shape[1] != m:
        cols = np.tile(cols, (1, m // cols.shape[1], 1))
    return cols


def _im2col(mask: np.ndarray, layer: Layer) -> np.ndarray:
    """(C, H, W) mask -> (groups, M, K) with K ordered (C/g, kh, kw) as PyTorch weights."""
    d = layer.dims
    (kh, kw), (sh, sw) = pair(d["kernel"]), pair(d.get("stride", 1))
    (ph, pw), (dh, dw) = pair(d.get("padding", 0)), pair(d.get("dilation", 1))
    g = int(d.get("groups", 1))
    padded = np.pad(mask, ((0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(padded, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    win = win[:, ::sh, ::sw, ::dh, ::dw]  # (C, Ho, Wo, kh, kw)
    c, ho, wo = win.shape[:3]
    cols = win.reshape(g, c // g, ho * wo, kh * kw).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(cols.reshape(g, ho * wo, (c // g) * kh * kw))
