"""Activation functions computed by piecewise-linear segments or a lookup table: what a layer
carries when its nonlinearity is approximated, and what that costs per element.

A vector layer whose function is approximated carries a :class:`FunctionApprox`: the scalar
function (``sigmoid``, ``tanh``, ``gelu``, ``silu``, ``exp`` for a softmax, ``rsqrt`` for a
layernorm / rmsnorm), the scheme, its number of segments or table entries, the entries' bit
width and the input range they cover (outside it the function saturates to its asymptote).

**Hardware model** (per lane of the SIMD vector unit, :mod:`simulator.mapping.vector`):

* ``pwl``, ``S`` uniform segments over ``[lo, hi]``: clamp the input to the range (two
  comparisons), segment index ``floor((x - lo) S / (hi - lo))`` (one multiply-add), read the
  segment's slope and intercept (one table read of ``2 x bits``), ``y = a x + b`` (one
  multiply-add). Uniform segments need no search for the segment (Amin, Curtis, Hayes-Gill,
  "Piecewise linear approximation applied to nonlinear function of a neural network", IEE
  Proc. Circuits, Devices and Systems 1997 (PLAN), with uniform instead of PLAN's
  hand-placed segments).
* ``lut``, ``E`` entries over ``[lo, hi]``: clamp (two comparisons), index
  ``round((x - lo)(E - 1) / (hi - lo))`` (one multiply-add), one table read of ``bits``
  (Leboeuf et al., "High speed VLSI implementation of the hyperbolic tangent sigmoid function",
  ICCIT 2008: direct table lookup).

The stages are pipelined, so one evaluation occupies a lane for one cycle (as the LUT-based
special-function unit the flat counts of :data:`simulator.workload.spec.ELEMENTWISE_OPS`
assume for ``exp`` / ``tanh``); its energy is the sum of the stage actions (``compare``,
``mul_add`` at the lane's width, ``lut_read_bit`` per table bit read). The table
(``table_bits``) is written into the lane's table registers once per layer
(``lut_write_bit``), from the filter buffer. A ``softmax``
keeps its other exact operations (max, sum, divide: 3 per element) and a ``layernorm`` /
``rmsnorm`` all of its element operations; their approximated function (``exp`` per element,
``rsqrt`` once per row of ``row`` elements) replaces the one the flat count charged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The scalar function approximated for each layer function (a vector layer's op or label).
SCALAR_OF = {"sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu", "silu": "silu",
             "exp": "exp", "softmax": "exp", "layernorm": "rsqrt", "rmsnorm": "rsqrt"}
#: Layer functions that can be approximated (selector ``{type: ...}`` values in recipes).
FUNCTIONS = tuple(SCALAR_OF)
#: Exact vector ops per element the approximated scalar function replaces (the flat counts of
#: ``ELEMENTWISE_OPS``: sigmoid = exp, add, divide; gelu's 7 of its tanh form; ...); the
#: softmax loses only its exp, norms none (their rsqrt was amortised, i.e. free, in the flat
#: count).
REPLACED_PER_ELEMENT = {"sigmoid": 3, "tanh": 1, "gelu": 7, "silu": 4, "exp": 1, "softmax": 1,
                        "layernorm": 0, "rmsnorm": 0}
#: Functions evaluated once per row (a norm's rsqrt) rather than per element.
PER_ROW = frozenset({"layernorm", "rmsnorm"})


@dataclass(frozen=True, slots=True)
class FunctionApprox:
    """One layer's approximated function (module docstring): ``function`` is the layer's
    function (``softmax``, ``gelu``, ...), ``method`` ``pwl`` or ``lut``, ``entries`` the
    segments (pwl) or table entries (lut), ``bits`` the width of each stored coefficient or
    value, ``[lo, hi]`` the input range; ``row`` the elements per row of a norm (one ``rsqrt``
    per row)."""

    function: str
    method: Literal["pwl", "lut"]
    entries: int
    bits: int
    lo: float
    hi: float
    row: int | None = None

    @property
    def scalar(self) -> str:
        return SCALAR_OF[self.function]

    @property
    def entry_bits(self) -> int:
        """Bits read per evaluation: slope and intercept (pwl) or one value (lut)."""
        return 2 * self.bits if self.method == "pwl" else self.bits

    @property
    def table_bits(self) -> int:
        """Storage of the table in the vector unit."""
        return self.entries * self.entry_bits

    def evaluations(self, out_elements: int) -> int:
        """Function evaluations of a layer with ``out_elements`` outputs."""
        if self.function in PER_ROW:
            return -(-out_elements // (self.row or out_elements))
        return out_elements

    def counts(self, out_elements: int, vector_ops: int) -> dict[str, int]:
        """Vector-unit action counts of the layer (module docstring): ``vector_op`` the exact
        ops left, ``compare``, ``mul_add``, ``lut_read_bit`` of the evaluations, ``lut_write_bit``
        of loading the table; ``cycles_ops`` the lane-cycles (exact ops + one per evaluation)."""
        ev = self.evaluations(out_elements)
        exact = max(0, vector_ops - REPLACED_PER_ELEMENT[self.function] * out_elements)
        return {"vector_op": exact, "compare": 2 * ev,
                "mul_add": ev * (2 if self.method == "pwl" else 1),
                "lut_read_bit": ev * self.entry_bits, "lut_write_bit": self.table_bits,
                "cycles_ops": exact + ev}


class ApproxSpec(BaseModel):
    """The ``approx:`` field of a vector layer in a network spec or trace (its function is the
    layer's op, or a ``vector`` layer's ``label``)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    method: Literal["pwl", "lut"]
    entries: Annotated[int, Field(ge=1, le=1 << 16, strict=True)]
    bits: Annotated[int, Field(ge=2, le=32, strict=True)]
    lo: Annotated[float, Field(allow_inf_nan=False)]
    hi: Annotated[float, Field(allow_inf_nan=False)]
    row: Annotated[int, Field(gt=0, strict=True)] | None = None

    @model_validator(mode="after")
    def _range(self) -> ApproxSpec:
        if not self.lo < self.hi:
            raise ValueError(f"lo ({self.lo}) must be below hi ({self.hi})")
        if self.method == "lut" and self.entries < 2:
            raise ValueError(f"a lookup table needs at least 2 entries (got {self.entries})")
        return self

    def build(self, function: str) -> FunctionApprox:
        if function not in SCALAR_OF:
            raise ValueError(f"{function!r} has no approximation; approximable: "
                             f"{', '.join(FUNCTIONS)}")
        return FunctionApprox(function, self.method, self.entries, self.bits, self.lo,
                              self.hi, self.row)


def approx_fields(a: FunctionApprox) -> dict[str, object]:
    """The ``approx:`` mapping of ``a`` (as a spec or trace stores it)."""
    return {"method": a.method, "entries": a.entries, "bits": a.bits, "lo": a.lo, "hi": a.hi,
            "row": a.row}
