"""Synthesis of generated RTL with Yosys: generic gates and FPGA primitives, as data.

Yosys runs from ``pyosys`` (YosysHQ's native wheel of libyosys, which ships its ``yosys-abc``),
in a subprocess of its own (Yosys keeps global state and logs to stdout; the library never
prints) inside a temporary directory that holds the design as RTLIL (Amaranth's own netlist
format, so no Verilog round trip). Flows (:data:`FLOWS`):

* ``gates``: ``synth -flatten``; every flip-flop legalised to a plain D flip-flop
  (``dfflegalize``: enables and resets become gates); ``abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX``
  (plus inverters), the two-input gates and the 2:1 mux of a standard-cell library. Cell
  counts become NAND2 equivalents by cell area (:func:`nand2_equivalents`). ``gates_noabc``
  stops at Yosys's own gate mapping (``synth -noabc``), which is derivable by hand.
* ``ice40``: ``synth_ice40`` (Lattice iCE40 HX: ``SB_LUT4``, ``SB_CARRY``, ``SB_DFF*``).
* ``xc7``: ``synth_xilinx -family xc7`` (Xilinx 7 series: ``LUT1..6``, ``CARRY4``, ``FD*``,
  ``DSP48E1``; no I/O or clock buffers: a PE is not a chip), and ``xc7_nodsp`` with
  ``-nodsp`` (multipliers in LUTs, as FINN builds its binarised and low-precision units).

Every run must print its statistics for the top module (``stat -json``): a flow that stops
early without an error (as ABC does under the WebAssembly build of Yosys, which cannot start
it) is a :class:`SynthesisError`, never a zero count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.lib import wiring

from simulator.errors import SimulatorError
from simulator.frontend._deps import require

FLOWS: dict[str, str] = {
    "gates": "synth -flatten -top {top}; dfflegalize -cell $_DFF_P_ 01; "
             "abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX; opt_clean",
    "gates_noabc": "synth -noabc -flatten -top {top}",
    "ice40": "synth_ice40 -top {top}",
    "xc7": "synth_xilinx -family xc7 -noiopad -noclkbuf -top {top}",
    "xc7_nodsp": "synth_xilinx -family xc7 -nodsp -noiopad -noclkbuf -top {top}",
}

#: Run inside the subprocess: argv = [workdir, script]; Yosys logs to stdout, which is kept.
_RUNNER = """
import sys
from pyosys import libyosys as ys
ys.run_pass("script " + sys.argv[2], ys.Design())
"""


class SynthesisError(SimulatorError):
    """A synthesis run failed or stopped without printing its statistics."""


@dataclass(frozen=True, slots=True)
class SynthResult:
    """Cell counts of one synthesised top module (``cells``: type -> count) and its flow."""

    top: str
    flow: str
    cells: Mapping[str, int]
    log_tail: str

    def count(self, *prefixes: str) -> int:
        """Cells whose type starts with any of ``prefixes`` (``count("LUT")``)."""
        return sum(n for t, n in self.cells.items() if t.startswith(prefixes))


def yosys_version() -> str:
    """The version line of the Yosys that :func:`synthesise` runs."""
    require("pyosys")
    out = subprocess.run([sys.executable, "-c", "from pyosys import libyosys as ys; "
                          "print(ys.yosys_maybe_version())"], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or "unknown"


def to_rtlil(design: wiring.Component, name: str) -> str:
    """The design as RTLIL text, its top module named ``name``."""
    return rtlil.convert(design, name=name)


def synthesise(source: str, top: str, flow: str, *, fmt: str = "rtlil",
               timeout_s: float = 900) -> SynthResult:
    """Synthesise ``source`` (RTLIL or Verilog text, per ``fmt``) with flow ``flow``."""
    require("pyosys")
    if flow not in FLOWS:
        raise SynthesisError(f"synthesis flow must be one of {sorted(FLOWS)} (got {flow!r})")
    reader = {"rtlil": "read_rtlil", "verilog": "read_verilog"}[fmt]
    with tempfile.TemporaryDirectory(prefix="approxsim-yosys-") as tmp:
        work = Path(tmp)
        (work / f"design.{fmt}").write_text(source, encoding="utf-8")
        script = (f"{reader} design.{fmt}\nhierarchy -top {top}\n"
                  + FLOWS[flow].format(top=top).replace("; ", "\n")
                  + "\ntee -q -o stat.json stat -json\n")
        (work / "run.ys").write_text(script, encoding="utf-8")
        proc = subprocess.run([sys.executable, "-c", _RUNNER, str(work), "run.ys"], cwd=work,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        stat = work / "stat.json"
        if proc.returncode != 0 or not stat.is_file():
            raise SynthesisError(f"yosys flow {flow!r} on {top!r} stopped without statistics "
                                 f"(exit {proc.returncode}); last lines:\n{tail}")
        report = json.loads(stat.read_text(encoding="utf-8"))
    modules = report.get("modules", {})
    key = next((k for k in modules if k.lstrip("\\") == top), None)
    if key is None:
        raise SynthesisError(f"yosys flow {flow!r}: no statistics for top module {top!r} "
                             f"(got {sorted(modules)})")
    cells = {str(t): int(n) for t, n in modules[key].get("num_cells_by_type", {}).items()}
    if not cells:
        raise SynthesisError(f"yosys flow {flow!r} on {top!r}: the design has no cells")
    return SynthResult(top, flow, cells, tail)


#: Cell areas of the NanGate FreePDK45 Open Cell Library (X1 drive), um^2, and the generic
#: Yosys gate each implements; NAND2_X1 (0.798 um^2) is one gate equivalent.
NANGATE45_UM2 = {"$_NOT_": 0.532, "$_NAND_": 0.798, "$_NOR_": 0.798, "$_AND_": 1.064,
                 "$_OR_": 1.064, "$_XOR_": 1.596, "$_XNOR_": 1.596, "$_MUX_": 1.862,
                 "$_DFF_P_": 4.522}
NAND2_UM2 = NANGATE45_UM2["$_NAND_"]


def nand2_equivalents(cells: Mapping[str, int],
                      areas: Mapping[str, float] = NANGATE45_UM2) -> float:
    """Gate equivalents of a ``gates``-flow netlist: sum of cell areas / NAND2 area.

    A cell type without an area is an error (never priced at zero).
    """
    unknown = sorted(set(cells) - set(areas))
    if unknown:
        raise SynthesisError(f"no cell area for {unknown}; known: {sorted(areas)}")
    return sum(n * areas[t] for t, n in cells.items()) / areas["$_NAND_"]


__all__ = ["FLOWS", "NAND2_UM2", "NANGATE45_UM2", "SynthResult", "SynthesisError",
           "nand2_equivalents", "synthesise", "to_rtlil", "yosys_version"]
