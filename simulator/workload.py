"""Workloads: layers lowered to a GEMM view (or a vector op); loading by file kind.

Network specs are validated and lowered in :mod:`simulator.network_spec`; traces in
:mod:`simulator.trace`; SCALE-Sim topologies in :mod:`simulator.scalesim`.

Lowering (DESIGN.md section 3), batch ``B``:

* ``conv2d`` (stride, padding, dilation, groups ``g``; depthwise is ``g == C_in == C_out``):
  ``g`` independent GEMMs with ``M = B * H_out * W_out``, ``K = (C_in / g) * k_h * k_w``,
  ``N = C_out / g``. Output size is PyTorch's ``floor((H + 2p - d(k - 1) - 1) / s) + 1``.
* ``linear``: ``M = B * tokens``, ``K = in_features``, ``N = out_features``.
* ``matmul`` (batched, e.g. attention heads): ``batch * B`` GEMMs of ``M x K @ K x N``; the
  right operand is an activation, not a weight, and goes through the filter buffer.
* pooling and element-wise ops run on the vector unit: ``vector_ops`` primitive operations
  (compare, add, multiply; an exp/tanh on a LUT-based special-function unit counts as one) and
  their input and output tensors cross the memory system. They are reported, never dropped.

``ifmap_elements`` / ``filter_elements`` / ``ofmap_elements`` are the unique elements of each
tensor (the ifmap before im2col expansion and without padding, which the array generates),
which is what DRAM must move at least once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simulator.errors import WorkloadError
from simulator.yaml_loader import read_yaml


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def touched(size: int, out: int, kernel: int, stride: int, pad: int = 0, dilation: int = 1) -> int:
    """Input positions along one axis that any window reads (a 1x1 stride-2 conv skips half).

    The unique ifmap elements a convolution needs from DRAM are the product of this over
    both axes times the channels; padding positions are generated on chip, not read.
    """
    pos = (np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation) - pad
    pos = np.unique(pos)
    return int(((pos >= 0) & (pos < size)).sum())


@dataclass(frozen=True, slots=True, eq=False)
class Operand:
    """What the hardware sees of one operand tensor of a layer after compression.

    ``bits``: storage bits per value (``None``: as the architecture's PE array is configured).
    ``density``: fraction of nonzero values (1.0 = dense). ``mask``: optional boolean nonzero
    mask in the tensor's own layout -- weights ``(C_out, C_in / groups, k_h, k_w)`` for conv,
    ``(out_features, in_features)`` for linear; activations (the layer's input) ``(C, H, W)``
    for conv, ``(tokens, features)`` for linear, ``(batch, M, K)`` for matmul. ``structure``:
    ``"unstructured"``, ``"N:M"`` (e.g. ``"2:4"``), ``"channel"`` or ``"filter"``. ``scheme``:
    the quantisation scheme (``int``, ``fp``, ``pow2``, ``binary``, ``ternary``, ``bfp``).
    ``codebook_size``: entries of a weight-sharing codebook (values stored as indices).
    """

    bits: int | None = None
    density: float = 1.0
    mask: np.ndarray | None = None
    structure: str = "unstructured"
    scheme: str = "int"
    codebook_size: int | None = None


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer as the hardware sees it: a GEMM view (``kind="gemm"``) or a vector op.

    ``count`` independent GEMMs of ``M x K @ K x N`` (conv groups x batched-matmul batch).
    ``weight`` describes the right operand (the filter; for a matmul, an activation) and
    ``activation`` the left one (the ifmap), each with bits, density and optional mask.
    """

    name: str
    op: str
    kind: Literal["gemm", "vector"]
    M: int = 0
    K: int = 0
    N: int = 0
    count: int = 1
    ifmap_elements: int = 0
    filter_elements: int = 0
    ofmap_elements: int = 0
    vector_ops: int = 0
    filter_is_weight: bool = True
    weight: Operand = field(default_factory=Operand)
    activation: Operand = field(default_factory=Operand)
    dims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def weight_bits(self) -> int | None:
        return self.weight.bits

    @property
    def act_bits(self) -> int | None:
        return self.activation.bits

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer (0 for vector ops)."""
        return self.count * self.M * self.K * self.N


@dataclass(frozen=True, slots=True)
class Workload:
    """A named sequence of layers with its provenance."""

    name: str
    layers: tuple[Layer, ...]
    source: str = ""
    path: str = ""
    seed: int = 0

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def load_workload(path: str | Path, *, ofmap_rounding: str = "scalesim") -> Workload:
    """Load a network spec (``.yaml``), a SCALE-Sim topology (``.csv``) or a compressed
    workload trace (a directory or ``.zip``, :mod:`simulator.trace`).

    ``ofmap_rounding`` applies to topology CSVs only: ``"scalesim"`` uses SCALE-Sim's
    ``ceil((H - F + S) / S)`` so cycle counts match it; ``"floor"`` uses the correct
    ``floor((H - F) / S) + 1`` (they differ when ``(H - F)`` is not a multiple of the stride).
    """
    p = Path(path)
    if p.suffix == ".csv":
        from simulator.scalesim import load_topology

        return load_topology(p, ofmap_rounding=ofmap_rounding)
    if p.suffix in (".yaml", ".yml"):
        from simulator.network_spec import parse_network

        return parse_network(read_yaml(p, WorkloadError), source=str(p))
    if p.is_dir() or p.suffix == ".zip":
        from simulator.trace import read_trace

        return read_trace(p).workload
    if not p.exists():
        raise WorkloadError(str(p), [("", "file not found")])
    raise WorkloadError(str(p), [("", "unsupported workload: expected a network spec .yaml, "
                                      "a SCALE-Sim topology .csv or a trace dir/.zip")])
