"""The ``lutnet`` compression method: plans a LUTNet layer (kept connections, input map).

Numpy only; the layer itself, trained by the frontend, is
:class:`simulator.frontend.lutnet.LUTLinear` (its docstring has the model and the citation).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from simulator.frontend.methods import Compressed, Fraction, Params, _keep_largest, method


class LutParams(Params):
    lut_inputs: Annotated[int, Field(ge=1, le=6, strict=True)] = 4
    mapping: Literal["tiled", "random"] = "tiled"
    prune: Fraction = 0.0
    seed: int = 0


def lut_corners(k: int) -> np.ndarray:
    """``(2^k, k)`` +-1 corners of a k-input LUT: entry ``e`` has ``+1`` at input ``j`` iff
    bit ``j`` of ``e`` is set."""
    e = np.arange(2**k)[:, None]
    return np.where((e >> np.arange(k)) & 1, 1.0, -1.0)


def lut_input_map(in_features: int, out_features: int, k: int, mapping: str,
                  rng: np.random.Generator) -> np.ndarray:
    """Which inputs each LUT reads: column 0 is the connection's own input ``i``; the other
    ``k - 1`` are drawn uniformly from the layer's inputs (``tiled``: one map per input,
    ``(in, k)``, shared by all neurons, as LUTNet's ``rand_map``; ``random``: one per neuron
    and input, ``(out, in, k)``)."""
    if mapping == "tiled":
        own = np.arange(in_features)[:, None]
        return np.concatenate([own, rng.integers(0, in_features, (in_features, k - 1))], axis=1)
    own = np.broadcast_to(np.arange(in_features)[None, :, None], (out_features, in_features, 1))
    extra = rng.integers(0, in_features, (out_features, in_features, k - 1))
    return np.concatenate([own, extra], axis=2)


@method("lutnet", "lut", "Wang, Davis, Cheung, Constantinides, 'LUTNet: Rethinking Inference "
        "in FPGA Soft Logic', FCCM 2019 (K-input LUT connections, random input map, XNOR "
        "initialisation); lut_inputs = 1: the XNOR-popcount BNN layer (Courbariaux et al. "
        "2016; FINN, FPGA 2017)", LutParams)
def lutnet_plan(w: np.ndarray, p: LutParams) -> Compressed:
    """Plan a LUTNet layer from a linear layer's weights (``(out, in)``): keep the largest
    ``1 - prune`` of the connections by magnitude (exact count), draw the input map.

    The frontend then replaces the layer by :class:`simulator.frontend.lutnet.LUTLinear`
    initialised from these weights and fine-tunes its LUT entries. Each kept connection is a
    ``2^K``-entry LUT: scheme ``lutnet`` with ``bits = 2^K`` stored bits per connection
    (``lut_inputs = 1``: scheme ``binary``, 1 bit, the XNOR-popcount layer).
    """
    if w.ndim != 2:
        raise ValueError(f"LUTNet layers are fully connected (got weights of shape {w.shape})")
    keep = _keep_largest(np.abs(w), w.size - round(p.prune * w.size)) & (w != 0)
    rng = np.random.default_rng(p.seed)
    imap = lut_input_map(w.shape[1], w.shape[0], p.lut_inputs, p.mapping, rng)
    k = p.lut_inputs
    return Compressed(np.where(keep, w, 0).astype(w.dtype), structure="unstructured",
                      scheme="binary" if k == 1 else "lutnet", bits=1 if k == 1 else 2**k,
                      extra={"input_map": imap})


__all__ = ["LutParams", "lut_corners", "lut_input_map", "lutnet_plan"]
