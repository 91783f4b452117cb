"""PE arrays. The dense systolic array follows SCALE-Sim's compute model exactly.

Reference: Samajdar et al., "A Systematic Methodology for Characterizing Scalability of DNN
Accelerators using SCALE-Sim", ISPASS 2020; cycle closed forms of SCALE-Sim 3.0.0 as checked
against its output (reference/scalesim.md and tests/golden/scalesim/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from simulator.errors import ConfigError, SimulatorError
from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import pe_kind
from simulator.hardware.registries import PE_ARRAYS
from simulator.hardware.unit import ParamWidths
from simulator.mapping.dataflows import DATAFLOWS, Dataflow
from simulator.mapping.operands import needs_sparse_view
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.rowstationary import Scratchpads, map_rs
from simulator.mapping.schedule import (
    MAX_FOLDS,
    Buffer,
    LayerMapping,
    check_mappable,
    check_size,
)
from simulator.mapping.sparsity import SparsityParams
from simulator.mapping.systolic import STATIONARY, GemmPlan, map_gemm, map_planned_all, plan_gemm
from simulator.registry import ParamsModel
from simulator.workload.layer import Layer

#: Hard limits (a larger array is a typo, and its area and cycle counts overflow) and the
#: warning band: TPU v1's matrix unit has 65,536 MACs (Jouppi et al., ISCA 2017).
MAX_SIDE = 1 << 16
MAX_PES = 1 << 24
PLAUSIBLE_PES = 4 * 65_536


@PE_ARRAYS.register("systolic")
class SystolicArray(ParamWidths):
    """A ``rows x cols`` grid of MAC PEs with nearest-neighbour links and one dataflow.

    One PE does one multiply-accumulate per cycle. Operands are ``act_bits``/``weight_bits``
    wide in memory; partial sums are ``acc_bits`` wide (they only leave the chip when the
    ofmap buffer cannot hold them); outputs are written back requantised to ``act_bits``, the
    next layer's input precision. ``pe`` selects the PE kind (``mac``, ``shift``, ``xnor``,
    ``ternary``, ``bitserial``, ``bitfusion``, ``bfp``; a name or ``{impl: name, ...}``) whose
    geometry and rate change the folds (:mod:`simulator.hardware.pe`). ``sparsity``
    configures zero gating/skipping, N:M structured weights and compressed storage formats
    (:mod:`simulator.mapping.sparsity`). ``dataflow: rs`` is Eyeriss's row-stationary
    dataflow on the same grid of PEs, each with ``scratchpads``
    (:mod:`simulator.mapping.rowstationary`).
    """

    class Params(ParamsModel):
        rows: int = Field(gt=0, le=MAX_SIDE)
        cols: int = Field(gt=0, le=MAX_SIDE)
        dataflow: Literal["os", "ws", "is", "rs"]
        pe: str | dict[str, Any] = "mac"
        weight_bits: int = Field(default=8, gt=0, le=64, strict=True)
        act_bits: int = Field(default=8, gt=0, le=64, strict=True)
        acc_bits: int = Field(default=32, gt=0, le=128, strict=True)
        sparsity: SparsityParams = SparsityParams()
        #: per-PE scratchpads of the row-stationary dataflow (``rs`` only)
        scratchpads: Scratchpads = Scratchpads()

        @model_validator(mode="after")
        def _size(self) -> SystolicArray.Params:
            if self.rows * self.cols > MAX_PES:
                raise ValueError(f"rows x cols = {self.rows * self.cols:,} PEs; at most "
                                 f"{MAX_PES:,} are modelled")
            return self

        def implausible(self) -> list[tuple[str, str]]:
            n = self.rows * self.cols
            return [("rows", f"{self.rows} x {self.cols} = {n:,} PEs is more than 4x a TPU v1 "
                             f"MXU ({PLAUSIBLE_PES:,}); intended?")] if n > PLAUSIBLE_PES else []

        @field_validator("pe")
        @classmethod
        def _pe(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
            try:
                pe_kind(v)
            except ConfigError as exc:
                raise ValueError("; ".join(f"{p}: {m}" for p, m in exc.errors)) from None
            return v

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name = name
        self.params = params
        self.kind: PEKind = pe_kind(params.pe)

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int,
                  ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
        """Folds, tiling and tiles of a GEMM layer (:func:`simulator.mapping.systolic.map_gemm`;
        row-stationary: :func:`simulator.mapping.rowstationary.map_rs`)."""
        if self.params.dataflow == "rs":
            return map_rs(layer, self, buffers, seed, ctx)
        df = self.dataflow
        size = {"M": layer.M, "K": layer.K, "N": layer.N}
        folds = layer.count * -(-size[df.rows] // self.rows) * -(-size[df.cols] // self.cols)
        check_size(layer.name, f"{self.rows}x{self.cols} {df.name} folds", folds, MAX_FOLDS,
                   "MAX_FOLDS")
        return map_gemm(layer, self, buffers, seed, ctx)

    def plan_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int,
                   ctx: MappingContext = DEFAULT_CONTEXT) -> GemmPlan | None:
        """The first part of :meth:`map_layer` (operands, fold grid, tiling search problem;
        :func:`simulator.mapping.systolic.plan_gemm`), for searching several layers at once
        (:func:`simulator.mapping.search.choose_all`) and then finishing each
        (:meth:`map_plan`); ``None`` where the layer's own mapping is the cheaper way:
        row-stationary (its search runs per pass candidate), operands with masks or sparsity
        (deriving their view draws or reads the masks), too many folds (the layer's mapping
        reports it) and a layer the PE cannot run (likewise)."""
        if self.params.dataflow == "rs" or needs_sparse_view(layer, self.params.sparsity):
            return None
        df = self.dataflow
        size = {"M": layer.M, "K": layer.K, "N": layer.N}
        try:
            check_mappable(layer)
            if layer.count * -(-size[df.rows] // self.rows) * -(-size[df.cols] // self.cols) \
                    > MAX_FOLDS:
                return None
            return plan_gemm(layer, self, buffers, seed, ctx)
        except SimulatorError:  # raised again, in layer order, when the layer is mapped
            return None

    def map_plans(self, plans: Sequence[GemmPlan]) -> list[LayerMapping]:
        """:meth:`map_layer` of layers :meth:`plan_layer` planned, all at once (equal
        mappings; :func:`simulator.mapping.systolic.map_planned_all`)."""
        return map_planned_all(plans)

    @property
    def scratchpads(self) -> Scratchpads:
        return self.params.scratchpads

    @property
    def stationary(self) -> str:
        """The operand kept in the PEs (``all``: row-stationary keeps all three)."""
        return "all" if self.params.dataflow == "rs" else STATIONARY[self.params.dataflow]

    @property
    def sparsity(self) -> SparsityParams:
        return self.params.sparsity

    @property
    def vector_lanes(self) -> int:
        """A vector unit beside the array is as wide as its output row (its columns)."""
        return self.params.cols

    @property
    def rows(self) -> int:
        return self.params.rows

    @property
    def cols(self) -> int:
        return self.params.cols

    @property
    def n_pes(self) -> int:
        return self.params.rows * self.params.cols

    @property
    def dataflow(self) -> Dataflow:
        return DATAFLOWS[self.params.dataflow]

    def fold_cycles(self, stream: int) -> int:
        """Cycles of one fold streaming ``stream`` values (fill + stream + drain)."""
        return self.dataflow.fold_cycles(self.rows, self.cols, stream)
