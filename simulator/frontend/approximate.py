"""Activation-function approximation: sigmoid, tanh, GELU, SiLU, exp (for softmax) and the
reciprocal square root (for layernorm / rmsnorm) by uniform piecewise-linear segments or a
lookup table, with the approximation in place while the frontend measures accuracy.

* ``pwl`` (``segments: S``, ``bits``, ``range: [lo, hi]``): knots ``x_k = lo + k h``,
  ``h = (hi - lo) / S``; on segment ``k`` the chord ``y = a_k x + b_k``,
  ``a_k = (f(x_{k+1}) - f(x_k)) / h``, ``b_k = f(x_k) - a_k x_k`` (exact at the knots). The
  interpolation error on a segment is at most ``h^2 / 8 max|f''|`` (the linear-interpolation
  remainder, e.g. Burden & Faires, Numerical Analysis, Thm 3.3); PLAN (Amin, Curtis,
  Hayes-Gill, IEE Proc. Circuits, Devices and Systems 1997) is the classic hardware sigmoid of
  this form (with hand-placed segments).
* ``lut`` (``entries: E``, ``bits``, ``range``): ``E`` samples ``f(lo + k (hi - lo)/(E - 1))``,
  the nearest taken (error at most ``(hi - lo) / (2 (E - 1)) max|f'|``; Leboeuf et al., "High
  speed VLSI implementation of the hyperbolic tangent sigmoid function", ICCIT 2008).

Coefficients and table values are stored at ``bits`` (signed fixed point, one scale per table:
``s = max|v| / (2^(bits-1) - 1)``, ``v -> round(v / s) s``). Outside ``[lo, hi]`` the function
saturates to its asymptote: sigmoid 0 / 1, tanh -1 / 1, GELU and SiLU 0 / ``x``, exp 0 below
(and ``f(hi)`` above: a softmax's ``x - max`` is never positive), rsqrt ``f(lo)`` / ``f(hi)``.
Default ranges: sigmoid and SiLU ``[-8, 8]``, tanh and GELU ``[-4, 4]``, exp ``[-16, 0]``;
rsqrt the calibrated range of ``var + eps``. The hardware cost of a table is the vector unit's
(:mod:`simulator.workload.approx`).

Registered in :data:`simulator.frontend.methods.METHODS` as model-level methods (torch is
imported only when they run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from simulator.frontend.methods import Params, method
from simulator.workload.approx import FunctionApprox


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[float])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


#: The exact scalar functions.
EXACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid, "tanh": np.tanh, "gelu": _gelu, "silu": lambda x: x * _sigmoid(x),
    "exp": np.exp, "rsqrt": lambda x: 1.0 / np.sqrt(x)}
DEFAULT_RANGE = {"sigmoid": (-8.0, 8.0), "silu": (-8.0, 8.0), "tanh": (-4.0, 4.0),
                 "gelu": (-4.0, 4.0), "exp": (-16.0, 0.0)}
#: Module classes whose function can be approximated, by name -> the layer function.
MODULES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "GELU": "gelu", "SiLU": "silu",
           "Softmax": "softmax", "LayerNorm": "layernorm", "RMSNorm": "rmsnorm"}


def _quantise(v: np.ndarray, bits: int) -> np.ndarray:
    amax = float(np.abs(v).max())
    if amax == 0:
        return v
    s = amax / (2 ** (bits - 1) - 1)
    return np.round(v / s) * s


def _outside(scalar: str, x: np.ndarray, lo: float, hi: float, y: np.ndarray) -> np.ndarray:
    f = EXACT[scalar]
    low = {"sigmoid": 0.0, "tanh": -1.0, "gelu": 0.0, "silu": 0.0, "exp": 0.0}.get(
        scalar, float(f(np.array(lo))))
    ident = scalar in ("gelu", "silu")
    high = x if ident else {"sigmoid": 1.0, "tanh": 1.0}.get(scalar, float(f(np.array(hi))))
    return np.where(x < lo, low, np.where(x > hi, high, y))


def approximate(fn: FunctionApprox) -> Callable[[np.ndarray], np.ndarray]:
    """The approximated scalar function of ``fn`` (module docstring), vectorised."""
    f, lo, hi, n = EXACT[fn.scalar], fn.lo, fn.hi, fn.entries
    if fn.method == "pwl":
        h = (hi - lo) / n
        knots = lo + h * np.arange(n + 1)
        fk = f(knots)
        a = _quantise((fk[1:] - fk[:-1]) / h, fn.bits)
        b = _quantise(fk[:-1] - (fk[1:] - fk[:-1]) / h * knots[:-1], fn.bits)

        def pwl(x: np.ndarray) -> np.ndarray:
            k = np.clip(np.floor((x - lo) / h), 0, n - 1).astype(np.int64)
            return _outside(fn.scalar, x, lo, hi, a[k] * x + b[k]).astype(x.dtype)

        return pwl
    table = _quantise(f(lo + (hi - lo) / (n - 1) * np.arange(n)), fn.bits)

    def lut(x: np.ndarray) -> np.ndarray:
        k = np.clip(np.round((x - lo) / (hi - lo) * (n - 1)), 0, n - 1).astype(np.int64)
        return _outside(fn.scalar, x, lo, hi, table[k]).astype(x.dtype)

    return lut


def pwl_error_bound(scalar: str, lo: float, hi: float, segments: int) -> float:
    """``h^2 / 8 max|f''|`` over ``[lo, hi]`` (``f''`` sampled on a fine grid)."""
    h = (hi - lo) / segments
    x = np.linspace(lo, hi, 20001)
    f = EXACT[scalar](x)
    d2 = np.abs(np.gradient(np.gradient(f, x), x))
    return float(h * h / 8 * d2.max())


class _ApproxParams(Params):
    bits: Annotated[int, Field(ge=2, le=32, strict=True)] = 8
    range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _ApproxParams:
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"range must be [lo, hi] with lo < hi (got {list(self.range)})")
        return self


class PwlParams(_ApproxParams):
    segments: Annotated[int, Field(ge=1, le=1 << 16, strict=True)]


class LutParams(_ApproxParams):
    entries: Annotated[int, Field(ge=2, le=1 << 16, strict=True)]


def _run(work: Any, step: Any, scheme: str) -> None:
    import torch
    from torch import nn

    model = work.model
    mods = dict(model.named_modules())
    cands = {la.name: MODULES[type(mods[la.module]).__name__] for la in work.imported.layers
             if la.spec.get("op") == "vector" and la.module in mods
             and type(mods[la.module]).__name__ in MODULES}
    names = work.select(step, cands)
    p = step.params
    seen: dict[str, np.ndarray] = {}
    by_module = {next(la.module for la in work.imported.layers if la.name == n): cands[n]
                 for n in names}

    def grab(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            seen.setdefault(name, args[0].detach().numpy())
        return hook

    handles = [mods[m].register_forward_pre_hook(grab(m)) for m in by_module]
    with torch.no_grad():
        model(work.data.calibration)
    for hd in handles:
        hd.remove()
    for m, function in by_module.items():
        mod, x = mods[m], seen[m]
        scalar = {"softmax": "exp", "layernorm": "rsqrt", "rmsnorm": "rsqrt"}.get(function,
                                                                                  function)
        row = None
        if function == "softmax":
            row = int(x.shape[getattr(mod, "dim", -1) if getattr(mod, "dim", None) is not None
                              else -1])
        elif function in ("layernorm", "rmsnorm"):
            row = math.prod(mod.normalized_shape)
        lo, hi = p.range if p.range is not None else DEFAULT_RANGE.get(scalar, (0.0, 0.0))
        if p.range is None and scalar == "rsqrt":
            lo, hi = _norm_range(mod, x, function)
        entries = p.segments if scheme == "pwl" else p.entries
        fn = FunctionApprox(function, scheme, entries, p.bits, lo, hi, row)  # type: ignore[arg-type]
        work.approx[m] = fn
        mod.register_forward_hook(_replacement(mod, function, approximate(fn)))


def _norm_range(mod: Any, x: np.ndarray, function: str) -> tuple[float, float]:
    """The calibrated range of ``var + eps`` (layernorm) or ``mean(x^2) + eps`` (rmsnorm)."""
    dims = tuple(range(-len(mod.normalized_shape), 0))
    eps = float(mod.eps if mod.eps is not None else np.finfo(np.float32).eps)
    v = (x.var(axis=dims) if function == "layernorm" else (x * x).mean(axis=dims)) + eps
    return float(v.min()), float(v.max()) if v.max() > v.min() else float(v.min()) * 2


def _replacement(mod: Any, function: str, f: Callable[[np.ndarray], np.ndarray]) -> Any:
    """A forward hook returning the module's output computed with ``f`` (numpy, no grad)."""
    import torch

    def hook(m: Any, args: tuple[Any, ...], out: Any) -> Any:
        x = args[0].detach().numpy().astype(np.float64)
        if function == "softmax":
            dim = m.dim if m.dim is not None else -1
            e = f(x - x.max(axis=dim, keepdims=True))
            y = e / e.sum(axis=dim, keepdims=True)
        elif function in ("layernorm", "rmsnorm"):
            dims = tuple(range(-len(m.normalized_shape), 0))
            eps = float(m.eps if m.eps is not None else np.finfo(np.float32).eps)
            if function == "layernorm":
                c = x - x.mean(axis=dims, keepdims=True)
                y = c * f(x.var(axis=dims, keepdims=True) + eps)
            else:
                y = x * f((x * x).mean(axis=dims, keepdims=True) + eps)
            if getattr(m, "weight", None) is not None:
                y = y * m.weight.detach().numpy()
            if getattr(m, "bias", None) is not None:
                y = y + m.bias.detach().numpy()
        else:
            y = f(x)
        # contiguous, as the module's own output is (a strided one changes the next
        # operator's ATen form, e.g. linear's addmm into mm + add)
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))

    return hook


@method("pwl", "function", "Amin, Curtis, Hayes-Gill, 'Piecewise linear approximation "
        "applied to nonlinear function of a neural network', IEE Proc. Circuits, Devices and "
        "Systems 1997 (PLAN), with uniform segments", PwlParams, model_level=True)
def pwl(work: Any, step: Any) -> None:
    """Replace the selected functions by ``segments`` uniform linear segments at ``bits``
    (module docstring: ``y = a_k x + b_k`` on segment ``k``, error at most
    ``h^2 / 8 max|f''|`` before coefficient rounding)."""
    _run(work, step, "pwl")


@method("lut", "function", "Leboeuf et al., 'High speed VLSI implementation of the hyperbolic "
        "tangent sigmoid function', ICCIT 2008 (direct table lookup)", LutParams,
        model_level=True)
def lut(work: Any, step: Any) -> None:
    """Replace the selected functions by an ``entries``-entry table at ``bits`` (module
    docstring: the nearest of ``f(lo + k (hi - lo) / (E - 1))``)."""
    _run(work, step, "lut")
