"""Silicon area per on-chip component, in mm^2, so that TOPS/mm^2 follows.

Data: ``arch_configs/energy/area_45nm.yaml`` (every number with unit and source), at 45 nm.

* **PE** (kind ``mac``): multiplier (weight x act bits, at the geometric-mean width) + the
  accumulator adder (acc bits) + pipeline registers for the three operands
  (``weight + act + acc`` flip-flops). The arithmetic areas are fits through Horowitz's
  published points (:func:`~simulator.energy_models.power_law`). Other PE kinds are costed as a
  MAC of the same widths (an upper bound; the source string says so).
* **Vector unit**: ``lanes`` x (multiplier at act bits + 32-bit adder).
* **SRAM**: ``size_kb`` x mm^2 per KiB (the full capacity, both halves when double buffered).
* DRAM is off chip: no area.

Other nodes: area x ``(node / 45)^2`` (ideal scaling; optimistic below ~20 nm, where SRAM
and wires shrink less).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.energy_models import Curve, Sourced
from simulator.errors import ConfigError

if TYPE_CHECKING:
    from simulator.accelerator import Accelerator


class AreaData(BaseModel):
    """The contents of an area YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    technology_nm: float = Field(gt=0)
    description: str = ""
    int_add_um2: Curve
    int_multiply_um2: Curve
    fp_add_um2: Curve
    fp_multiply_um2: Curve
    register_um2_per_bit: Sourced
    sram_mm2_per_kb: Sourced


def load_area_data(path: str | Path) -> AreaData:
    from simulator.energy import read_yaml_fast
    from simulator.registry import pydantic_errors

    try:
        return AreaData.model_validate(read_yaml_fast(Path(path)))
    except ValidationError as exc:
        raise ConfigError(str(path), pydantic_errors(exc)) from None


def pe_um2(data: AreaData, w_bits: int, a_bits: int, acc_bits: int, fmt: str = "int") -> float:
    """Area of one MAC PE at the data's node, in um^2 (module docstring)."""
    mul = data.fp_multiply_um2 if fmt == "fp" else data.int_multiply_um2
    add = data.fp_add_um2 if fmt == "fp" else data.int_add_um2
    regs = (w_bits + a_bits + acc_bits) * data.register_um2_per_bit.value
    return mul.at(math.sqrt(w_bits * a_bits)) + add.at(acc_bits) + regs


def area_table(acc: Accelerator, data: AreaData) -> tuple[dict[str, float], dict[str, str]]:
    """``(mm^2 per component, source per component)`` at ``acc.arch.technology_nm``."""
    p = acc.pe_array.params
    node = acc.arch.technology_nm
    k = (node / data.technology_nm) ** 2
    fmt = getattr(p, "number_format", "int")
    kind = getattr(p, "pe", "mac")
    pe = pe_um2(data, p.weight_bits, p.act_bits, p.acc_bits, fmt)
    note = "" if kind == "mac" else f" (PE kind {kind!r} costed as a MAC: upper bound)"
    scale = "" if k == 1 else f" x (node {node:g}/{data.technology_nm:g})^2"
    mm2 = {"pe_array": acc.pe_array.n_pes * pe * 1e-6 * k}
    src = {"pe_array": (f"{acc.pe_array.n_pes} PEs x {pe:.0f} um^2 ({fmt}{p.weight_bits}x"
                        f"{p.act_bits} multiply + {fmt}{p.acc_bits} add + "
                        f"{p.weight_bits + p.act_bits + p.acc_bits} flip-flops){note}{scale}; "
                        f"{data.int_multiply_um2.source}; {data.register_um2_per_bit.source}")}
    lane = data.int_multiply_um2.at(p.act_bits) + data.int_add_um2.at(32)
    lanes = acc.vector_unit.lanes
    mm2["vector_unit"] = lanes * lane * 1e-6 * k
    src["vector_unit"] = (f"{lanes} lanes x {lane:.0f} um^2 (int{p.act_bits} multiply + int32 "
                          f"add){scale}; {data.int_multiply_um2.source}")
    per_kb = data.sram_mm2_per_kb
    for name, buf in acc.buffers.items():
        kb = buf.params.size_kb
        mm2[name] = kb * per_kb.value * k if math.isfinite(kb) else math.inf
        src[name] = f"{kb:g} KiB x {per_kb.value:g} mm^2/KiB{scale}; {per_kb.source}"
    return mm2, src
