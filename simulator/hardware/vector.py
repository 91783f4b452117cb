"""The vector (SIMD) unit that runs pooling and element-wise layers."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from simulator.hardware.registries import VECTOR_UNITS
from simulator.mapping.circulant import map_circulant
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.schedule import Buffer, LayerMapping
from simulator.mapping.vector import map_vector
from simulator.registry import ParamsModel
from simulator.workload.layer import Layer


@VECTOR_UNITS.register("simd")
class Simd:
    """``lanes`` ALUs, each doing one primitive op (add, compare, multiply, LUT lookup) per
    cycle; a layer of ``n`` ops takes ``ceil(n / lanes)`` cycles (no pipeline fill modelled:
    it is negligible next to the element counts of real layers). Tensors without their own
    bit width move at ``act_bits``, the PE array's (given when the accelerator is built)."""

    class Params(ParamsModel):
        lanes: int = Field(gt=0, le=1 << 20)

    def __init__(self, name: str, params: Params, *, act_bits: int = 8, **_: object) -> None:
        self.name = name
        self.params = params
        self.act_bits = act_bits

    @property
    def lanes(self) -> int:
        return self.params.lanes

    @property
    def n_pes(self) -> int:
        return self.params.lanes

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int,
                  ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
        """Cycles and tiles of a pooling / element-wise layer (:mod:`simulator.mapping.vector`),
        or of a block-circulant GEMM placed here, in the frequency domain on the lanes
        (:mod:`simulator.mapping.circulant`); other GEMMs are a MappingError."""
        if layer.kind == "gemm":
            return map_circulant(layer, self.name, 1, 1, buffers, self.act_bits,
                                 self.act_bits, lanes=self.lanes, ctx=ctx)
        return map_vector(layer, self.name, self.lanes, buffers, self.act_bits, ctx)
