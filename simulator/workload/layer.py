"""Workloads: layers lowered to a GEMM view (or a vector op), their operands, networks.

Network specs are lowered to layers in :mod:`simulator.workload.spec`; file loading by
kind is :mod:`simulator.workload.loader`.

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
from typing import Any, Literal

import numpy as np

from simulator.errors import WorkloadError
from simulator.workload.approx import FunctionApprox
from simulator.workload.dynamic import ExitPlan

#: The name ``Layer.inputs`` gives the network's input.
NETWORK_INPUT = "input"


@dataclass(frozen=True, slots=True, eq=False)
class Operand:
    """What the hardware sees of one operand tensor of a layer after compression.

    ``bits``: storage bits per value (``None``: as the architecture's PE array is configured).
    ``density``: fraction of nonzero values (1.0 = dense). ``mask``: optional boolean nonzero
    mask in the tensor's own layout -- weights ``(C_out, C_in / groups, k_h, k_w)`` for conv,
    ``(out_features, in_features)`` for linear; activations (the layer's input) ``(C, H, W)``
    for conv, ``(tokens, features)`` for linear, ``(batch, M, K)`` for matmul. ``structure``:
    ``"unstructured"``, ``"N:M"`` (e.g. ``"2:4"``), ``"channel"`` or ``"filter"``. ``scheme``:
    the quantisation scheme (``int``, ``fp``, ``pow2``, ``binary``, ``ternary``, ``bfp``;
    ``lutnet``: each weight a ``bits``-entry LUT of a LUTNet layer).
    ``codebook_size``: entries of a weight-sharing codebook (values stored as indices, ``bits``
    = ``ceil(log2 codebook_size)``). ``value_bits``: width of the decoded values the multiplier
    sees (the codebook's entries; ``None``: the PE array's ``weight_bits``). ``mask_model``:
    how a mask is drawn for an operand that carries only a density (``iid`` or ``magnitude``,
    :mod:`simulator.mapping.masks`).
    ``codebook_size``: entries of a weight-sharing codebook (values stored as indices).
    ``scale_bits``: storage bits per value of the quantisation metadata stored with the tensor
    (scales, zero points, group indices), e.g. an fp16 scale and a 4-bit zero point per group
    of 128 weights is ``(16 + 4) / 128 = 0.15625``; it moves with the values (DRAM, SRAM).
    ``dequantize``: the values are de-quantised (``s (q - z)``) to the other operand's precision
    at the array edge before the MAC (weight-only quantisation, W4A16; a quantised KV cache):
    MACs run at the activation precision and each value read into the array costs one
    ``dequantize`` action.
    ``block``: with ``structure="circulant"``, the side ``b`` of the circulant blocks the
    weight matrix is partitioned into (CirCNN, Ding et al. MICRO 2017): each ``b x b`` block is
    stored as one vector of ``b`` values (:mod:`simulator.mapping.circulant`).
    ``filter_bits``: bits of each output filter's weights when they differ per filter
    (adaptive precision); ``bits`` is then the widest of them.
    ``mask_set``: nonzero masks of one operand over several inputs, ``(samples, *mask
    shape)`` (an activation measured per calibration sample); ``mask`` is the first of them.
    """

    bits: int | None = None
    density: float = 1.0
    mask: np.ndarray | None = None
    structure: str = "unstructured"
    scheme: str = "int"
    codebook_size: int | None = None
    value_bits: int | None = None
    mask_model: str = "iid"
    scale_bits: float = 0.0
    dequantize: bool = False
    block: int | None = None
    filter_bits: tuple[int, ...] | None = None
    mask_set: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer as the hardware sees it: a GEMM view (``kind="gemm"``) or a vector op.

    ``count`` independent GEMMs of ``M x K @ K x N`` (conv groups x batched-matmul batch).
    ``weight`` describes the right operand (the filter; for a matmul, an activation) and
    ``activation`` the left one (the ifmap), each with bits, density and optional mask.
    ``output_bits``: storage bits per output element when they differ from the activation
    precision (a vector layer that quantises, e.g. appending to an 4-bit KV cache, incl. its
    scales); ``None``: the activation bits. ``approx``: the layer's nonlinearity computed by
    segments or a table (:mod:`simulator.workload.approx`); ``None``: exact (flat counts).
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
    output_bits: float | None = None
    approx: FunctionApprox | None = None
    #: names of the layers whose outputs this layer reads, in operand order (``None``: the
    #: previous layer, or the network input for the first); ``"input"`` is the network input;
    #: a residual add names both branches, a matmul its left and right operand
    inputs: tuple[str, ...] | None = None

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
    """A named sequence of layers with its provenance; ``exits``: early-exit branches with
    their measured exit rates (:mod:`simulator.workload.dynamic`)."""

    name: str
    layers: tuple[Layer, ...]
    source: str = ""
    path: str = ""
    seed: int = 0
    exits: ExitPlan | None = None

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def producers(self) -> list[tuple[int, ...]]:
        """For every layer, the indices of the layers it reads in operand order (``-1``: the
        network input). ``Layer.inputs`` names them; without it a layer reads the layer
        before it (the first layer: the network input), skipping the layers of early-exit
        heads other than its own (``exits.head_layers``: a head reads the layer it branches
        from, and so does the backbone layer after the head)."""
        index = {layer.name: i for i, layer in enumerate(self.layers)}
        index[NETWORK_INPUT] = -1
        head_of = {index[n]: h for h, head in enumerate(self.exits.head_layers
                                                        if self.exits is not None else ())
                   for n in head if n in index}
        out: list[tuple[int, ...]] = []
        for i, layer in enumerate(self.layers):
            if layer.inputs is None:
                j = i - 1
                while j in head_of and head_of[j] != head_of.get(i):
                    j -= 1
                out.append((j,))
                continue
            unknown = [n for n in layer.inputs if index.get(n, i) >= i]
            if unknown:
                raise WorkloadError(self.path or self.name, [(
                    f"layers[{i}] ({layer.name}).inputs",
                    f"{unknown} are not layers before {layer.name!r} (or {NETWORK_INPUT!r})")])
            out.append(tuple(index[name] for name in layer.inputs))
        return out
