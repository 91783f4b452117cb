"""Weights stored other than one value per element: bits that differ per output filter, and
block-circulant blocks stored as one vector each. Their storage bits per element, and the
per-filter stream cycles of a PE that streams weight bits serially.

* **Per-filter bits** (adaptive precision, ``Operand.filter_bits``): filter ``i``'s ``K``
  weights are stored packed at ``b_i`` bits, and each filter carries a
  :data:`WIDTH_FIELD_BITS`-bit field giving its width; so a weight element costs
  ``mean_i(storage(b_i)) + WIDTH_FIELD_BITS / K`` bits. A PE that streams weight bits
  (``bitserial`` with ``serial: weights``, UNPU, ISSCC 2018) spends ``b_i`` cycles per
  streamed value of filter ``i``: a fold whose columns hold filters ``i..j`` lasts as long as
  its widest filter (the columns run in lock-step), and when N is the streamed dimension
  (``is``) the stream is the sum of the filters' widths. Any other PE computes every filter
  padded to the layer's widest (the layer's ``bits``): no cycle is saved, the MAC is priced at
  that width, and the mapping says so in a note.
* **Block-circulant** (``structure="circulant"``, CirCNN, Ding et al. MICRO 2017): the
  ``K x N`` weight matrix, zero-padded to multiples of the block side ``b``, is stored as
  ``ceil(K/b) ceil(N/b)`` vectors of ``b`` values, i.e. ``ceil(K/b) ceil(N/b) b / (K N)``
  stored values per element (``1/b`` when ``b`` divides both). A systolic array computes the
  expanded dense blocks (each block's ``b`` rows are rotations of its vector, generated at the
  array edge by a ``b``-entry circular shift register as the vector is read once), so its
  MACs and cycles are dense while weight storage, DRAM and filter-SRAM traffic shrink; an FFT
  unit computes the blocks in the frequency domain instead (:mod:`simulator.mapping.circulant`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulator.workload.layer import Layer

#: Bits of the per-filter precision field (widths 1..32).
WIDTH_FIELD_BITS = 5


def circulant_values_per_element(K: int, N: int, block: int) -> float:
    """Stored values per weight element of a block-circulant ``K x N`` matrix (docstring)."""
    return -(-K // block) * -(-N // block) * block / (K * N)


def filter_storage_bits(layer: Layer, storage: Callable[[int], float]) -> float | None:
    """Stored bits per weight element of a layer with per-filter bits (None without them):
    the mean over filters of ``storage(b_i)`` (the PE kind's storage of a ``b_i``-bit value)
    plus the width field spread over the filter's ``K`` weights."""
    fb = layer.weight.filter_bits
    if fb is None:
        return None
    return float(np.mean([storage(int(b)) for b in fb])) + WIDTH_FIELD_BITS / layer.K


def filter_stream_cycles(layer: Layer, n: int) -> np.ndarray | None:
    """Cycles per streamed value of each of the GEMM's ``n`` output filters on a
    weight-serial PE (their bits), or None when the layer has no per-filter bits (or they no
    longer line up with the GEMM's filters: then the layer's widest is used). With ``count``
    groups (a grouped conv) the widest of each filter position over the groups is taken."""
    fb = layer.weight.filter_bits
    if fb is None or len(fb) != n * layer.count:
        return None
    return np.asarray(fb, dtype=np.int64).reshape(layer.count, n).max(axis=0)


def fold_stream_cycles(per: np.ndarray, stream_dim: str, stream_ext: np.ndarray,
                       stream_unit: np.ndarray, stream_per_tile: int, n_unit: np.ndarray,
                       n_lanes: int) -> np.ndarray:
    """Stream cycles of every fold of a weight-serial PE with per-filter cycles ``per``
    (length N): when N is spatial, the fold's ``stream_ext`` values times the widest filter of
    its column chunk (``n_unit``: the chunk of each fold, ``n_lanes`` filters each); when N is
    the streamed dimension, the sum of the widths of the filters in the fold's piece
    (``stream_unit``: the piece index, pieces of ``stream_per_tile`` filters)."""
    per = np.asarray(per, dtype=np.int64)
    if stream_dim == "N":
        cum = np.concatenate([[0], np.cumsum(per)])
        start = np.minimum(stream_unit * stream_per_tile, per.size)
        return cum[np.minimum(start + stream_ext, per.size)] - cum[start]
    widest = np.maximum.reduceat(per, np.arange(0, per.size, n_lanes))
    return stream_ext * widest[n_unit]


def precision_notes(layer: Layer, serial_weights: bool, kind: str, used_per_filter: bool,
                    block_dense: bool) -> list[str]:
    """What the mapping did with per-filter bits and circulant blocks, said plainly."""
    out = []
    fb = layer.weight.filter_bits
    if fb is not None and not used_per_filter:
        why = ("the pe streams activation bits" if not serial_weights
               else "its filters no longer line up with the GEMM's (pruned or shared)")
        out.append(f"layer {layer.name!r}: per-filter weight bits {min(fb)}..{max(fb)} run "
                   f"padded to {max(fb)} bits on pe {kind!r} ({why}): no cycle saved; "
                   f"weights stored packed per filter")
    if block_dense:
        b = layer.weight.block
        out.append(f"layer {layer.name!r}: block-circulant weights (b = {b}) stored as one "
                   f"vector per block (about {b}x fewer weight bytes) and "
                   f"computed as dense blocks on pe {kind!r} (no FFT unit)")
    return out
