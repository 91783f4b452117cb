"""Convolution geometry shared by the lowering, the masks and the importers.

Output size is PyTorch's ``floor((H + 2p - d(k - 1) - 1) / s) + 1`` per axis
(``torch.nn.Conv2d`` documentation); :func:`touched` counts the input positions that any
window reads, which is what DRAM must deliver (padding is generated on chip).
"""

from __future__ import annotations

import math
from typing import Any


def pair(v: Any) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``[3, 5]`` or ``(3, 5) -> (3, 5)`` (a kernel, stride, padding, ...)."""
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def compact(v: Any) -> int | list[int]:
    """The spec form of a per-axis value: ``(3, 3) -> 3``, ``(3, 5) -> [3, 5]`` (inverse of
    :func:`pair`; importers write kernels, strides and paddings this way)."""
    values = [int(v)] if isinstance(v, int) else [int(x) for x in v]
    return values[0] if len(set(values)) == 1 else values


def conv_out(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """Output positions of a convolution along one axis (PyTorch's rule, module docstring)."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def touched(size: int, out: int, kernel: int, stride: int, pad: int = 0, dilation: int = 1) -> int:
    """Input positions along one axis that any window reads (a 1x1 stride-2 conv skips half).

    The unique ifmap elements a convolution needs from DRAM are the product of this over
    both axes times the channels; padding positions are generated on chip, not read.

    In closed form, its cost independent of ``size`` and ``out`` (``stride``, ``dilation``
    >= 1): window ``o`` reads ``o stride + k dilation - pad`` with tap ``k``. Taps ``k`` and
    ``k + T`` (``T = stride / gcd(stride, dilation)``) read the same residue modulo
    ``stride``, ``m = dilation / gcd`` strides apart, and different ``k < T`` different
    residues; so each of the ``min(kernel, T)`` residue classes is a set of runs of ``out``
    consecutive strides, ``m`` apart, clipped to ``[0, size)`` (tested equal to enumerating
    every position in ``tests/test_closed_form.py``)."""
    if size <= 0 or out <= 0 or kernel <= 0:
        return 0
    g = math.gcd(stride, dilation)
    period, m = stride // g, dilation // g
    total = 0
    for j in range(min(kernel, period)):
        start = j * dilation - pad
        r = start % stride  # the class's residue: positions r + stride * u, u >= 0
        total += _union(start // stride, (kernel - 1 - j) // period + 1, m, out,
                        (size - 1 - r) // stride)
    return total


def _union(a: int, n: int, m: int, length: int, hi: int) -> int:
    """Integers ``u`` in ``[0, hi]`` covered by runs ``[a + t m, a + t m + length - 1]``,
    ``t = 0..n-1``."""
    if hi < 0:
        return 0
    if m <= length:  # consecutive runs overlap or touch: one run
        return max(0, min(a + (n - 1) * m + length - 1, hi) - max(a, 0) + 1)
    t0 = max(0, -((a + length - 1) // m))  # the first run ending at or after 0
    t1 = min(n - 1, (hi - a) // m)  # the last run starting at or before hi
    if t1 < t0:
        return 0
    first, last = a + t0 * m, a + t1 * m + length - 1
    return (t1 - t0 + 1) * length - max(0, -first) - max(0, last - hi)
