"""Dataflows of a systolic array: which GEMM dimensions go where, and the fold loop order.

A layer is a GEMM ``(M x K) @ (K x N)`` (see :mod:`simulator.workload.layer`). A dataflow maps
two of the three dimensions onto the array's rows and columns and streams the third through it
(Samajdar et al., "SCALE-Sim", arXiv:1811.02883, section III):

======  ==========  =============  ==========  ====================
name    rows take   columns take   streamed    stationary operand
======  ==========  =============  ==========  ====================
``os``  M           N              K           outputs (accumulate)
``ws``  K           N              M           filter (weights)
``is``  K           M              N           ifmap
======  ==========  =============  ==========  ====================

One *fold* is one spatial mapping of the array. Its cycles follow SCALE-Sim 3.0.0's closed form
(reference/scalesim.md): ``T + R + C - 2`` for ``os`` (fill, stream T values, drain)
and ``2R + C + T - 2`` for ``ws``/``is``, whose stationary operand first takes R cycles to shift
into the array. Folds are visited as two nested loops over the two spatial dimensions; the
*outer* dimension is chosen so that, in ``ws`` and ``is``, the reduction dimension K is the inner
loop and partial sums accumulate in the ofmap buffer instead of leaving the chip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dim = Literal["M", "K", "N"]


@dataclass(frozen=True, slots=True)
class Dataflow:
    """One dataflow: the dimension on rows, on columns, streamed, and the outer fold loop."""

    name: str
    rows: Dim
    cols: Dim
    outer: Dim

    @property
    def stream(self) -> Dim:
        (dim,) = {"M", "K", "N"} - {self.rows, self.cols}
        return dim  # type: ignore[return-value]

    @property
    def inner(self) -> Dim:
        return self.cols if self.outer == self.rows else self.rows

    @property
    def preload(self) -> bool:
        """True when a stationary *input* is shifted into the array before streaming (ws, is)."""
        return self.stream != "K"

    def fold_cycles(self, rows: int, cols: int, stream: int) -> int:
        """Cycles of one fold on an R x C array streaming ``stream`` values (SCALE-Sim 3.0.0)."""
        return stream + rows + cols - 2 + (rows if self.preload else 0)


DATAFLOWS: dict[str, Dataflow] = {
    "os": Dataflow("os", rows="M", cols="N", outer="M"),
    "ws": Dataflow("ws", rows="K", cols="N", outer="N"),
    "is": Dataflow("is", rows="K", cols="M", outer="M"),
}
