"""SCNN's planar tiling: nonzero activations per PE tile and stride phase, and output halos.

Parashar et al., "SCNN", ISCA 2017, section IV: the ``H x W`` input plane of every channel is
cut into a grid of ``n_pes`` tiles (``rows = isqrt(n_pes)`` by ``n_pes // rows``), one per
PE; each PE owns the output positions of the same grid over the ``H_out x W_out`` output
plane.

* **Stride phases.** Output row ``oy`` takes input row ``y = oy s - pad + r d`` for tap ``r``,
  so a product of tap ``r`` and input row ``y`` lands on an output position iff
  ``(y + pad - r d) mod s == 0``: input rows and taps fall into ``s`` phase classes
  (``(y + pad) mod s`` and ``(r d) mod s``) and only equal classes pair; likewise for
  columns. A layer has ``s_h * s_w`` phases (1 at stride 1).
* **Halos.** The outputs PE ``(i, j)`` produces are those reachable from its input tile,
  rows ``ceil((y_lo + pad - (k - 1) d) / s) .. floor((y_hi - 1 + pad) / s)`` clipped to the
  plane; those outside its own output tile are its halo, sent to neighbours per filter.
  Counted from the dense footprint (an upper bound when activations are sparse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.mapping.masks import act_mask, act_tensor_mask
from simulator.workload.geometry import pair
from simulator.workload.layer import Layer


@dataclass(frozen=True, slots=True)
class Tiling:
    """What the Cartesian-product engine needs of a layer's planar tiling."""

    act_nnz: np.ndarray        # (groups, channels, PEs, phases) nonzero activations
    tap_phase: np.ndarray      # (taps,) phase index of each kernel tap (row-major kh x kw)
    halo_positions: int        # output positions summed over PEs outside their own tile
    mapping_efficiency: float  # input positions / (PEs x tile positions)
    act_density: float
    batch: int = 1             # samples, each tiled the same way one after another
    #: (groups, channels, taps) output positions per sample whose input at that tap is a
    #: nonzero (real, non-padding) activation: effectual MACs per weight (None: non-conv)
    tap_nnz: np.ndarray | None = None


def _grid(pes: int) -> tuple[int, int]:
    rows = math.isqrt(pes)
    return rows, pes // rows


def _footprint(lo: int, hi: int, k: int, s: int, p: int, d: int, out: int) -> tuple[int, int]:
    """Output index range ``[a, b)`` reachable from input rows ``[lo, hi)``."""
    if hi <= lo:
        return 0, 0
    a = max(0, -(-(lo + p - (k - 1) * d) // s))
    b = min(out, (hi - 1 + p) // s + 1)
    return a, max(a, b)


def _halo_1d(size: int, tiles: int, k: int, s: int, p: int, d: int,
             out: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Per tile along one axis: (footprint range, owned output range)."""
    t_in, t_out = -(-size // tiles), -(-out // tiles)
    return [(_footprint(i * t_in, min((i + 1) * t_in, size), k, s, p, d, out),
             (min(i * t_out, out), min((i + 1) * t_out, out))) for i in range(tiles)]


def conv_tiling(layer: Layer, pes: int, seed: int) -> Tiling:
    """Planar tiling of a convolution (module docstring)."""
    d = layer.dims
    c, h, wd = int(d["in_channels"]), int(d["in_h"]), int(d["in_w"])
    (kh, kw), (sh, sw) = pair(d["kernel"]), pair(d.get("stride", 1))
    (ph, pw), (dh, dw) = pair(d.get("padding", 0)), pair(d.get("dilation", 1))
    t = act_tensor_mask(layer, seed)
    t = np.ones((c, h, wd), dtype=bool) if t is None else t
    rows, cols = _grid(pes)
    th, tw = -(-h // rows), -(-wd // cols)
    pad = np.pad(t, ((0, 0), (0, th * rows - h), (0, tw * cols - wd)))
    yph = (np.arange(th * rows) + ph) % sh
    xph = (np.arange(tw * cols) + pw) % sw
    per_phase = []
    for fy in range(sh):
        for fx in range(sw):
            sel = pad * (yph == fy)[None, :, None] * (xph == fx)[None, None, :]
            per_phase.append(sel.reshape(c, rows, th, cols, tw).sum(axis=(2, 4))
                             .reshape(c, rows * cols))
    nnz = np.stack(per_phase, axis=2)                        # (C, PEs, phases)
    r = np.arange(kh) * dh % sh
    q = np.arange(kw) * dw % sw
    tap_phase = (r[:, None] * sw + q[None, :]).reshape(-1)
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    halo = 0
    for (ry, oy) in _halo_1d(h, rows, kh, sh, ph, dh, ho):
        for (rx, ox) in _halo_1d(wd, cols, kw, sw, pw, dw, wo):
            area = (ry[1] - ry[0]) * (rx[1] - rx[0])
            inter = (max(0, min(ry[1], oy[1]) - max(ry[0], oy[0]))
                     * max(0, min(rx[1], ox[1]) - max(rx[0], ox[0])))
            halo += area - inter
    g = layer.count
    batch = max(1, layer.M // (ho * wo))

    # per tap, the nonzero inputs it reads over the output plane: a strided slice of the
    # zero-padded input (the im2col's column sums, without building the im2col)
    tp = np.pad(t, ((0, 0), (ph, ph), (pw, pw)))
    per_tap = np.stack([tp[:, r * dh: r * dh + sh * (ho - 1) + 1: sh,
                           q * dw: q * dw + sw * (wo - 1) + 1: sw].sum(axis=(1, 2))
                        for r in range(kh) for q in range(kw)], axis=1)  # (C, taps)
    return Tiling(nnz.reshape(g, c // g, rows * cols, sh * sw), tap_phase, halo * batch,
                  h * wd / (rows * cols * th * tw), float(t.mean()), batch,
                  per_tap.reshape(g, c // g, kh * kw))


def row_tiling(layer: Layer, pes: int, seed: int) -> Tiling:
    """Non-conv layers: the M rows are the positions, split evenly over the PEs."""
    a = act_mask(layer, seed)
    g, m, k = layer.count, layer.M, layer.K
    a = np.ones((g, m, k), dtype=bool) if a is None else a
    per = -(-m // pes)
    ap = np.pad(a, ((0, 0), (0, per * pes - m), (0, 0)))
    nnz = ap.reshape(g, pes, per, k).sum(axis=2).transpose(0, 2, 1)[..., None]
    return Tiling(nnz, np.zeros(1, dtype=np.int64), 0, m / (per * pes), float(a.mean()))
