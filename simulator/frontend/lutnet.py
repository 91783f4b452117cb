"""LUTNet-style layers: a binarised fully connected layer whose connections are K-input LUTs.

Wang, Davis, Cheung, Constantinides, "LUTNet: Rethinking Inference in FPGA Soft Logic", FCCM
2019 (and its repository, awai54st/LUTNet): in a binarised network every XNOR of an input bit
with a weight bit is an FPGA LUT that computes far less than it could. LUTNet replaces each such
XNOR by a K-input LUT whose inputs are the original input ``x_i`` and ``K - 1`` further inputs
of the same layer, picked at random, and *learns* the LUT's ``2^K`` entries; a neuron sums its
LUT outputs (popcount) as before. Training uses the LUT's multilinear (Lagrange) interpolation
over the hypercube, ``f(x) = sum_e c_e prod_k (1 + s_ek x_k) / 2`` with ``s_e`` the +-1 corner
of entry ``e``: exact on +-1 inputs (one term is 1), differentiable in between. Entries are
binarised to +-1 in the forward pass (straight-through estimator, as the binary weights of
BNNs), with a per-neuron scale. LUTNet initialises each LUT to the XNOR of its trained BNN
weight, ``c_e = sign(w) s_e0``, so the layer starts as the BNN and retraining can only use
the extra inputs; pruned connections (LUTNet prunes before expanding) stay empty.

Input mapping (which extra inputs a LUT reads): ``tiled`` draws one random map per input
position, shared by every neuron (LUTNet's code: ``rand_map`` of shape ``(window, 1)``, so one
physical LUT input group serves all the layer's neurons in its tiled architecture); ``random``
draws independently per neuron and input. ``lut_inputs = 1`` is the XNOR-popcount layer itself
(tables tied to ``c = (-t, +t)``): the binarised baseline LUTNet compares with.

Inputs are binarised by a learned threshold per input, ``x_b = sign(x - theta)`` (the
thresholding unit of FINN, which absorbs batch normalisation), initialised to the calibration
median so each input bit is balanced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulator.frontend.lutmap import lut_corners


def _ste_sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) forward (+1 at 0); gradient of clamp(x, -1, 1) backward (BNN's STE)."""
    clipped = x.clamp(-1.0, 1.0)
    return clipped + (torch.where(x >= 0, 1.0, -1.0) - clipped).detach()


#: magnitude of the latent (real-valued) LUT entries at initialisation: small, so that a few
#: hundred Adam steps can flip an entry's sign (as the latent weights of a BNN)
LATENT = 0.05


class LUTLinear(nn.Linear):
    """Binarised linear layer of K-input LUT connections (module docstring).

    ``weight`` keeps the binarised BNN weights (zeros where pruned) so that importers and
    traces see the layer's shape and its kept connections; the LUT entries are ``tables``.
    """

    mask: torch.Tensor
    input_map: torch.Tensor
    signs: torch.Tensor

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, input_map: np.ndarray,
                 threshold: np.ndarray) -> None:
        out_f, in_f = weight.shape
        super().__init__(in_f, out_f, bias=bias is not None)
        k = input_map.shape[-1]
        self.lut_inputs = k
        mask = (weight != 0).astype(np.float32)
        sign = np.where(weight >= 0, 1.0, -1.0) * mask
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(sign.astype(np.float32)))
            if bias is not None:
                self.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        alpha = np.abs(weight).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
        self.alpha = nn.Parameter(torch.from_numpy(alpha.astype(np.float32)))
        self.theta = nn.Parameter(torch.from_numpy(threshold.astype(np.float32)))
        self.register_buffer("mask", torch.from_numpy(mask))
        self.register_buffer("input_map", torch.from_numpy(input_map.astype(np.int64)))
        self.register_buffer("signs", torch.from_numpy(lut_corners(k).astype(np.float32)))
        # k = 1, XNOR-popcount: c = (-t, +t) with t the binary weight; else LUTNet's
        # initialisation, the XNOR of x_i with the weight: c_e = sign(w) s_e0
        init = sign if k == 1 else sign[..., None] * lut_corners(k)[None, None, :, 0]
        self.tables = nn.Parameter(torch.from_numpy((LATENT * init).astype(np.float32)))

    def entries(self) -> torch.Tensor:
        """The binarised LUT entries ``(out, in, 2^K)``, zero where pruned."""
        t = _ste_sign(self.tables)
        if self.lut_inputs == 1:
            t = torch.stack([-t, t], dim=-1)
        return t * self.mask[..., None]

    #: while True, forward is the binarised GEMM the layer replaces (for the importer's trace)
    as_linear = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = _ste_sign(x - self.theta)
        if self.as_linear:
            return F.linear(xb, self.weight, self.bias)
        groups = xb[:, self.input_map]  # tiled: (B, in, K); random: (B, out, in, K)
        terms = (1 + groups.unsqueeze(-2) * self.signs) / 2  # (..., 2^K, K)
        basis = terms.prod(dim=-1)  # the Lagrange basis: one-hot on +-1 inputs
        c = self.entries()
        if self.input_map.dim() == 2:
            y = torch.einsum("bie,oie->bo", basis, c)
        else:
            y = torch.einsum("boie,oie->bo", basis, c)
        y = y * self.alpha
        return y + self.bias if self.bias is not None else y


@contextmanager
def traced_as_linear(model: nn.Module) -> Iterator[None]:
    """Within the block every :class:`LUTLinear` of ``model`` computes as the binarised linear
    layer it replaces: its kept connections (``weight``, zeros where pruned) on its +-1 inputs.

    The importer traces operators, not modules; this is what the hardware runs as one GEMM
    (its shape, its weight mask, its dense +-1 inputs), so the trace names it after its
    weight, as any linear layer, instead of the gather / product / einsum of its training
    form."""
    luts = [m for m in model.modules() if isinstance(m, LUTLinear)]
    for m in luts:
        m.as_linear = True
    try:
        yield
    finally:
        for m in luts:
            m.as_linear = False


__all__ = ["LUTLinear", "traced_as_linear"]
