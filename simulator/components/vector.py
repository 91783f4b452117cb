"""The vector (SIMD) unit that runs pooling and element-wise layers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simulator.components.registries import VECTOR_UNITS


@VECTOR_UNITS.register("simd")
class Simd:
    """``lanes`` ALUs, each doing one primitive op (add, compare, multiply, LUT lookup) per
    cycle; a layer of ``n`` ops takes ``ceil(n / lanes)`` cycles (no pipeline fill modelled:
    it is negligible next to the element counts of real layers)."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        lanes: int = Field(gt=0, strict=True)

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name = name
        self.params = params

    @property
    def lanes(self) -> int:
        return self.params.lanes
