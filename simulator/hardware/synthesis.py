"""Synthesised PE figures, read from the table ``tools/synthesize_pes.py`` writes.

The table (``arch_configs/energy/pe_synthesis_yosys.yaml``) holds, per RTL PE kind and width
(:mod:`simulator.rtl.pe`), the cell counts Yosys produced for generic gates (NAND2
equivalents, NanGate FreePDK45 areas) and for FPGA primitives (iCE40: ``SB_LUT4``,
``SB_CARRY``, ``SB_DFF*``; Xilinx 7 series with and without DSPs: ``LUT1..6``, ``CARRY4``,
``FD*``, ``DSP48E1``). The area model (:mod:`simulator.cost.area`) and the FPGA target
(:mod:`simulator.hardware.fpga`) read it as data; neither needs Yosys installed.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from simulator.errors import ConfigError
from simulator.files import read_yaml
from simulator.registry import pydantic_errors

DEFAULT_TABLE = (Path(__file__).resolve().parents[2] / "arch_configs" / "energy"
                 / "pe_synthesis_yosys.yaml")
#: cell-type prefixes per resource and flow family
_LUT = ("LUT", "SB_LUT")
_FF = ("FD", "SB_DFF", "$_DFF")
_CARRY = ("CARRY", "SB_CARRY")
_DSP = ("DSP",)


class SynthEntry(BaseModel):
    """One synthesised PE: its widths and the cells of every flow."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    kind: str
    weight_bits: int
    act_bits: int
    acc_bits: int
    pack: int
    nand2_eq: float
    gates: dict[str, int]
    ice40: dict[str, int]
    xc7: dict[str, int]
    xc7_nodsp: dict[str, int]

    def cells(self, flow: str) -> dict[str, int]:
        return dict(getattr(self, flow))

    def _sum(self, flow: str, prefixes: tuple[str, ...]) -> int:
        return sum(n for t, n in self.cells(flow).items() if t.startswith(prefixes))

    def luts(self, flow: str) -> int:
        return self._sum(flow, _LUT)

    def ffs(self, flow: str) -> int:
        return self._sum(flow, _FF)

    def carries(self, flow: str) -> int:
        return self._sum(flow, _CARRY)

    def dsps(self, flow: str) -> int:
        return self._sum(flow, _DSP)


class SynthTable(BaseModel):
    """The whole table: tool versions, the generic cell library, the entries."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    name: str
    description: str
    tool: str
    pyosys: str
    amaranth: str
    flows: dict[str, str]
    technology_nm: float
    nand2_um2: float
    cell_um2: dict[str, float]
    cell_source: str
    entries: tuple[SynthEntry, ...]

    def find(self, kind: str, weight_bits: int, act_bits: int, acc_bits: int,
             pack: int = 1) -> SynthEntry | None:
        """The entry synthesised for exactly these widths, or ``None``."""
        key = (kind, weight_bits, act_bits, acc_bits, pack)
        return next((e for e in self.entries
                     if (e.kind, e.weight_bits, e.act_bits, e.acc_bits, e.pack) == key), None)


def load_synthesis(path: str | Path = DEFAULT_TABLE) -> SynthTable:
    """Read and validate a synthesis table."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), [("", "synthesis table not found; generate it with "
                                        "tools/synthesize_pes.py")])
    try:
        return SynthTable.model_validate(read_yaml(p))
    except ValidationError as exc:
        raise ConfigError(str(p), pydantic_errors(exc)) from None


def pe_pack(kind: str, params: dict[str, int]) -> int:
    """Operand pairs per PE of a kind (the table's ``pack``): the xnor word, bit-serial lanes."""
    if kind == "xnor":
        return int(params.get("word_bits", 64))
    if kind == "bitserial":
        return int(params.get("lanes", 1))
    return 1


__all__ = ["DEFAULT_TABLE", "SynthEntry", "SynthTable", "load_synthesis", "pe_pack"]
