"""Operands of the functional reference, encoded per PE kind into tokens, and the arithmetic
each kind performs on them (:mod:`simulator.validation.reference` moves them through the array).

**Arithmetic per kind** (``A`` is M x K activations, ``W`` is K x N weights, both integers except
for ``bfp``): ``mac`` ``a * w``; ``shift`` ``sign(w) * (a << log2|w|)`` on pow2 weights coded as
sign + exponent; ``xnor`` ``2 * popcount(xnor(a, w) & valid) - popcount(valid)`` over a word of
+-1 values coded as bits; ``ternary`` ``+a``, ``-a`` or nothing; ``bitserial`` the sum over the
activation's two's-complement bit planes of ``bit_p * w * 2**p`` (the top plane negative);
``bitfusion`` the sum over 2-bit brick pairs of ``brick_w * brick_a << (2i + 2j)`` (top bricks
signed); ``bfp`` integer mantissa products summed per block, each block sum shifted by its
exponents into a fixed-point accumulator (:func:`bfp_quantise` defines the quantiser).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import brick_width

I64 = np.int64
Op = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def bfp_quantise(x: np.ndarray, mantissa_bits: int, block: int,
                 axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Block floating point: one shared exponent per ``block`` values along ``axis``.

    For a block with largest magnitude ``a > 0`` the exponent is
    ``e = floor(log2 a) - (mantissa_bits - 2)``, so ``a / 2**e`` lies in
    ``[2**(b-2), 2**(b-1))``; mantissas are ``round_half_even(x / 2**e)`` clipped to the
    sign-magnitude range ``+-(2**(b-1) - 1)``. An all-zero block gets ``e = 0``. Returns the
    int64 mantissas (shape of ``x``) and the exponents, one per block (``axis`` has
    ``ceil(n / block)`` entries). The value is ``mantissa * 2**exponent``.
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    nb = -(-n // block)
    padded = np.zeros((*x.shape[:-1], nb * block))
    padded[..., :n] = x
    amax = np.abs(padded.reshape(*x.shape[:-1], nb, block)).max(axis=-1)
    safe = np.where(amax > 0, amax, 1.0)
    exp = np.where(amax > 0, np.floor(np.log2(safe)) - (mantissa_bits - 2), 0).astype(I64)
    lim = 2 ** (mantissa_bits - 1) - 1
    scale = np.ldexp(1.0, -np.repeat(exp, block, axis=-1)[..., :n])
    mant = np.clip(np.rint(x * scale), -lim, lim).astype(I64)
    return np.moveaxis(mant, -1, axis), np.moveaxis(exp, -1, axis)


def bfp_dequantise(mant: np.ndarray, exp: np.ndarray, block: int, axis: int) -> np.ndarray:
    """The real values of :func:`bfp_quantise`'s output (float64)."""
    e = np.repeat(exp, block, axis=axis).take(np.arange(mant.shape[axis]), axis=axis)
    return np.ldexp(mant.astype(np.float64), e)


@dataclass(frozen=True, slots=True)
class Operands:
    """Operands encoded as tokens: ``a`` (M, K', P), ``w`` (K', N, P); exponents per token."""

    a: np.ndarray
    w: np.ndarray
    a_exp: np.ndarray
    w_exp: np.ndarray
    block_end: np.ndarray  # (K',) bool: a block's partial sum is aligned after this token
    planes: int
    op: Op
    lsb_exp: int  # the fixed-point accumulator's LSB is 2**lsb_exp (0 for integer kinds)


def _in_range(x: np.ndarray, bits: int, what: str) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{what} must be integers (got dtype {x.dtype})")
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{what} must fit {bits}-bit two's complement [{lo}, {hi}]")
    return x.astype(I64)


def _pack_k(a: np.ndarray, w: np.ndarray, pack: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad K to a multiple of ``pack``; a -> (M, K', pack), w -> (K', N, pack)."""
    (m, k), n = a.shape, w.shape[1]
    kp = -(-k // pack)
    ap = np.zeros((m, kp * pack), dtype=a.dtype)
    wp = np.zeros((kp * pack, n), dtype=w.dtype)
    ap[:, :k], wp[:k] = a, w
    return ap.reshape(m, kp, pack), wp.reshape(kp, pack, n).transpose(0, 2, 1)


def _sum_products(a: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (a * w).sum(axis=-1)


def _shift(a: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
    shifted = np.left_shift(a, np.maximum(np.abs(w) - 1, 0))  # code = sign * (exponent + 1)
    return (np.sign(w) * shifted).sum(axis=-1)


def _ternary(a: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.where(w > 0, a, np.where(w < 0, -a, 0)).sum(axis=-1)


def _xnor(a: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
    valid = a[..., 1] & w[..., 1]
    match = np.bitwise_count(~(a[..., 0] ^ w[..., 0]) & valid).astype(I64)
    return 2 * match - np.bitwise_count(valid).astype(I64)


def _bitserial(bits: int, serial_weights: bool = False) -> Op:
    def op(a: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
        if serial_weights:  # plane p of the two's-complement weight
            plane = (((w >> p[..., None]) & 1) * a).sum(axis=-1) << p
        else:  # plane p of the two's-complement activation
            plane = (((a >> p[..., None]) & 1) * w).sum(axis=-1) << p
        return np.where(p == bits - 1, -plane, plane)

    return op


def _bitfusion(weight_bits: int, act_bits: int) -> Op:
    nw, na = brick_width(weight_bits) // 2, brick_width(act_bits) // 2

    def bricks(x: np.ndarray, n: int) -> list[np.ndarray]:
        # Low bricks unsigned 0..3; the top brick keeps the sign (-2..1).
        return [(x >> (2 * i)) & 3 for i in range(n - 1)] + [x >> (2 * (n - 1))]

    def op(a: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
        total = np.zeros(a.shape, dtype=I64)
        for i, bw in enumerate(bricks(w, nw)):
            for j, ba in enumerate(bricks(a, na)):
                total += (bw * ba) << (2 * (i + j))
        return total.sum(axis=-1)

    return op


def encode(kind: PEKind, A: np.ndarray, W: np.ndarray, wb: int, ab: int) -> Operands:
    K = A.shape[1]
    pack = kind.pack(wb, ab)
    planes = kind.stream_cycles_per_value(wb, ab)
    name = kind.kind
    if name == "bfp":
        block = int(kind.params.block)  # type: ignore[attr-defined]
        ma, ea = bfp_quantise(A, ab, block, axis=1)
        mw, ew = bfp_quantise(W, wb, block, axis=0)
        ks = np.arange(K)
        lsb = int(ea.min() + ew.min()) if ea.size and ew.size else 0
        return Operands(ma[:, :, None], mw[:, :, None], ea[:, ks // block],
                         ew[ks // block, :], (ks % block == block - 1) | (ks == K - 1), 1,
                         _sum_products, lsb)
    if name == "xnor":
        for what, x in (("activations", A), ("weights", W)):
            if not np.isin(x, (-1, 1)).all():
                raise ValueError(f"xnor {what} must be +-1")
        ones = (np.ones_like(A), np.ones_like(W))
        bits_a, bits_w = _pack_k((A > 0).astype(np.uint64), (W > 0).astype(np.uint64), pack)
        val_a, val_w = _pack_k(ones[0].astype(np.uint64), ones[1].astype(np.uint64), pack)
        lane = np.left_shift(np.uint64(1), np.arange(pack, dtype=np.uint64))

        def word(x: np.ndarray) -> np.ndarray:
            return np.bitwise_or.reduce(x * lane, axis=-1)

        a = np.stack([word(bits_a), word(val_a)], axis=-1)
        w = np.stack([word(bits_w), word(val_w)], axis=-1)
        op: Op = _xnor
    else:
        A = _in_range(A, ab, "activations")
        W = _in_range(W, 64 if name == "shift" else wb, "weights")  # shift: checked as codes
        if name == "shift":
            mag = np.abs(W)
            exp = np.where(mag > 0, np.log2(np.maximum(mag, 1)), 0).astype(I64)
            emax = 2 ** (wb - 1) - 2
            if (mag != np.where(mag > 0, 1 << exp, 0)).any() or exp.max(initial=0) > emax:
                raise ValueError(f"shift weights must be 0 or +-2**e with e <= {emax}")
            W = np.sign(W) * (exp + 1)
            op = _shift
        elif name == "ternary":
            if not np.isin(W, (-1, 0, 1)).all():
                raise ValueError("ternary weights must be in {-1, 0, +1}")
            op = _ternary
        elif name == "bitserial":
            op = _bitserial(planes, kind.serial_weights)
        elif name == "bitfusion":
            op = _bitfusion(wb, ab)
        else:
            op = _sum_products
        a, w = _pack_k(A, W, pack)
    kp = a.shape[1]
    return Operands(a, w, np.zeros(a.shape[:2], dtype=I64), np.zeros(w.shape[:2], dtype=I64),
                     np.arange(kp) == kp - 1, planes, op, 0)
