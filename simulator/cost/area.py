"""Silicon area per on-chip component, in mm^2, so that TOPS/mm^2 follows.

Data: ``arch_configs/energy/area_45nm.yaml`` (every number with unit and source), at 45 nm.

* **PE**: the kind's datapath + the accumulator adder (acc bits) + pipeline registers for the
  three operands (``weight + act + acc`` flip-flops). A unit with several multipliers per PE
  (``multipliers_per_pe``, e.g. SCNN's 4 x 4) adds one multiplier and its operand registers
  per extra multiplier, ``adders_per_pe`` accumulator adders (SCNN's 32 banks) and
  ``pe_local_kb`` of accumulator SRAM per PE, at the SRAM area per KiB. The datapath is
  integer or floating point as the PE's ``number_format``. Datapath per kind (:func:`datapath_um2`):
  ``mac`` a multiplier (weight x act bits, at the geometric-mean width); ``shift`` a barrel
  shifter of act bits with ``weight_bits - 1`` stages of 2:1 muxes; ``ternary`` an act-bit
  adder/subtractor; ``xnor`` ``word`` XNOR gates + a ``word - 1`` full-adder popcount tree;
  ``bitserial`` per lane, weight-bit AND (as XNOR-sized gates) + a weight-bit adder;
  ``bitfusion`` 16 bit-bricks = an 8x8 multiplier (Sharma et al., ISCA 2018, build the 8-bit
  product from 16 2-bit bricks); ``bfp`` a mantissa multiplier + an 8-bit exponent adder + an
  acc-bit alignment shifter. Arithmetic areas are fits through Horowitz's published points
  (:func:`~simulator.cost.curves.power_law`); gates are NanGate FreePDK45 cells.
* **Vector unit**: ``lanes`` x (multiplier at act bits + 32-bit adder).
* **SRAM**: ``size_kb`` x mm^2 per KiB (the full capacity, both halves when double buffered).
* DRAM is off chip: no area.

Other nodes: area x ``(node / 45)^2`` (ideal scaling; optimistic below ~20 nm, where SRAM
and wires shrink less).

**Synthesis-grounded alternative** (:func:`synthesised_pe_um2`): the same PE generated as RTL
(:mod:`simulator.rtl.pe`), synthesised by Yosys to generic gates and priced by NanGate FreePDK45
cell areas, from the table of ``tools/synthesize_pes.py``. ``approxsim energy-table`` shows it
beside the Horowitz-table figure, with their ratio.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.arch.accelerator import Accelerator
from simulator.cost.curves import Curve, Sourced
from simulator.errors import ConfigError
from simulator.files import read_yaml
from simulator.hardware.synthesis import SynthTable, pe_pack
from simulator.registry import pydantic_errors


class AreaData(BaseModel):
    """The contents of an area YAML file."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    name: str
    technology_nm: float = Field(gt=0)
    description: str = ""
    int_add_um2: Curve
    int_multiply_um2: Curve
    fp_add_um2: Curve
    fp_multiply_um2: Curve
    register_um2_per_bit: Sourced
    sram_mm2_per_kb: Sourced
    xnor2_um2: Sourced
    mux2_um2: Sourced
    full_adder_um2: Sourced


def load_area_data(path: str | Path, text: str | None = None) -> AreaData:
    """Read and validate an area YAML file (``text``: its contents, already read)."""
    try:
        return AreaData.model_validate(read_yaml(Path(path), text=text))
    except ValidationError as exc:
        raise ConfigError(str(path), pydantic_errors(exc)) from None


def pe_um2(data: AreaData, w_bits: int, a_bits: int, acc_bits: int, fmt: str = "int") -> float:
    """Area of one MAC PE at the data's node, in um^2 (module docstring)."""
    mul = data.fp_multiply_um2 if fmt == "fp" else data.int_multiply_um2
    add = data.fp_add_um2 if fmt == "fp" else data.int_add_um2
    regs = (w_bits + a_bits + acc_bits) * data.register_um2_per_bit.value
    return mul.at(math.sqrt(w_bits * a_bits)) + add.at(acc_bits) + regs


def datapath_um2(data: AreaData, kind: str, params: dict[str, int], w_bits: int,
                 a_bits: int, acc_bits: int) -> tuple[float, str]:
    """Area of one PE's arithmetic (without accumulator and registers) and what it is."""
    if kind == "shift":
        stages = max(w_bits - 1, 1)
        return a_bits * stages * data.mux2_um2.value, f"{stages}-stage {a_bits}-bit shifter"
    if kind == "ternary":
        return data.int_add_um2.at(a_bits), f"int{a_bits} add/sub"
    if kind == "xnor":
        word = params.get("word_bits", 64)
        um2 = word * data.xnor2_um2.value + (word - 1) * data.full_adder_um2.value
        return um2, f"{word} XNOR + {word - 1}-FA popcount"
    if kind == "bitserial":
        lanes = params.get("lanes", 1)
        um2 = lanes * (w_bits * data.xnor2_um2.value + data.int_add_um2.at(w_bits))
        return um2, f"{lanes} lane(s) x ({w_bits} AND + int{w_bits} add)"
    if kind == "bitfusion":
        return data.int_multiply_um2.at(8), "16 bit-bricks (= int8 multiply)"
    if kind == "bfp":
        um2 = (data.int_multiply_um2.at(math.sqrt(w_bits * a_bits)) + data.int_add_um2.at(8)
               + acc_bits * max(math.ceil(math.log2(acc_bits)), 1) * data.mux2_um2.value)
        return um2, "mantissa multiply + exponent add + alignment shifter"
    return data.int_multiply_um2.at(math.sqrt(w_bits * a_bits)), f"{w_bits}x{a_bits} multiply"


def pe_area_um2(data: AreaData, kind: str, params: dict[str, int], w_bits: int, a_bits: int,
                acc_bits: int, fmt: str = "int") -> tuple[float, str]:
    """Area of one PE of ``kind`` at the data's node, um^2 (module docstring), and what it is
    (``fmt``: the ``mac`` PE's number format, ``int`` or ``fp``)."""
    if kind == "mac":
        return pe_um2(data, w_bits, a_bits, acc_bits, fmt), f"{fmt}{w_bits}x{a_bits} multiply"
    dp, what = datapath_um2(data, kind, params, w_bits, a_bits, acc_bits)
    return (dp + data.int_add_um2.at(acc_bits)
            + (w_bits + a_bits + acc_bits) * data.register_um2_per_bit.value), what


def synthesised_pe_um2(synth: SynthTable, kind: str, params: dict[str, int], w_bits: int,
                       a_bits: int, acc_bits: int) -> tuple[float, str] | None:
    """Area of one PE from its Yosys gate netlist, um^2 at the table's node (45 nm): NAND2
    equivalents x the NAND2_X1 area of NanGate FreePDK45 (0.798 um^2); ``None`` when the table
    has no entry for these widths (:mod:`simulator.hardware.synthesis`)."""
    entry = synth.find(kind, w_bits, a_bits, acc_bits, pe_pack(kind, params))
    if entry is None:
        return None
    return (entry.nand2_eq * synth.nand2_um2,
            f"{entry.nand2_eq:.0f} NAND2-eq x {synth.nand2_um2} um^2 ({synth.tool.split(' (')[0]}"
            f", NanGate FreePDK45 cell areas)")


def synthesised_area_mm2(acc: Accelerator, synth: SynthTable) -> tuple[float, str] | None:
    """The PE array's area from the synthesis table: ``(mm^2 at the arch's node, source)``,
    or ``None`` when the table has no entry for the array's PE (same PE count as the table
    model; area scales by ``(node / 45)^2`` as there)."""
    p = acc.pe_array
    got = synthesised_pe_um2(synth, p.kind.kind, pe_params(acc), p.weight_bits, p.act_bits,
                             p.acc_bits)
    if got is None:
        return None
    um2, source = got
    k = (acc.arch.technology_nm / synth.technology_nm) ** 2
    return p.n_pes * um2 * 1e-6 * k, f"{p.n_pes} PEs x {um2:.0f} um^2 = {source}"


def pe_params(acc: Accelerator) -> dict[str, int]:
    """The PE kind's own parameters (``word_bits``, ``lanes``, ...) of an accelerator."""
    return dict(acc.pe_array.kind.params.model_dump())  # type: ignore[attr-defined]


def _unit_area(p: Any, data: AreaData, k: float, scale: str) -> tuple[float, str]:
    """``(mm^2, source)`` of one PE unit at the data's node times ``k``."""
    kind_obj = p.kind
    fmt = "fp" if getattr(kind_obj, "number_format", "int") == "fp" else "int"
    if hasattr(p, "datapath"):  # a unit that states its multipliers, adders and registers
        d = p.datapath()
        um2 = (d.multiplies * data.int_multiply_um2.at(math.sqrt(p.weight_bits * p.act_bits))
               + d.adds * data.int_add_um2.at(p.acc_bits)
               + d.register_bits * data.register_um2_per_bit.value)
        return um2 * 1e-6 * k, (f"{d.multiplies} int{p.weight_bits}x{p.act_bits} multipliers, "
                                f"{d.adds} int{p.acc_bits} adders, {d.register_bits} register "
                                f"bits{scale}; {data.int_multiply_um2.source}; "
                                f"{data.register_um2_per_bit.source}")
    kind = kind_obj.kind
    params = dict(kind_obj.params.model_dump())
    pe, what = pe_area_um2(data, kind, params, p.weight_bits, p.act_bits, p.acc_bits, fmt)
    # an engine with several multipliers per PE (SCNN's F x I array and its accumulator banks)
    mults = int(getattr(p, "multipliers_per_pe", 1))
    extra, extra_what = 0.0, ""
    if mults > 1 or float(getattr(p, "pe_local_kb", 0.0)) > 0:
        adders = int(getattr(p, "adders_per_pe", mults))
        local_kb = float(getattr(p, "pe_local_kb", 0.0))
        mul = (data.fp_multiply_um2 if fmt == "fp" else data.int_multiply_um2).at(
            math.sqrt(p.weight_bits * p.act_bits))
        add = (data.fp_add_um2 if fmt == "fp" else data.int_add_um2).at(p.acc_bits)
        regs = (p.weight_bits + p.act_bits) * data.register_um2_per_bit.value
        extra = ((mults - 1) * (mul + regs) + (adders - 1) * add
                 + local_kb * data.sram_mm2_per_kb.value * 1e6)
        extra_what = (f"; with {mults} multipliers, {adders} {fmt}{p.acc_bits} accumulator "
                      f"adders and {local_kb:g} KiB of accumulator banks per PE "
                      f"({data.sram_mm2_per_kb.source})")
    pe += extra
    return p.n_pes * pe * 1e-6 * k, (
        f"{p.n_pes} {kind} PEs x {pe:.0f} um^2 ({what} + {fmt}{p.acc_bits} add + "
        f"{p.weight_bits + p.act_bits + p.acc_bits} flip-flops{extra_what}){scale}; "
        f"{data.int_multiply_um2.source}; {data.register_um2_per_bit.source}")


def area_table(acc: Accelerator, data: AreaData) -> tuple[dict[str, float], dict[str, str]]:
    """``(mm^2 per component, source per component)`` at ``acc.arch.technology_nm``."""
    p = acc.pe_array
    node = acc.arch.technology_nm
    k = (node / data.technology_nm) ** 2
    scale = "" if k == 1 else f" x (node {node:g}/{data.technology_nm:g})^2"
    mm2: dict[str, float] = {}
    src: dict[str, str] = {}
    for unit, pu in acc.units.items():
        mm2[unit], src[unit] = _unit_area(pu, data, k, scale)
    lane = data.int_multiply_um2.at(p.act_bits) + data.int_add_um2.at(32)
    lanes = acc.vector_unit.n_pes
    mm2["vector_unit"] = lanes * lane * 1e-6 * k
    src["vector_unit"] = (f"{lanes} lanes x {lane:.0f} um^2 (int{p.act_bits} multiply + int32 "
                          f"add){scale}; {data.int_multiply_um2.source}")
    per_kb = data.sram_mm2_per_kb
    for name, buf in acc.buffers.items():
        kb = buf.params.size_kb
        mm2[name] = kb * per_kb.value * k if math.isfinite(kb) else math.inf
        src[name] = f"{kb:g} KiB x {per_kb.value:g} mm^2/KiB{scale}; {per_kb.source}"
    return mm2, src
