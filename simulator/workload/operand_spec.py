"""The compression fields every GEMM layer of a network spec may carry (weights' bits,
density, structure, scheme, codebook, scales, circulant blocks, per-filter bits) and the
operands they lower to; the layer ops themselves are in :mod:`simulator.workload.spec`."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulator.workload.layer import Operand
from simulator.workload.structure import nm_pattern, unquoted_nm


class SpecBase(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    #: the layers whose outputs this one reads, in operand order (default: the layer listed
    #: before it; ``input``: the network input)
    inputs: Annotated[list[str], Field(min_length=1)] | None = None


Density = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
Bits = Annotated[int, Field(gt=0, le=64, strict=True)]


class GemmSpec(SpecBase):
    """Compression fields shared by GEMM layers (all optional: absent = dense, arch bits).

    Densities without masks get seeded random masks at simulation time
    (:mod:`simulator.sparsity`); ``codebook_size`` stores weights as ``ceil(log2 k)``-bit
    indices into a k-entry codebook (Deep Compression); with it, ``weight_bits`` is the width
    of the codebook's entries (the decoded weights the multiplier sees; default: the PE's).
    ``weight_mask_model``: how a density-only weight mask is drawn (``iid``; ``magnitude``:
    uneven rows and columns as magnitude pruning leaves them, :mod:`simulator.mapping.masks`).
    ``weight_structure: circulant`` with ``weight_block: b``: block-circulant weights stored as
    one vector per ``b x b`` block; ``weight_filter_bits``: one bit width per output filter
    (``weight_bits`` is then their maximum).
    """

    weight_bits: Bits | None = None
    act_bits: Bits | None = None
    weight_density: Density = 1.0
    act_density: Density = 1.0
    weight_structure: str = "unstructured"
    weight_scheme: Literal["int", "fp", "pow2", "binary", "ternary", "bfp", "lutnet"] = "int"
    codebook_size: Annotated[int, Field(ge=2, strict=True)] | None = None
    weight_mask_model: Literal["iid", "magnitude"] = "iid"
    #: quantisation metadata (scales, zero points) in bits per weight value
    weight_scale_bits: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0
    #: weight-only quantisation: values de-quantised to the activation precision
    weight_dequantize: bool = False
    #: side of the circulant blocks (weight_structure: circulant)
    weight_block: Annotated[int, Field(ge=2, le=1 << 14, strict=True)] | None = None
    #: bits of each output filter's weights (adaptive precision)
    weight_filter_bits: Annotated[list[Bits], Field(min_length=1)] | None = None

    @field_validator("weight_structure", mode="before")
    @classmethod
    def _structure(cls, v: Any) -> Any:
        if (hint := unquoted_nm(v)) is not None:
            raise ValueError(hint)
        if isinstance(v, str) and (v in ("unstructured", "filter", "channel", "circulant")
                                   or nm_pattern(v) is not None):
            return v
        raise ValueError(f"must be unstructured, filter, channel, circulant or 'N:M' "
                         f"(got {v!r})")

    @model_validator(mode="after")
    def _structured(self) -> GemmSpec:
        if (self.weight_structure == "circulant") != (self.weight_block is not None):
            raise ValueError("weight_structure: circulant and weight_block go together "
                             "(the block side b)")
        if self.weight_filter_bits is not None and self.weight_bits is not None \
                and max(self.weight_filter_bits) != self.weight_bits:
            raise ValueError(f"weight_bits ({self.weight_bits}) must be the largest of "
                             f"weight_filter_bits (max {max(self.weight_filter_bits)})")
        return self

    def weight_operand(self) -> Operand:
        bits, value_bits = self.weight_bits, None
        fbits = tuple(self.weight_filter_bits) if self.weight_filter_bits else None
        if fbits is not None:
            bits = max(fbits)
        if self.codebook_size is not None:
            bits = max(1, math.ceil(math.log2(self.codebook_size)))
            value_bits = self.weight_bits
        return Operand(bits=bits, density=self.weight_density, structure=self.weight_structure,
                       scheme=self.weight_scheme, codebook_size=self.codebook_size,
                       value_bits=value_bits, mask_model=self.weight_mask_model,
                       scale_bits=self.weight_scale_bits, dequantize=self.weight_dequantize,
                       block=self.weight_block, filter_bits=fbits)

    def _check_filters(self, filters: int) -> None:
        if self.weight_filter_bits is not None and len(self.weight_filter_bits) != filters:
            raise ValueError(f"weight_filter_bits has {len(self.weight_filter_bits)} entries; "
                             f"the layer has {filters} output filters")

    def act_operand(self) -> Operand:
        return Operand(bits=self.act_bits, density=self.act_density)


COMPRESSION_FIELDS = {"name", "op", "inputs", "weight_bits", "act_bits", "weight_density",
                      "act_density", "weight_structure", "weight_scheme", "codebook_size",
                      "weight_mask_model", "weight_scale_bits", "weight_dequantize",
                      "weight_block", "weight_filter_bits"}
