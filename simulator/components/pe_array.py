"""PE arrays. The dense systolic array follows SCALE-Sim's compute model exactly.

Reference: Samajdar et al., "A Systematic Methodology for Characterizing Scalability of DNN
Accelerators using SCALE-Sim", ISPASS 2020; cycle closed forms of SCALE-Sim 3.0.0 as checked
against its output (../shared/reference/scalesim.md and tests/golden/scalesim/).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulator.components.pe_kinds import PEKind, pe_kind
from simulator.components.registries import PE_ARRAYS
from simulator.dataflows import DATAFLOWS, Dataflow
from simulator.errors import ConfigError
from simulator.sparsity import SparsityParams


@PE_ARRAYS.register("systolic")
class SystolicArray:
    """A ``rows x cols`` grid of MAC PEs with nearest-neighbour links and one dataflow.

    One PE does one multiply-accumulate per cycle. Operands are ``act_bits``/``weight_bits``
    wide in memory; partial sums are ``acc_bits`` wide (they only leave the chip when the
    ofmap buffer cannot hold them); outputs are written back requantised to ``act_bits``, the
    next layer's input precision. ``pe`` selects the PE kind (``mac``, ``shift``, ``xnor``,
    ``ternary``, ``bitserial``, ``bitfusion``, ``bfp``; a name or ``{impl: name, ...}``) whose
    geometry and rate change the folds (:mod:`simulator.components.pe_kinds`). ``sparsity``
    configures zero gating/skipping, N:M structured weights and compressed storage formats
    (:mod:`simulator.sparsity`).
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        rows: int = Field(gt=0, strict=True)
        cols: int = Field(gt=0, strict=True)
        dataflow: Literal["os", "ws", "is"]
        pe: str | dict[str, Any] = "mac"
        weight_bits: int = Field(default=8, gt=0, le=64, strict=True)
        act_bits: int = Field(default=8, gt=0, le=64, strict=True)
        acc_bits: int = Field(default=32, gt=0, le=128, strict=True)
        sparsity: SparsityParams = SparsityParams()

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
