"""Convolution geometry shared by the lowering, the masks and the importers.

Output size is PyTorch's ``floor((H + 2p - d(k - 1) - 1) / s) + 1`` per axis
(``torch.nn.Conv2d`` documentation); :func:`touched` counts the input positions that any
window reads, which is what DRAM must deliver (padding is generated on chip).
"""

from __future__ import annotations

from typing import Any

import numpy as np


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
    """
    pos = (np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation) - pad
    pos = np.unique(pos)
    return int(((pos >= 0) & (pos < size)).sum())
