"""Compression methods: small registered functions over numpy weight tensors.

Each method takes a weight array (PyTorch layout: ``(C_out, C_in / g, k_h, k_w)`` for conv,
``(out, in)`` for linear) and its validated ``Params`` and returns a :class:`Compressed`: the
new weights plus what the hardware must know (structure, scheme, bits, codebook). Methods are
registered with their stage, which fixes the order in which a recipe may apply them (Deep
Compression: prune, then share, then quantise); activation quantisation and low-rank
factorisation change the model itself and are applied by :mod:`simulator.frontend.pipeline`.
*Model-level* methods (``model_level=True``: distillation, activation-function approximation,
early exits, per-sample masks, adaptive precision) get the whole compression state instead
(:class:`simulator.frontend.work.Work` and their step) and live in sibling modules.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.registry import Registry

#: Stages in the order a recipe must apply them: a student replaces the model first; low
#: rank and structured matrices reshape weights before pruning, sharing, quantisation and LUT
#: layers; activations are quantised, then nonlinearities approximated; exits are trained on
#: the compressed backbone; per-sample masks are measured on the final model.
STAGES = ("distill", "lowrank", "structure", "prune", "share", "quantise", "lut",
          "activation", "function", "exit", "measure")

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Bits = Annotated[int, Field(gt=0, le=32, strict=True)]


class Params(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Compressed:
    """A method's result: new weights and the operand fields it sets (None: unchanged)."""

    weight: np.ndarray
    structure: str | None = None
    scheme: str | None = None
    bits: int | None = None
    codebook_size: int | None = None
    scale_bits: float | None = None
    dequantize: bool | None = None
    #: circulant block side (structure "circulant")
    block: int | None = None
    #: bits per output filter (adaptive precision; ``bits`` is their maximum)
    filter_bits: tuple[int, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Method:
    """A registered compression method: its stage, citation, ``Params`` model and function."""

    name: str
    stage: str
    citation: str
    Params: type[Params]
    fn: Callable[..., Any]
    #: ``fn(work, step)`` on the whole compression state, not ``fn(weights, params)``
    model_level: bool = False


#: Every compression method, by the name a recipe step gives as ``method:``.
METHODS: Registry[Method] = Registry("compression method", key="method")


def method(name: str, stage: str, citation: str, params: type[Params], *,
           model_level: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as compression method ``name`` (duplicates are a bug)."""
    assert stage in STAGES, stage

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        METHODS.add(name, Method(name, stage, citation, params, fn, model_level))
        return fn

    return deco


def _rows(w: np.ndarray) -> np.ndarray:
    """Weights as (output channels, reduction) -- the GEMM's N x K, K in (C, kh, kw) order."""
    return w.reshape(w.shape[0], -1)


def _keep_largest(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Boolean mask keeping exactly ``n_keep`` largest scores (ties broken by position)."""
    mask = np.zeros(scores.size, dtype=bool)
    if n_keep > 0:
        mask[np.argsort(-scores.ravel(), kind="stable")[:n_keep]] = True
    return mask.reshape(scores.shape)


# ----------------------------------------------------------------------------- pruning


class SparsityParams(Params):
    sparsity: Fraction
    iterations: Annotated[int, Field(ge=1, strict=True)] = 1


@method("magnitude", "prune", "Han, Pool, Tran, Dally, 'Learning both weights and connections "
        "for efficient neural networks', NeurIPS 2015", SparsityParams)
def magnitude_prune(w: np.ndarray, p: SparsityParams) -> Compressed:
    """Zero the ``sparsity`` fraction of weights smallest in magnitude (per layer, exact count)."""
    keep = w.size - round(p.sparsity * w.size)
    mask = _keep_largest(np.abs(w), keep) & (w != 0)
    return Compressed(np.where(mask, w, 0).astype(w.dtype), structure="unstructured")


@method("filter_l1", "prune", "Li, Kadav, Durdanovic, Samet, Graf, 'Pruning filters for "
        "efficient ConvNets', ICLR 2017 (arXiv:1608.08710, 2016)", SparsityParams)
def filter_prune(w: np.ndarray, p: SparsityParams) -> Compressed:
    """Zero whole output filters with the smallest L1 norm (``sparsity`` = fraction of filters).

    The frontend also zeroes their biases, so the pruned output channels are exactly zero
    after ReLU and the next layer's input activations show the removed channels.
    """
    norms = np.abs(_rows(w)).sum(axis=1)
    keep = _keep_largest(norms, w.shape[0] - round(p.sparsity * w.shape[0]))
    shape = (-1,) + (1,) * (w.ndim - 1)
    return Compressed(np.where(keep.reshape(shape), w, 0).astype(w.dtype), structure="filter",
                      extra={"filters_kept": keep})


class NMParams(Params):
    n: Annotated[int, Field(ge=1, strict=True)] = 2
    m: Annotated[int, Field(ge=2, strict=True)] = 4

    @model_validator(mode="after")
    def _n_below_m(self) -> NMParams:
        if self.n >= self.m:
            raise ValueError(f"n ({self.n}) must be smaller than m ({self.m})")
        return self


@method("n_m", "prune", "Mishra et al., 'Accelerating sparse deep neural networks' "
        "(NVIDIA 2:4), arXiv:2104.08378, 2021", NMParams)
def nm_prune(w: np.ndarray, p: NMParams) -> Compressed:
    """Keep the ``n`` largest-magnitude weights of every ``m`` consecutive along the reduction.

    Groups run along K (input channel, kh, kw in PyTorch order) within each output channel,
    as the hardware's K dimension. A last partial group (K not a multiple of ``m``) keeps at
    most ``n`` of its values, which still satisfies the N:M constraint.
    """
    if p.n >= p.m:
        raise ValueError(f"n ({p.n}) must be smaller than m ({p.m})")
    rows = _rows(w)
    k = rows.shape[1]
    pad = (-k) % p.m
    mag = np.pad(np.abs(rows), ((0, 0), (0, pad)), constant_values=-1.0)
    groups = mag.reshape(rows.shape[0], -1, p.m)
    order = np.argsort(-groups, axis=2, kind="stable")
    keep = np.zeros_like(groups, dtype=bool)
    np.put_along_axis(keep, order[:, :, : p.n], True, axis=2)
    keep = keep.reshape(rows.shape[0], -1)[:, :k] & (rows != 0)
    return Compressed(np.where(keep, rows, 0).reshape(w.shape).astype(w.dtype),
                      structure=f"{p.n}:{p.m}")


# ----------------------------------------------------------------------------- sharing


class KMeansParams(Params):
    clusters: Annotated[int, Field(ge=2, le=65536, strict=True)]
    init: Literal["linear", "random", "density"] = "linear"
    seed: int = 0


@method("kmeans", "share", "Han, Mao, Dally, 'Deep Compression', ICLR 2016 (weight sharing by "
        "k-means, linear initialisation)", KMeansParams)
def kmeans_share(w: np.ndarray, p: KMeansParams) -> Compressed:
    """Replace nonzero weights by the nearest of ``clusters`` k-means centroids (scipy kmeans2).

    Pruned zeros stay zero and are not clustered (they are encoded by the sparse format);
    weights are then stored as ``ceil(log2 k)``-bit indices into the codebook.
    """
    from scipy.cluster.vq import kmeans2

    nz = w != 0
    values = w[nz].astype(np.float64)
    k = min(p.clusters, max(1, np.unique(values).size))
    rng = np.random.default_rng(p.seed)
    if p.init == "linear":
        init: Any = np.linspace(values.min(), values.max(), k)[:, None]
    elif p.init == "density":  # quantiles of the CDF, Deep Compression's "density-based"
        init = np.quantile(values, (np.arange(k) + 0.5) / k)[:, None]
    else:
        init = rng.choice(values, k, replace=False)[:, None]
    with warnings.catch_warnings():  # an empty cluster only leaves fewer distinct values
        warnings.simplefilter("ignore", UserWarning)
        centroids, labels = kmeans2(values[:, None], init, minit="matrix", iter=30, seed=rng)
    out = np.zeros_like(w)
    out[nz] = centroids[labels, 0].astype(w.dtype)
    return Compressed(out, bits=max(1, math.ceil(math.log2(p.clusters))),
                      codebook_size=p.clusters)


# ----------------------------------------------------------------------------- quantisation


class FixedParams(Params):
    bits: Annotated[int, Field(ge=2, le=32, strict=True,
                               description="at least 2 (1 bit: use the `binary` method)")]
    per_channel: bool = True


@method("fixed_point", "quantise", "Krishnamoorthi, 'Quantizing deep convolutional networks "
        "for efficient inference: a whitepaper', arXiv:1806.08342, 2018 (symmetric)", FixedParams)
def fixed_point(w: np.ndarray, p: FixedParams) -> Compressed:
    """Symmetric uniform quantisation to ``bits`` (levels ``-(2^(b-1)-1) .. 2^(b-1)-1``).

    Scale = max|W| / (2^(b-1) - 1), per output channel or per tensor; 1 bit is binary.
    """
    qmax = 2 ** (p.bits - 1) - 1
    if qmax < 1:
        raise ValueError("bits must be at least 2 for fixed point (use `binary` for 1 bit)")
    absmax = (np.abs(_rows(w)).max(axis=1) if p.per_channel
              else np.full(w.shape[0], np.abs(w).max()))
    scale = np.where(absmax > 0, absmax / qmax, 1.0).reshape((-1,) + (1,) * (w.ndim - 1))
    q = np.clip(np.round(w / scale), -qmax, qmax)
    return Compressed((q * scale).astype(w.dtype), scheme="int", bits=p.bits)


class LogParams(Params):
    bits: Bits
    fsr: int | None = None


def log_quantise(x: np.ndarray, bits: int, fsr: int) -> np.ndarray:
    """MIY16: ``LogQuant(x) = 0 if x == 0 else sign(x) 2^clip(round(log2|x|), FSR - 2^bits, FSR)``.

    Miyashita, Lee, Murmann, 'Convolutional neural networks using logarithmic data
    representation', arXiv:1603.01025, 2016 (eq. 3, as reference/compression.md).
    """
    ax = np.abs(x)
    with np.errstate(divide="ignore"):
        e = np.clip(np.round(np.log2(np.where(ax > 0, ax, 1.0))), fsr - 2 ** bits, fsr)
    return np.where(ax > 0, np.sign(x) * np.exp2(e), 0.0).astype(x.dtype)


@method("log", "quantise", "Miyashita, Lee, Murmann, arXiv:1603.01025, 2016", LogParams)
def log_quant(w: np.ndarray, p: LogParams) -> Compressed:
    """Log (power-of-two) quantisation by the MIY16 formula; ``bits`` is the exponent width.

    FSR defaults to ``round(log2 max|W|)``, the exponent of the largest weight. Stored bits
    are ``bits + 1`` (a sign bit beside the exponent code).
    """
    fsr = p.fsr if p.fsr is not None else int(np.round(np.log2(np.abs(w).max())))
    return Compressed(log_quantise(w, p.bits, fsr), scheme="pow2", bits=p.bits + 1)


class Pow2Params(Params):
    bits: Annotated[int, Field(ge=2, le=16, strict=True)]


@method("pow2", "quantise", "Zhou, Yao, Guo, Xu, Chen, 'Incremental network quantization', "
        "ICLR 2017 (INQ weight set, one-shot here)", Pow2Params)
def pow2_quant(w: np.ndarray, p: Pow2Params) -> Compressed:
    """INQ17 levels ``{0, +-2^n2 .. +-2^n1}``, ``n1 = floor(log2(4 max|W| / 3))``,
    ``n2 = n1 + 1 - 2^(b-1) / 2``; each weight goes to the level ``beta`` with
    ``beta <= |w| < 3 beta / 2`` (values below ``2^n2 / 2`` become 0). One-shot, no retraining.
    """
    amax = float(np.abs(w).max())
    if amax == 0:
        return Compressed(w, scheme="pow2", bits=p.bits)
    n1 = math.floor(math.log2(4 * amax / 3))
    n2 = n1 + 1 - 2 ** (p.bits - 1) // 2
    ax = np.abs(w)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(ax > 0, ax, 1.0) * 4 / 3))  # beta <= |w| < 1.5 beta
    e = np.minimum(e, n1)
    # the smallest level's lower neighbour is 0, so its interval starts at 2^n2 / 2
    q = np.where(ax >= 2.0**n2 / 2, np.sign(w) * np.exp2(np.maximum(e, n2)), 0.0)
    return Compressed(q.astype(w.dtype), scheme="pow2", bits=p.bits)


class NoParams(Params):
    pass


@method("binary", "quantise", "Rastegari, Ordonez, Redmon, Farhadi, 'XNOR-Net', ECCV 2016 "
        "(binary-weight networks, per-filter scale)", NoParams)
def binary(w: np.ndarray, p: NoParams) -> Compressed:
    """``W ~ alpha sign(W)``, ``alpha = mean|W|`` per output filter (BWN); sign(0) = +1."""
    alpha = np.abs(_rows(w)).mean(axis=1).reshape((-1,) + (1,) * (w.ndim - 1))
    return Compressed((alpha * np.where(w >= 0, 1.0, -1.0)).astype(w.dtype), scheme="binary",
                      bits=1)


class TernaryParams(Params):
    threshold: Annotated[float, Field(gt=0.0)] = 0.7


@method("ternary", "quantise", "Li, Zhang, Liu, 'Ternary weight networks', arXiv:1605.04711, "
        "2016 (TWN)", TernaryParams)
def ternary(w: np.ndarray, p: TernaryParams) -> Compressed:
    """TWN: ``Delta = 0.7 mean|W|``; ``alpha`` = mean of ``|w| > Delta``; ``w -> alpha sign(w)``
    where ``|w| > Delta``, else 0 (per layer)."""
    ax = np.abs(w)
    delta = p.threshold * ax.mean()
    big = ax > delta
    alpha = ax[big].mean() if big.any() else 0.0
    return Compressed(np.where(big, alpha * np.sign(w), 0.0).astype(w.dtype), scheme="ternary",
                      bits=2)


class BfpParams(Params):
    bits: Annotated[int, Field(ge=2, le=32, strict=True)]
    block: Annotated[int, Field(ge=1, strict=True)] = 16


@method("bfp", "quantise", "Drumond, Lin, Jaggi, Falsafi, 'Training DNNs with hybrid block "
        "floating point', NeurIPS 2018 (shared exponent per block)", BfpParams)
def block_fp(w: np.ndarray, p: BfpParams) -> Compressed:
    """Block floating point: blocks of ``block`` values along K share one exponent.

    Per block ``e = floor(log2 max|x|) + 1`` and ``x -> clip(round(x / 2^(e-m+1))) 2^(e-m+1)``
    with ``m = bits`` (sign included, symmetric). ``bits`` excludes the amortised exponent.
    """
    qmax = 2 ** (p.bits - 1) - 1
    if qmax < 1:
        raise ValueError("bits must be at least 2 for block floating point")
    rows = _rows(w).astype(np.float64)
    k = rows.shape[1]
    pad = (-k) % p.block
    blocks = np.pad(rows, ((0, 0), (0, pad))).reshape(rows.shape[0], -1, p.block)
    amax = np.abs(blocks).max(axis=2, keepdims=True)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(amax > 0, amax, 1.0))) + 1
    scale = np.exp2(e - p.bits + 1)
    q = np.clip(np.round(blocks / scale), -qmax, qmax) * scale
    out = q.reshape(rows.shape[0], -1)[:, :k].reshape(w.shape)
    return Compressed(out.astype(w.dtype), scheme="bfp", bits=p.bits)


# ----------------------------------------------------------------------------- activations


class ActParams(Params):
    bits: Bits
    calibration: Literal["max", "percentile"] = "max"
    percentile: Annotated[float, Field(gt=50.0, le=100.0)] = 99.99


@method("act_fixed_point", "activation", "Jacob et al., 'Quantization and training of neural "
        "networks for efficient integer-arithmetic-only inference', CVPR 2018 (calibrated "
        "ranges)", ActParams)
def act_scale(x: np.ndarray, p: ActParams) -> tuple[float, bool]:
    """Calibrate a per-tensor scale from sample inputs ``x``: (scale, unsigned).

    Unsigned (post-ReLU, ``0 .. 2^b - 1``) when no sample is negative, else symmetric.
    """
    ax = np.abs(x).ravel()
    rng = float(ax.max() if p.calibration == "max" else np.percentile(ax, p.percentile))
    unsigned = bool((x >= 0).all())
    levels = 2**p.bits - 1 if unsigned else 2 ** (p.bits - 1) - 1
    if levels < 1:
        raise ValueError("bits must be at least 2 for signed activations")
    return (rng / levels if rng > 0 else 1.0), unsigned


def quantise_activation(x: np.ndarray, scale: float, unsigned: bool, bits: int) -> np.ndarray:
    """Fake-quantise ``x`` with a calibrated scale (round to nearest, saturate)."""
    lo, hi = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
    return np.clip(np.round(x / scale), lo, hi) * scale
