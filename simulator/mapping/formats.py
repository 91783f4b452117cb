"""Compressed storage formats: how many bits the values and the metadata of a mask take.

``dense``: every element. ``bitmask``: nonzeros plus one bit per element. ``csr`` / ``csc``:
nonzeros with a relative index of ``index_bits`` (zeros since the previous nonzero of the
row / column; a run of ``2**index_bits`` zeros or more costs a padding zero entry, as in EIE,
Han et al., ISCA 2016, section III-B) and one pointer per row / column. ``rle``: the same
over the flattened tensor, without pointers.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

Format = Literal["dense", "bitmask", "csr", "csc", "rle"]


class IndexWidths(Protocol):
    """The index and pointer widths of a format (``SparsityParams``)."""

    @property
    def index_bits(self) -> int: ...

    @property
    def pointer_bits(self) -> int: ...


def line_entries(lines: np.ndarray, index_bits: int) -> np.ndarray:
    """Stored entries per line (row of a 2-D ``lines`` mask): nonzeros plus the padding zeros
    a relative index of ``index_bits`` needs for runs of ``2**index_bits`` zeros or more."""
    rows, cols = np.nonzero(lines)
    entries = np.bincount(rows, minlength=lines.shape[0]).astype(np.int64)
    if len(cols):
        prev = np.empty_like(cols)
        prev[1:], prev[0] = cols[:-1], -1
        first = np.ones(len(cols), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        gaps = cols - np.where(first, -1, prev) - 1
        np.add.at(entries, rows, gaps >> index_bits)
    return entries


def format_bits(mask: np.ndarray, value_bits: int, fmt: str, index_bits: int,
                pointer_bits: int) -> tuple[float, float]:
    """Storage of a 2-D ``mask``'s values in ``fmt``: (value bits, metadata bits).

    ``dense``: every element. ``bitmask``: nonzeros + one bit per element. ``csr``/``csc``:
    nonzeros with a relative index of ``index_bits`` (zeros since the previous nonzero of the
    row/column; a run longer than ``2**index_bits - 1`` costs a padding zero entry, as in EIE,
    Han et al., ISCA 2016, section III-B) and one pointer per row/column. ``rle``: the same
    over the flattened tensor, without pointers.
    """
    if fmt == "dense":
        return float(mask.size * value_bits), 0.0
    nnz = int(mask.sum())
    if fmt == "bitmask":
        return float(nnz * value_bits), float(mask.size)
    lines = mask.T if fmt == "csc" else mask
    flat2 = lines.reshape(1, -1) if fmt == "rle" else lines
    entries = int(line_entries(flat2, index_bits).sum())
    pointers = 0 if fmt == "rle" else flat2.shape[0] + 1
    return float(entries * value_bits), float(entries * index_bits + pointers * pointer_bits)


def storage(mask: np.ndarray | None, shape: tuple[int, int], count: int, bits: float,
             fmt: str, p: IndexWidths) -> tuple[float, float]:
    """(stored bits / dense bits, metadata bytes) of ``count`` 2-D tensors in ``fmt``."""
    dense_bits = count * shape[0] * shape[1] * bits
    if fmt == "dense" or dense_bits == 0:
        return 1.0, 0.0
    if mask is None:  # dense operand in a sparse format: closed form, no nonzero() over ones
        size = count * shape[0] * shape[1]
        ptrs = count * ((shape[1] if fmt == "csc" else shape[0]) + 1) * p.pointer_bits
        meta_bits = float({"bitmask": size, "rle": size * p.index_bits}.get(
            fmt, size * p.index_bits + ptrs))
        return (dense_bits + meta_bits) / dense_bits, meta_bits / 8
    vals = meta = 0.0
    for i in range(count):  # groups: a handful except depthwise, each small
        v, md = format_bits(mask[i], int(bits), fmt, p.index_bits, p.pointer_bits)
        vals, meta = vals + v, meta + md
    return (vals + meta) / dense_bits, meta / 8
