"""Adaptive precision: a bit width per output filter, chosen by a sensitivity search under an
accuracy budget (the per-parameter adaptive quantisation of Khoram & Li, "Adaptive
quantization of neural networks", ICLR 2018, at filter granularity; the quantisation-noise
criterion of Lin, Talathi, Annapureddy, "Fixed point quantization of deep convolutional
networks", ICML 2016).

Each filter ``i`` of a selected layer is quantised symmetrically with its own scale
(``s_i = max|w_i| / (2^(b-1) - 1)``) at the fewest of the candidate ``bits`` whose relative
error ``||w_i - q_b(w_i)|| / ||w_i||`` is at most a tolerance ``tau``; one ``tau`` for the
whole step is searched by bisection (in ``log tau``, 12 steps) for the largest value, i.e. the
fewest bits, whose top-1 accuracy on ``samples`` training examples stays within
``max_accuracy_drop`` of the model's before the step. So a filter the quantisation hurts
more keeps more bits, and the budget sets how far the whole step goes. ``granularity:
layer`` applies the same rule per layer (one width per layer). The trace carries each layer's
``filter_bits`` (its ``bits`` the widest); bit-serial-weight arrays run each filter at its
own width, others pad (:mod:`simulator.mapping.precision`).

Registered in :data:`simulator.frontend.methods.METHODS` as a model-level method (torch is
imported only when it runs).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from simulator.errors import SimulatorError
from simulator.frontend.methods import Compressed, Params, _rows, method


class AdaptiveParams(Params):
    bits: Annotated[list[Annotated[int, Field(ge=2, le=16, strict=True)]],
                    Field(min_length=1)] = Field(default_factory=lambda: [2, 3, 4, 5, 6, 8])
    max_accuracy_drop: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01
    samples: Annotated[int, Field(ge=16, strict=True)] = 512
    granularity: Literal["filter", "layer"] = "filter"

    @field_validator("bits")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        return sorted(set(v))


def quantise_rows(rows: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Symmetric fixed point of each row (filter) at its own ``bits[i]`` and scale."""
    qmax = (2.0 ** (bits.astype(np.float64) - 1) - 1)[:, None]
    amax = np.abs(rows).max(axis=1, keepdims=True)
    s = np.where(amax > 0, amax / qmax, 1.0)
    return np.clip(np.round(rows / s), -qmax, qmax) * s


def widths(rows: np.ndarray, cands: list[int], tau: float, per_filter: bool) -> np.ndarray:
    """The fewest candidate bits meeting the relative-error tolerance, per filter (or one
    for the layer), the widest candidate where none does."""
    n = rows.shape[0]
    norm = np.linalg.norm(rows, axis=1) if per_filter else np.full(n, np.linalg.norm(rows))
    out = np.full(n, cands[-1])
    done = np.zeros(n, dtype=bool)
    for b in cands:
        err = rows - quantise_rows(rows, np.full(n, b))
        e = np.linalg.norm(err, axis=1) if per_filter else np.full(n, np.linalg.norm(err))
        ok = ~done & (e <= tau * np.where(norm > 0, norm, 1.0))
        out[ok], done = b, done | ok
    return out


@method("adaptive_precision", "quantise", "Khoram & Li, 'Adaptive quantization of neural "
        "networks', ICLR 2018 (per-parameter widths under an accuracy constraint); Lin, "
        "Talathi, Annapureddy, ICML 2016 (quantisation-noise criterion)", AdaptiveParams,
        model_level=True)
def adaptive_precision(work: Any, step: Any) -> None:
    """Per-filter widths by a bisection on one error tolerance (module docstring)."""
    import torch

    from simulator.frontend.training import evaluate

    p: AdaptiveParams = step.params
    data = work.data
    if data.x_train is None or data.y_train is None:
        raise SimulatorError(f"{step.path} (adaptive_precision): the search measures accuracy "
                             f"on a training set, and the data {data.name!r} has none")
    x, y = data.x_train[:p.samples], data.y_train[:p.samples]
    layers = work.layers
    names = work.select(step, {n: la.spec["op"] for n, la in layers.items()})
    unique = list({(layers[n].param, layers[n].rows): layers[n] for n in names}.values())
    views = [work.weight(la) for la in unique]
    floats = [v.detach().clone() for v in views]
    per_filter = p.granularity == "filter"

    def apply(tau: float) -> list[np.ndarray]:
        chosen = []
        with torch.no_grad():
            for v, f in zip(views, floats, strict=True):
                rows = _rows(f.numpy()).astype(np.float64)
                b = widths(rows, p.bits, tau, per_filter)
                v.copy_(torch.from_numpy(quantise_rows(rows, b).reshape(f.shape)
                                         .astype(np.float32)))
                chosen.append(b)
        return chosen

    def restore() -> None:
        with torch.no_grad():
            for v, f in zip(views, floats, strict=True):
                v.copy_(f)

    base = evaluate(work.model, x, y)
    lo, hi = math.log(1e-4), math.log(1.0)
    best = lo
    for _ in range(12):
        mid = (lo + hi) / 2
        apply(math.exp(mid))
        if base - evaluate(work.model, x, y) <= p.max_accuracy_drop:
            best, lo = mid, mid
        else:
            hi = mid
    restore()
    chosen = apply(math.exp(best))
    drop = base - evaluate(work.model, x, y)
    for la, b in zip(unique, chosen, strict=True):
        fb = tuple(int(v) for v in b)
        out = Compressed(work.weight(la).detach().numpy(), scheme="int", bits=max(fb),
                         filter_bits=fb)
        for n in names:  # every layer of this parameter block
            if (layers[n].param, layers[n].rows) == (la.param, la.rows):
                work.record(n, out)
    mean = np.mean([float(b.mean()) for b in chosen]) if chosen else float("nan")
    work.notes.append(f"{step.path} (adaptive_precision): tolerance {math.exp(best):.3g}, "
                      f"mean {mean:.2f} bits per filter, top-1 {base:.4f} -> "
                      f"{base - drop:.4f} on {len(x)} training samples")
