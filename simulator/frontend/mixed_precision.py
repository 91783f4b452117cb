"""Precision per layer and per group: dynamic fixed point (a per-layer exponent), fine-grained
ternarisation (a scale per group of weights) and binary activations (XNOR-Net). Per-filter
bit widths chosen by a search are :mod:`simulator.frontend.adaptive`.

Registered in :data:`simulator.frontend.methods.METHODS` (imported by
:mod:`simulator.frontend.recipe`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

import numpy as np
from pydantic import Field

from simulator.frontend.methods import ActParams, Compressed, Params, _rows, method


def integer_length(amax: float, signed: bool = True) -> int:
    """Ristretto's integer length ``il = ceil(log2 max|x|) + 1`` (the sign bit included when
    ``signed``): the bits left of the binary point that hold the largest magnitude."""
    if amax <= 0:
        return 1 if signed else 0
    return math.ceil(math.log2(amax)) + (1 if signed else 0)


class DynamicFixedParams(Params):
    bits: Annotated[int, Field(ge=2, le=32, strict=True)]


@method("dynamic_fixed_point", "quantise", "Courbariaux, Bengio, David, 'Training deep neural "
        "networks with low precision multiplications', ICLR 2015 workshop (dynamic fixed "
        "point); Gysel et al., 'Ristretto', IEEE TNNLS 2018 (il = ceil(log2 max) + 1)",
        DynamicFixedParams)
def dynamic_fixed_point(w: np.ndarray, p: DynamicFixedParams) -> Compressed:
    """Fixed point with one exponent per layer: ``fl = bits - il`` fractional bits, ``il`` the
    integer length of ``max|W|`` (:func:`integer_length`), and
    ``w -> clip(round(w 2^fl), -2^(bits-1), 2^(bits-1) - 1) 2^-fl``. The scale is a power of
    two, so the hardware needs only a shift per layer; ``extra['exponent'] = -fl``."""
    fl = p.bits - integer_length(float(np.abs(w).max()))
    lo, hi = -(2 ** (p.bits - 1)), 2 ** (p.bits - 1) - 1
    q = np.clip(np.round(w * 2.0**fl), lo, hi) * 2.0**-fl
    return Compressed(q.astype(w.dtype), scheme="int", bits=p.bits, extra={"exponent": -fl})


@method("act_dynamic_fixed_point", "activation", "Gysel et al., 'Ristretto: a framework for "
        "empirical study of resource-efficient inference in convolutional neural networks', "
        "IEEE TNNLS 2018 (dynamic fixed point: a per-layer exponent for activations)", ActParams)
def act_dynamic_fixed_point(x: np.ndarray, p: ActParams) -> tuple[float, bool]:
    """A per-layer power-of-two step ``2^(il - bits)`` from the calibrated range
    (``calibration: max | percentile``; unsigned, without a sign bit, when no sample is
    negative): ``(scale, unsigned)`` as :func:`~simulator.frontend.methods.act_scale`."""
    ax = np.abs(x).ravel()
    rng = float(ax.max() if p.calibration == "max" else np.percentile(ax, p.percentile))
    unsigned = bool((x >= 0).all())
    return 2.0 ** (integer_length(rng, not unsigned) - p.bits), unsigned


class FgqParams(Params):
    group: Annotated[int, Field(ge=1, strict=True)] = 4
    threshold: Annotated[float, Field(gt=0.0)] = 0.7
    #: bits of each group's stored scale
    scale_bits: Annotated[int, Field(ge=1, le=32, strict=True)] = 16


@method("ternary_fgq", "quantise", "Mellempudi, Kundu, Mudigere, Das, Kaul, Dubey, 'Ternary "
        "neural networks with fine-grained quantization', arXiv:1705.01462, 2017 (FGQ: TWN "
        "thresholds and scales per group)", FgqParams)
def ternary_fgq(w: np.ndarray, p: FgqParams) -> Compressed:
    """Fine-grained ternarisation: every filter's reduction (K, in (C, kh, kw) order) is cut
    into groups of ``group`` weights (our reading of FGQ's groups along the input channels),
    each ternarised by TWN's rule with its own ``Delta_g = threshold * mean|w_g|`` and
    ``alpha_g = mean(|w| : |w| > Delta_g)``: ``w -> alpha_g sign(w)`` where ``|w| > Delta_g``,
    else 0. Stored: 2 bits per weight plus one ``scale_bits`` scale per group."""
    rows = _rows(w).astype(np.float64)
    k = rows.shape[1]
    pad = (-k) % p.group
    g = np.pad(rows, ((0, 0), (0, pad))).reshape(rows.shape[0], -1, p.group)
    real = np.pad(np.ones_like(rows), ((0, 0), (0, pad))).reshape(g.shape)
    ax = np.abs(g)
    n = real.sum(axis=2, keepdims=True)
    delta = p.threshold * ax.sum(axis=2, keepdims=True) / n
    big = (ax > delta) & (real > 0)
    cnt = big.sum(axis=2, keepdims=True)
    alpha = np.divide((ax * big).sum(axis=2, keepdims=True), cnt,
                      out=np.zeros_like(delta), where=cnt > 0)
    q = np.where(big, alpha * np.sign(g), 0.0).reshape(rows.shape[0], -1)[:, :k]
    return Compressed(q.reshape(w.shape).astype(w.dtype), scheme="ternary", bits=2,
                      scale_bits=p.scale_bits / p.group)


class BinaryActParams(Params):
    #: threshold at the calibrated mean (an input-side shift folded into the bias) rather
    #: than at zero, which would map every post-ReLU input to +1
    center: bool = True

    @property
    def bits(self) -> int:
        return 1


@method("act_binary", "activation", "Rastegari, Ordonez, Redmon, Farhadi, 'XNOR-Net', ECCV "
        "2016 (binary inputs, X ~ beta sign(X), beta = mean|X|)", BinaryActParams)
def act_binary(x: np.ndarray, p: BinaryActParams) -> Callable[[np.ndarray], np.ndarray]:
    """The binary-input quantiser calibrated on ``x``: ``x -> mu + beta sign(x - mu)``
    (sign(0) = +1), ``beta = mean|x - mu|`` (XNOR-Net's L1 scale), ``mu`` the calibrated mean
    (0 with ``center: false``). The array sees the +-1 codes (1 bit; an XNOR PE); ``mu`` times
    a filter's weight sum is a per-filter constant folded into its bias, and ``beta`` scales
    the output."""
    mu = float(np.mean(x)) if p.center else 0.0
    beta = float(np.mean(np.abs(x - mu)))

    def quantise(v: np.ndarray) -> np.ndarray:
        return (mu + beta * np.where(v - mu >= 0, 1.0, -1.0)).astype(v.dtype)

    return quantise
