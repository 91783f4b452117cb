"""Structured matrices: low rank (truncated SVD, Denton et al., NeurIPS 2014; the split
itself is :mod:`simulator.frontend.lowrank`, the rank by a budget
:mod:`simulator.frontend.rank_search`) and block-circulant weights (CirCNN, Ding et al.,
MICRO 2017).

Registered in :data:`simulator.frontend.methods.METHODS` (imported by
:mod:`simulator.frontend.recipe`).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field, model_validator

from simulator.frontend.methods import Compressed, Params, _rows, method


class CirculantParams(Params):
    block: Annotated[int, Field(ge=2, le=1 << 14, strict=True)]


def circulant_project(rows: np.ndarray, b: int) -> np.ndarray:
    """The nearest block-circulant matrix (Frobenius norm) to ``rows`` (``N x K``).

    The matrix is cut into ``b x b`` blocks (the last ones partial: only real entries count);
    block ``(i, j)`` becomes ``C[r, c] = v[(r - c) mod b]`` with ``v[d]`` the mean of the
    block's entries on its wrapped diagonal ``d``, which minimises ``||B - C||_F`` over
    circulant ``C`` (each ``v[d]`` appears on exactly the entries of diagonal ``d``).
    """
    n, k = rows.shape
    q, p = -(-n // b), -(-k // b)
    pad = np.zeros((q * b, p * b), dtype=np.float64)
    real = np.zeros_like(pad)
    pad[:n, :k], real[:n, :k] = rows, 1.0
    r, c = np.meshgrid(np.arange(b), np.arange(b), indexing="ij")
    diag = (r - c) % b  # the wrapped diagonal of every position of a block
    blocks = pad.reshape(q, b, p, b).transpose(0, 2, 1, 3)  # (q, p, b, b)
    present = real.reshape(q, b, p, b).transpose(0, 2, 1, 3)
    onehot = np.eye(b)[diag]  # (b, b, b): position -> diagonal
    sums = np.einsum("qprc,rcd->qpd", blocks, onehot)
    counts = np.einsum("qprc,rcd->qpd", present, onehot)
    v = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    full = v[:, :, diag]  # (q, p, b, b)
    return full.transpose(0, 2, 1, 3).reshape(q * b, p * b)[:n, :k]


@method("circulant", "structure", "Ding et al., 'CirCNN: accelerating and compressing deep "
        "neural networks using block-circulant weight matrices', MICRO 2017", CirculantParams)
def circulant(w: np.ndarray, p: CirculantParams) -> Compressed:
    """Project the weight matrix (``N x K``, K in (C, kh, kw) order) onto ``b x b`` circulant
    blocks (:func:`circulant_project`): each block is then one vector ``w_ij`` of ``b`` values,
    and ``W_ij x_j = IFFT(FFT(w_ij) o FFT(x_j))`` (CirCNN eq. 2): storage ``K N / b`` values and
    ``O(b log b)`` work per block instead of ``b^2``. With the recipe's ``finetune`` the
    projection is re-applied after every optimiser step (projected gradient descent: training
    stays on block-circulant weights, as CirCNN trains the vectors themselves)."""
    rows = _rows(w).astype(np.float64)
    out = circulant_project(rows, p.block).reshape(w.shape).astype(w.dtype)
    return Compressed(out, structure="circulant", block=p.block)


class LowRankParams(Params):
    rank: Annotated[int, Field(ge=1, strict=True)] | None = None
    #: the fraction of sum(sigma^2) the kept singular values hold
    energy: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    #: choose each layer's rank: the most-compressed ranks whose top-1 accuracy on the
    #: selection samples drops at most this much (simulator.frontend.rank_search)
    max_accuracy_drop: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    #: choose each layer's rank: the largest whose two layers' energy on ``arch`` is at most
    #: this fraction of the dense layer's
    max_energy_fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    #: the architecture file an energy budget is measured on
    arch: str | None = None
    #: training samples the accuracy budget is measured on
    samples: Annotated[int, Field(ge=16, strict=True)] = 512

    @model_validator(mode="after")
    def _one_choice(self) -> LowRankParams:
        given = [k for k in ("rank", "energy", "max_accuracy_drop", "max_energy_fraction")
                 if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of rank, energy, max_accuracy_drop, "
                             f"max_energy_fraction (got {', '.join(given)})")
        if (self.max_energy_fraction is None) != (self.arch is None):
            raise ValueError("max_energy_fraction and arch (the architecture file the energy "
                             "is measured on) go together")
        return self


@method("svd", "lowrank", "Denton, Zaremba, Bruna, LeCun, Fergus, 'Exploiting linear structure "
        "within convolutional networks', NeurIPS 2014 (truncated SVD)", LowRankParams)
def svd_factors(w: np.ndarray, p: LowRankParams) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD of the (out, K) weight matrix: ``W ~ B @ A`` with ``A`` (r, K), ``B`` (out, r).

    ``rank`` fixes r; ``energy`` keeps the smallest r whose singular values hold that fraction
    of sum(sigma^2). The factor ``sqrt(sigma)`` goes to both sides.
    """
    rows = _rows(w).astype(np.float64)
    u, s, vt = np.linalg.svd(rows, full_matrices=False)
    if p.rank is not None:
        r = min(p.rank, s.size)
    else:
        frac = np.cumsum(s**2) / np.sum(s**2)
        r = int(np.searchsorted(frac, p.energy if p.energy is not None else 0.9) + 1)
    root = np.sqrt(s[:r])
    a = (root[:, None] * vt[:r]).astype(w.dtype)
    b = (u[:, :r] * root[None, :]).astype(w.dtype)
    return a, b
