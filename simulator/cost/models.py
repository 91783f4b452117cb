"""Energy models: functions of the architecture's sizes and widths that *produce* table entries.

A model is registered in :data:`ENERGY_MODELS` and declares its parameters
(pydantic, every number with unit and source). Its output is still a plain table
(STYLE.md section 7). Two models:

* ``horowitz`` (``arch_configs/energy/45nm.yaml``): arithmetic and SRAM energy as documented
  fits through the published 45 nm points of Horowitz, ISSCC 2014;
  register file, array network and leakage as stated there.
* ``eyeriss_ratios`` (``arch_configs/energy/eyeriss65nm.yaml``): the Eyeriss normalised access
  energies (Chen, Emer, Sze, ISCA 2016) times an absolute MAC anchor.

Fits through published points (``power_law``): :mod:`simulator.cost.curves`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulator.arch.accelerator import Accelerator
from simulator.cost.actions import LEAKY
from simulator.cost.curves import Curve, Sourced
from simulator.cost.table import Entry
from simulator.errors import EnergyError
from simulator.registry import Registry

ENERGY_MODELS: Registry[Any] = Registry("energy_model")

OPERANDS = ("ifmap", "filter", "psum")


def _pe_bits(acc: Accelerator) -> dict[str, int]:
    p = acc.pe_array
    return {"ifmap": p.act_bits, "filter": p.weight_bits, "psum": p.acc_bits}


def _common(acc: Accelerator, mac_pj: float, mac_src: str, gated: Sourced,
            idle: Sourced) -> dict[tuple[str, str], Entry]:
    """MAC entries shared by both models, and the DRAM's per-bit energy from the arch."""
    dram = acc.dram.params.energy_pj_per_bit
    dsrc = f"architecture {acc.arch.name}: dram.energy_pj_per_bit (see its file)"
    return {
        ("pe_array", "mac"): Entry(mac_pj, mac_src, "dynamic", "pJ/MAC"),
        ("pe_array", "mac_gated"): Entry(mac_pj * gated.value,
                                         f"{gated.value:g} x mac: {gated.source}",
                                         "dynamic", "pJ/MAC"),
        ("pe_array", "mac_idle"): Entry(mac_pj * idle.value,
                                        f"{idle.value:g} x mac: {idle.source}",
                                        "dynamic", "pJ/PE-cycle"),
        ("dram", "read_bit"): Entry(dram, dsrc, "offchip", "pJ/bit"),
        ("dram", "write_bit"): Entry(dram, dsrc, "offchip", "pJ/bit"),
    }


@ENERGY_MODELS.register("horowitz")
class HorowitzModel:
    """45 nm energies from Horowitz, ISSCC 2014 (fits: module docstring).

    MAC = multiply(weight x act bits) + add(acc bits), integer or floating point as the PE's
    ``number_format`` (int when the PE declares none). SRAM read = 64-bit-word energy at the
    buffer's capacity x ``word_bits / 64`` (bit lines and sense amplifiers dominate and scale
    with the bits read); write = read x ``sram_write_over_read``. PE-local operand accesses at
    ``rf_pj_per_bit`` x the operand width; an array-network hop at ``hop_over_rf`` times that.
    Leakage per cycle = ``leakage_mw_per_mm2`` x component area / clock.
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        int_add_pj: Curve
        int_multiply_pj: Curve
        fp_add_pj: Curve
        fp_multiply_pj: Curve
        sram_read_64bit_pj: Curve
        sram_write_over_read: Sourced
        rf_pj_per_bit: Sourced
        hop_over_rf: Sourced
        mac_gated_fraction: Sourced
        mac_idle_fraction: Sourced
        vector_op: str = Field(pattern="^(add|multiply)$")
        leakage_mw_per_mm2: Sourced

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name = name
        self.params = params

    def add_pj(self, bits: float, fmt: str = "int") -> float:
        """Adder energy at ``bits`` (fit through Horowitz's points)."""
        return (self.params.fp_add_pj if fmt == "fp" else self.params.int_add_pj).at(bits)

    def multiply_pj(self, w_bits: float, a_bits: float, fmt: str = "int") -> float:
        """Multiplier energy of ``w_bits x a_bits`` (geometric-mean width, fit)."""
        curve = self.params.fp_multiply_pj if fmt == "fp" else self.params.int_multiply_pj
        return curve.at(math.sqrt(w_bits * a_bits))

    def sram_pj(self, size_kb: float, word_bits: int) -> float:
        """One read of a ``word_bits`` word from an SRAM of ``size_kb`` KiB."""
        return self.params.sram_read_64bit_pj.at(size_kb) * word_bits / 64

    def entries(self, acc: Accelerator, area_mm2: Mapping[str, float],
                table_nm: float) -> dict[tuple[str, str], Entry]:
        q = self.params
        p = acc.pe_array
        fmt = "int"  # no PE declares a number format yet
        mul = self.multiply_pj(p.weight_bits, p.act_bits, fmt)
        add = self.add_pj(p.acc_bits, fmt)
        mc, ac = ((q.fp_multiply_pj, q.fp_add_pj) if fmt == "fp"
                  else (q.int_multiply_pj, q.int_add_pj))
        src = (f"{fmt}{p.weight_bits}x{p.act_bits} multiply {mul:.4g} pJ ({mc.source}) + "
               f"{fmt}{p.acc_bits} add {add:.4g} pJ ({ac.source})")
        out = _common(acc, mul + add, src, q.mac_gated_fraction, q.mac_idle_fraction)
        rf, hop = q.rf_pj_per_bit, q.hop_over_rf
        for op, bits in _pe_bits(acc).items():
            for rw in ("read", "write"):
                out[("pe_array", f"{op}_rf_{rw}")] = Entry(
                    rf.value * bits, f"{bits} bits x {rf.value:g} pJ/bit: {rf.source}",
                    "dynamic", "pJ/access")
            out[("pe_array", f"{op}_hop")] = Entry(
                hop.value * rf.value * bits,
                f"{bits} bits x {hop.value:g} x {rf.value:g} pJ/bit: {hop.source}",
                "dynamic", "pJ/hop")
        vbits = p.act_bits
        vpj = self.add_pj(32) if q.vector_op == "add" else self.multiply_pj(vbits, vbits)
        out[("vector_unit", "vector_op")] = Entry(
            vpj, f"one {q.vector_op} ({'int32' if q.vector_op == 'add' else f'int{vbits}'}) per "
                 f"primitive op: {q.int_multiply_pj.source}", "dynamic", "pJ/op")
        sram = q.sram_read_64bit_pj
        for name, buf in acc.buffers.items():
            kb, wb = buf.params.size_kb, buf.params.word_bits
            if not math.isfinite(kb):
                raise EnergyError(f"buffers.{name}: an unbounded SRAM (size_kb: .inf) has no "
                                  f"access energy; give it a size or an explicit table entry")
            read = self.sram_pj(kb, wb)
            rsrc = (f"{kb:g} KiB: {sram.at(kb):.4g} pJ per 64-bit read x {wb}/64 "
                    f"({sram.source})")
            out[(name, "read")] = Entry(read, rsrc, "dynamic", f"pJ/{wb}-bit word")
            k = q.sram_write_over_read
            out[(name, "write")] = Entry(read * k.value, f"{k.value:g} x read: {k.source}",
                                         "dynamic", f"pJ/{wb}-bit word")
        out.update(leakage_entries(q.leakage_mw_per_mm2, area_mm2, acc.arch.clock_mhz))
        return out


def leakage_entries(density: Sourced, area_mm2: Mapping[str, float],
                    clock_mhz: float) -> dict[tuple[str, str], Entry]:
    """``leak_cycle`` of each on-chip component: mW/mm^2 x mm^2 / MHz = nJ -> x 1e3 pJ."""
    out = {}
    for comp in LEAKY:
        mm2 = area_mm2.get(comp, 0.0)
        out[(comp, "leak_cycle")] = Entry(
            density.value * mm2 / clock_mhz * 1e3,
            f"{density.value:g} mW/mm^2 x {mm2:.4g} mm^2 / {clock_mhz:g} MHz: {density.source}",
            "leakage", "pJ/cycle")
    return out


@ENERGY_MODELS.register("eyeriss_ratios")
class EyerissModel:
    """Eyeriss access energies normalised to one 16-bit MAC, times ``mac_pj``.

    MAC ``ratio_mac`` x anchor (x ``w a / 16^2`` for other widths, the multiplier law); PE-local
    register file ``ratio_rf`` and array network ``ratio_network`` per 16-bit word (x bits/16);
    SRAM interpolated in log capacity from ``ratio_rf`` at ``rf_kb`` to ``ratio_glb`` at
    ``glb_kb`` and constant beyond (Timeloop's fallback model does the same), per 16-bit word.
    The DRAM ratio (200) is not used: DRAM energy is the architecture's ``energy_pj_per_bit``.
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        mac_pj: Sourced
        word_bits: int = Field(gt=0)
        ratio_mac: Sourced
        ratio_rf: Sourced
        ratio_network: Sourced
        ratio_glb: Sourced
        rf_kb: float = Field(gt=0)
        glb_kb: float = Field(gt=0)
        mac_gated_fraction: Sourced
        mac_idle_fraction: Sourced
        leakage_mw_per_mm2: Sourced

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name = name
        self.params = params

    def sram_ratio(self, size_kb: float) -> float:
        q = self.params
        if size_kb <= q.rf_kb:
            return q.ratio_rf.value
        if size_kb >= q.glb_kb:
            return q.ratio_glb.value
        t = math.log(size_kb / q.rf_kb) / math.log(q.glb_kb / q.rf_kb)
        return q.ratio_rf.value + t * (q.ratio_glb.value - q.ratio_rf.value)

    def entries(self, acc: Accelerator, area_mm2: Mapping[str, float],
                table_nm: float) -> dict[tuple[str, str], Entry]:
        q = self.params
        p = acc.pe_array
        anchor, wq = q.mac_pj.value, q.word_bits
        mac = q.ratio_mac.value * anchor * p.weight_bits * p.act_bits / wq**2
        src = (f"{q.ratio_mac.value:g} x {anchor:g} pJ x {p.weight_bits}x{p.act_bits}/{wq}^2 "
               f"({q.ratio_mac.source}; anchor: {q.mac_pj.source})")
        out = _common(acc, mac, src, q.mac_gated_fraction, q.mac_idle_fraction)
        for op, bits in _pe_bits(acc).items():
            for rw in ("read", "write"):
                out[("pe_array", f"{op}_rf_{rw}")] = Entry(
                    q.ratio_rf.value * anchor * bits / wq,
                    f"{q.ratio_rf.value:g} x MAC x {bits}/{wq}: {q.ratio_rf.source}",
                    "dynamic", "pJ/access")
            out[("pe_array", f"{op}_hop")] = Entry(
                q.ratio_network.value * anchor * bits / wq,
                f"{q.ratio_network.value:g} x MAC x {bits}/{wq}: {q.ratio_network.source}",
                "dynamic", "pJ/hop")
        out[("vector_unit", "vector_op")] = Entry(
            anchor * p.act_bits**2 / wq**2, f"one MAC-equivalent per op ({q.ratio_mac.source})",
            "dynamic", "pJ/op")
        for name, buf in acc.buffers.items():
            kb, wb = buf.params.size_kb, buf.params.word_bits
            r = self.sram_ratio(kb)
            for action in ("read", "write"):
                out[(name, action)] = Entry(
                    r * anchor * wb / wq,
                    f"{r:.3g} x MAC x {wb}/{wq} at {kb:g} KiB ({q.ratio_glb.source})",
                    "dynamic", f"pJ/{wb}-bit word")
        out.update(leakage_entries(q.leakage_mw_per_mm2, area_mm2, acc.arch.clock_mhz))
        return out
