"""Nonzero masks of a layer's operands in the GEMM view: real ones from a trace, or seeded
random ones for operands that carry only a density.

An operand with only a density gets, seeded with the network seed xor CRC-32 of
``"<layer>/<operand>"`` (deterministic results):

* ``mask_model: iid`` (default): independent Bernoulli nonzeros. Every row and column then
  holds the same expected count, which real pruned layers do not: it hides load imbalance.
* ``mask_model: magnitude`` (weights): the mask magnitude pruning leaves on a layer whose
  output rows and input columns have uneven weight scales. Weight ``(k, n)`` is
  ``s_n u_k z`` with ``z ~ N(0, 1)`` and log-normal scales ``log s_n ~ N(0, sigma_row^2)``,
  ``log u_k ~ N(0, sigma_col^2)``; pruning keeps ``|w| > tau`` with ``tau`` set for the
  layer's density, so weight ``(k, n)`` survives with probability
  ``erfc(tau / (sqrt(2) s_n u_k))``. ``sigma_row``/``sigma_col`` (:data:`MAGNITUDE_SIGMA`) are
  the spreads of ``log`` row and column RMS of a real trained layer (the bundled digits-lenet's
  fc1, :func:`scale_spread`, measured by ``analysis/row_lengths.py``); the model reproduces
  that layer's measured row-length spread across densities (``analysis/row_lengths.md``).

Activation masks are expanded to the im2col view (``(groups, M, K)``), so a convolution's
padding zeros appear as zeros, as the array sees them.

Masks are drawn once per layer, whole (not lazily per fold class: the seeded stream fixes
every bit, and a fold's lane work depends on its own bits). A batch shares one activation mask
where it is one sample's (a trace's, or a conv's one drawn input tensor):
:func:`act_mask_sample` gives it with its repeat count, without the per-sample copies of
:func:`act_mask`.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from simulator.mapping.schedule import MAX_MASK_ELEMENTS, check_size
from simulator.workload.geometry import conv_out, pair
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
    draws = _Draws(seed)
    threshold = round(density * 65536)
    for start in range(0, size, 1 << 20):
        stop = min(size, start + (1 << 20))
        np.less(draws.take(stop - start), threshold, out=out[start:stop])
    return out.reshape(shape)


class _Draws:
    """The seeded 16-bit stream of :func:`random_mask`, taken in pieces of any length: the
    little-endian halves of consecutive uint32 ``integers`` draws, as ``rng.bytes`` defines
    its bytes (without its two byte-string copies), a spare half kept for the next piece."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.spare: np.ndarray | None = None

    def take(self, n: int) -> np.ndarray:
        if n <= 0:
            return np.empty(0, dtype="<u2")
        head = 0 if self.spare is None else 1
        words = self.rng.integers(0, 1 << 32, size=-(-(n - head) // 2), dtype=np.uint32)
        halves = words.astype("<u4", copy=False).view("<u2")
        out = halves[:n - head] if self.spare is None else np.concatenate(
            [self.spare, halves[:n - head]])
        self.spare = halves[n - head:].copy() if len(halves) > n - head else None
        return out


def weight_mask_pieces(layer: Layer, seed: int,
                       rows: int) -> Iterator[tuple[int, int, np.ndarray]] | None:
    """:func:`weight_mask` in pieces ``(group, k0, (k1 - k0, N) mask)`` of at most ``rows``
    K rows, in order, or None if dense. A density-only i.i.d. mask is drawn piece by piece
    (the same bits: one stream), so a consumer that reduces each piece needs memory for one
    piece only; any other mask (trace, magnitude, N:M) is drawn whole and sliced."""
    op = layer.weight
    if op.mask is None and op.density >= 1.0:
        return None
    g, k, n = layer.count, layer.K, layer.N
    rows = max(1, rows)
    lazy = op.mask is None and op.mask_model != "magnitude" and ":" not in op.structure
    if not lazy:
        w = weight_mask(layer, seed)
        assert w is not None
        return ((gi, k0, w[gi, k0:k0 + rows]) for gi in range(g) for k0 in range(0, k, rows))
    _bounded(layer, (g, k, n), "weight")
    return _drawn_pieces(g, k, n, rows, op.density, mask_seed(seed, layer.name, "weight"))


def _drawn_pieces(g: int, k: int, n: int, rows: int, density: float,
                  seed: int) -> Iterator[tuple[int, int, np.ndarray]]:
    draws, threshold = _Draws(seed), round(density * 65536)
    for gi in range(g):
        for k0 in range(0, k, rows):
            r = min(rows, k - k0)
            yield gi, k0, (draws.take(r * n) < threshold).reshape(r, n)


#: ``(sigma_row, sigma_col)``: std of log row / column RMS of digits-lenet fc1 (64 x 128),
#: trained on scikit-learn's digits (simulator.frontend.digits, seed 0); regenerated and
#: checked by analysis/row_lengths.py and tests/test_frontend_digits.py.
MAGNITUDE_SIGMA = (0.4386, 0.2919)


def scale_spread(weight: np.ndarray) -> tuple[float, float]:
    """``(sigma_row, sigma_col)`` of a ``(out, in)`` weight matrix: the standard deviations
    of the log RMS of its rows (output neurons) and of its columns (inputs)."""
    w = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
    rows = np.log(np.sqrt((w**2).mean(axis=1)))
    cols = np.log(np.sqrt((w**2).mean(axis=0)))
    return float(rows.std()), float(cols.std())


def magnitude_mask(shape: tuple[int, int, int], density: float, seed: int,
                   sigma: tuple[float, float] = MAGNITUDE_SIGMA) -> np.ndarray:
    """A ``(g, K, N)`` mask of magnitude pruning on uneven row/column scales (module
    docstring), seeded; in chunks of about 4 M values."""
    from scipy.special import erfc  # scipy loads only for magnitude masks

    g, k, n = shape
    rng = np.random.default_rng(seed)
    out = np.empty(shape, dtype=bool)
    step = max(1, (1 << 22) // max(n, 1))
    for gi in range(g):
        s_n = np.exp(sigma[0] * rng.standard_normal(n))
        u_k = np.exp(sigma[1] * rng.standard_normal(k))
        tau = _threshold(s_n, u_k, density)
        inv = (tau / math.sqrt(2.0) / s_n).astype(np.float32)
        for a in range(0, k, step):
            p = erfc(np.outer((1.0 / u_k[a:a + step]).astype(np.float32), inv))
            out[gi, a:a + step] = rng.random(p.shape, dtype=np.float32) < p
    return out


def _threshold(s_n: np.ndarray, u_k: np.ndarray, density: float) -> float:
    """``tau`` with mean keep probability ``density`` over (up to 512 x 512 mid-quantile
    order statistics of) the drawn scales."""
    def grid(v: np.ndarray) -> np.ndarray:
        v = np.sort(v)
        q = min(len(v), 512)  # mid-quantiles: each point stands for len(v) / q of the draws
        return v[((np.arange(q) + 0.5) * len(v) / q).astype(int)]

    from scipy.optimize import brentq
    from scipy.special import erfc

    prod = np.outer(grid(u_k), grid(s_n)) * math.sqrt(2.0)
    if density >= 1.0:
        return 0.0
    return float(math.exp(brentq(lambda lt: float(erfc(math.exp(lt) / prod).mean()) - density,
                                 -30.0, 30.0)))
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
    if op.mask is None and op.mask_model == "magnitude":
        return magnitude_mask((g, k, n), op.density, mask_seed(seed, layer.name, "weight"))
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


def conv_positions(layer: Layer) -> int:
    """Output positions ``H_out * W_out`` of one sample of a conv layer."""
    d = layer.dims
    (kh, kw), (sh, sw) = pair(d["kernel"]), pair(d.get("stride", 1))
    (ph, pw), (dh, dw) = pair(d.get("padding", 0)), pair(d.get("dilation", 1))
    return (conv_out(int(d["in_h"]), kh, sh, ph, dh) * conv_out(int(d["in_w"]), kw, sw, pw, dw))


def padding_taps(layer: Layer) -> np.ndarray | None:
    """Padding zeros each GEMM ``k`` of a conv meets: for every ``k`` of one group (ordered
    ``(C/g, kh, kw)`` as PyTorch weights), the output positions of ``M`` whose window reads a
    padding zero at that tap, in closed form; ``None`` for a layer without padding.

    Tap ``(i, j)`` stays inside the input for ``rows_in(i) * cols_in(j)`` of the
    ``H_out x W_out`` positions, ``rows_in(i) = #{h: 0 <= h*s + i*d - p < H}``."""
    d = layer.dims
    if layer.op != "conv2d" or not {"in_h", "in_w", "kernel", "in_channels"} <= set(d):
        return None
    (ph, pw) = pair(d.get("padding", 0))
    if ph == pw == 0:
        return None
    outs, inside, batch, channels = _taps_inside(layer)
    per_tap = outs[0] * outs[1] - np.outer(inside[0], inside[1]).ravel()
    return np.tile(per_tap * batch, channels).astype(np.int64)


def padding_tap_total(layer: Layer) -> int:
    """``padding_taps(layer).sum()`` (0 without padding) without the per-tap array: the
    outer product's sum is the product of the sums (tested equal)."""
    d = layer.dims
    if layer.op != "conv2d" or not {"in_h", "in_w", "kernel", "in_channels"} <= set(d):
        return 0
    (kh, kw), (ph, pw) = pair(d["kernel"]), pair(d.get("padding", 0))
    if ph == pw == 0:
        return 0
    outs, inside, batch, channels = _taps_inside(layer)
    per_group = outs[0] * outs[1] * kh * kw - int(inside[0].sum()) * int(inside[1].sum())
    return per_group * batch * channels


def _taps_inside(layer: Layer) -> tuple[list[int], list[np.ndarray], int, int]:
    """Per axis of a padded conv: output size and, per tap, the outputs whose window stays
    inside the input; the batch and the input channels of one group."""
    d = layer.dims
    (kh, kw), (sh, sw) = pair(d["kernel"]), pair(d.get("stride", 1))
    (ph, pw), (dh, dw) = pair(d.get("padding", 0)), pair(d.get("dilation", 1))
    outs, inside = [], []
    for size, k, s, p, dil in ((int(d["in_h"]), kh, sh, ph, dh),
                               (int(d["in_w"]), kw, sw, pw, dw)):
        out = conv_out(size, k, s, p, dil)
        pos = np.arange(out)[:, None] * s + np.arange(k)[None, :] * dil - p
        outs.append(out)
        inside.append(((pos >= 0) & (pos < size)).sum(axis=0))
    batch = layer.M // (outs[0] * outs[1])
    return outs, inside, batch, int(d["in_channels"]) // int(d.get("groups", 1))


def act_mask(layer: Layer, seed: int = 0,
             tensor: np.ndarray | None = None) -> np.ndarray | None:
    """The input-activation nonzero mask in GEMM view ``(count, M, K)`` (im2col), or None.

    A trace records the mask of one input sample; with a batch, every sample gets it.
    ``tensor``: the conv's :func:`act_tensor_mask`, when the caller has drawn it already.
    :func:`act_mask_sample` gives the same without the per-sample copies."""
    a, repeats = act_mask_sample(layer, seed, tensor)
    return a if a is None or repeats == 1 else np.tile(a, (1, repeats, 1))


def act_mask_sample(layer: Layer, seed: int = 0, tensor: np.ndarray | None = None
                    ) -> tuple[np.ndarray | None, int]:
    """``(mask, repeats)``: :func:`act_mask` is ``mask`` (``(count, M / repeats, K)``)
    repeated ``repeats`` times along M, one copy per batch sample.

    Samples share one mask when it is one sample's: a trace's, or a conv's one drawn input
    tensor (:func:`act_tensor_mask`, drawn once per layer for the whole batch); a
    density-only non-conv operand is drawn over all M rows (``repeats`` 1)."""
    op = layer.activation
    if op.mask is None and op.density >= 1.0:
        return None, 1
    return _im2col_view(layer, tensor if tensor is not None else act_tensor_mask(layer, seed),
                        seed)


def padded_act_mask(layer: Layer, seed: int = 0,
                    tensor: np.ndarray | None = None) -> np.ndarray | None:
    """:func:`act_mask`, and for a padded conv with dense activations the im2col view of an
    all-ones input: the padding zeros the array sees (``None`` when there are none)."""
    a = act_mask(layer, seed, tensor)
    if a is not None or padding_taps(layer) is None:
        return a
    d = layer.dims
    ones = np.ones((int(d["in_channels"]), int(d["in_h"]), int(d["in_w"])), dtype=bool)
    cols, repeats = _im2col_view(layer, ones, seed)
    return np.tile(cols, (1, repeats, 1)) if repeats > 1 else cols


def _im2col_view(layer: Layer, tensor: np.ndarray | None,
                 seed: int) -> tuple[np.ndarray, int]:
    """One sample's im2col view and how many times the batch repeats it along M."""
    op = layer.activation
    g, m, k = layer.count, layer.M, layer.K
    if tensor is not None:
        _bounded(layer, (g, m, k), "im2col activation")
        cols = _im2col(tensor, layer)
    elif op.mask is None:
        return random_mask(_bounded(layer, (g, m, k), "activation"), op.density,
                           mask_seed(seed, layer.name, "act")), 1
    else:
        cols = np.asarray(op.mask, dtype=bool).reshape(g, -1, k)
    return cols, m // cols.shape[1]


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
