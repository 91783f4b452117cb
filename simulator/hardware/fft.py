"""An FFT unit for block-circulant layers (CirCNN, Ding et al., MICRO 2017, section 5).

``butterflies`` radix-2 butterfly units and ``cmacs`` complex multiply-accumulate units in a
pipeline FFT -> element-wise product -> IFFT, fixed point at ``weight_bits`` x ``act_bits``
with ``acc_bits`` accumulators; counts and time: :mod:`simulator.mapping.circulant`. It runs
block-circulant layers only (any other layer is a :class:`~simulator.errors.MappingError`
naming the layer and the unit), so it sits beside an array that runs the rest
(``pe_arrays:`` with a placement rule, :mod:`simulator.arch.placement`).

Energy: a butterfly is 4 multiplies + 6 adds, a complex MAC 4 multiplies + 4 adds, priced
from the table's multiplier and adder curves (:meth:`arith_ops`). Area: those multipliers and
adders, plus a twiddle-factor ROM of ``max_block / 2`` complex values in registers.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from simulator.errors import MappingError
from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import pe_kind
from simulator.hardware.registries import PE_ARRAYS
from simulator.hardware.unit import ArithOps, ParamWidths
from simulator.mapping.circulant import BUTTERFLY_OPS, CMAC_OPS, circulant_work, map_circulant
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.schedule import Buffer, LayerMapping
from simulator.registry import ParamsModel
from simulator.workload.layer import Layer


@PE_ARRAYS.register("fft")
class FftUnit(ParamWidths):
    """Module docstring. ``n_pes`` is its complex MACs (utilisation is their busy share)."""

    class Params(ParamsModel):
        butterflies: int = Field(default=8, gt=0, le=1 << 16)
        cmacs: int = Field(default=16, gt=0, le=1 << 16)
        max_block: int = Field(default=256, ge=2, le=1 << 14)
        weight_bits: int = Field(default=16, gt=0, le=32, strict=True)
        act_bits: int = Field(default=16, gt=0, le=32, strict=True)
        acc_bits: int = Field(default=32, gt=0, le=64, strict=True)

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name, self.params = name, params
        self.kind: PEKind = pe_kind("mac")  # fixed-point multipliers and adders

    @property
    def n_pes(self) -> int:
        return self.params.cmacs

    @property
    def vector_lanes(self) -> None:
        """No natural width for a vector unit: the architecture must name one."""
        return None

    def arith_ops(self) -> dict[str, ArithOps]:
        """The unit's arithmetic actions as multiplies and adds (priced by energy models)."""
        return {"butterfly": ArithOps(**BUTTERFLY_OPS), "cmac": ArithOps(**CMAC_OPS)}

    def datapath(self) -> ArithOps:
        """Its multipliers, adders and register bits (for the area model)."""
        p = self.params
        regs = p.max_block // 2 * 2 * p.weight_bits
        return ArithOps(4 * (p.butterflies + p.cmacs), 6 * p.butterflies + 4 * p.cmacs, regs)

    def accepts(self, layer: Layer) -> str | None:
        """Why it cannot run ``layer`` (None: a block-circulant layer it can run)."""
        try:
            w = circulant_work(layer, self.name)
        except MappingError as exc:
            return str(exc)
        if w.block > self.params.max_block:
            return (f"layer {layer.name!r} cannot run on unit {self.name!r}: its circulant "
                    f"blocks ({w.block}) exceed max_block ({self.params.max_block})")
        return None

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int,
                  ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
        why = self.accepts(layer)
        if why is not None:
            raise MappingError(why)
        return map_circulant(layer, self.name, self.params.butterflies, self.params.cmacs,
                             buffers, self.act_bits, self.weight_bits, ctx=ctx)
