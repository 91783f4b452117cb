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
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulator.arch.accelerator import Accelerator
from simulator.cost.actions import LEAKY, leaky
from simulator.cost.curves import Curve, Sourced
from simulator.cost.table import Entry
from simulator.errors import EnergyError
from simulator.registry import Registry

ENERGY_MODELS: Registry[Any] = Registry("energy_model")

OPERANDS = ("ifmap", "filter", "psum")
#: ``mac@fp16x16``: a MAC at a layer precision other than the PE's (simulator.cost.actions)
_VARIANT = re.compile(r"^(mac|mac_gated)@(int|fp|bfp)(\d+)x(\d+)$")


def parse_variant(action: str) -> tuple[str, str, int, int] | None:
    """``"mac@int4x8"`` -> ``("mac", "int", 4, 8)``; None for any other action name."""
    m = _VARIANT.match(action)
    return (m[1], m[2], int(m[3]), int(m[4])) if m else None


def _pe_bits(p: Any) -> dict[str, int]:
    return {"ifmap": p.act_bits, "filter": p.weight_bits, "psum": p.acc_bits}


_BITS_PARAM = {"ifmap": "act_bits", "filter": "weight_bits", "psum": "acc_bits"}


def pe_format(p: Any) -> str:
    """A PE unit's number format (``int`` for kinds that declare none)."""
    return str(getattr(p.kind, "number_format", "int"))


def sram_chosen_by(name: str, buf: Any) -> str:
    q = buf.params
    return (f"buffers.{name}.size_kb={q.size_kb:g}, banks={q.banks}, "
            f"word_bits={q.word_bits}")


def _dram(acc: Accelerator) -> dict[tuple[str, str], Entry]:
    """The DRAM's per-bit energy, from the architecture."""
    dram = acc.dram.params.energy_pj_per_bit
    dsrc = f"architecture {acc.arch.name}: dram.energy_pj_per_bit (see its file)"
    by = f"dram.energy_pj_per_bit={dram:g}"
    return {("dram", "read_bit"): Entry(dram, dsrc, "offchip", "pJ/bit", by),
            ("dram", "write_bit"): Entry(dram, dsrc, "offchip", "pJ/bit", by)}


def _mac_entries(unit: str, mac: Entry, gated: Sourced,
                 idle: Sourced) -> dict[tuple[str, str], Entry]:
    """MAC entries shared by both models, for PE unit ``unit``."""
    return {
        (unit, "mac"): mac,
        (unit, "mac_gated"): gated_entry(mac, gated),
        (unit, "mac_idle"): Entry(mac.pj * idle.value, f"{idle.value:g} x mac: {idle.source}",
                                  "dynamic", "pJ/PE-cycle", mac.chosen_by),
    }


def arith_op_entries(unit: str, p: Any, multiply_pj: float, add_pj: float,
                     source: str) -> dict[tuple[str, str], Entry]:
    """Entries of a unit's own arithmetic actions declared as multiplies and adds
    (:class:`~simulator.hardware.unit.ArithOps`, e.g. an FFT unit's butterflies)."""
    ops = p.arith_ops() if hasattr(p, "arith_ops") else {}
    by = f"{unit}.weight_bits={p.weight_bits}, act_bits={p.act_bits}, acc_bits={p.acc_bits}"
    return {(unit, action): Entry(
        o.multiplies * multiply_pj + o.adds * add_pj,
        f"{o.multiplies} multiplies x {multiply_pj:.4g} + {o.adds} adds x {add_pj:.4g} pJ "
        f"({source})", "dynamic", "pJ/op", by) for action, o in ops.items()}


def gated_entry(mac: Entry, gated: Sourced) -> Entry:
    return Entry(mac.pj * gated.value, f"{gated.value:g} x mac: {gated.source}", "dynamic",
                 "pJ/MAC", mac.chosen_by)


def variant_entries(variants: Iterable[str], mac_entry: Callable[[str, int, int], Entry],
                    gated: Sourced, unit: str = "pe_array") -> dict[tuple[str, str], Entry]:
    """Entries of the ``mac@...`` / ``mac_gated@...`` actions a workload counted."""
    out = {}
    for action in variants:
        v = parse_variant(action)
        if v is None:
            continue
        base, fmt, w, a = v
        mac = mac_entry(fmt, w, a)
        out[(unit, action)] = mac if base == "mac" else gated_entry(mac, gated)
    return out


@ENERGY_MODELS.register("horowitz")
class HorowitzModel:
    """45 nm energies from Horowitz, ISSCC 2014 (fits: module docstring).

    MAC = multiply(weight x act bits) + add(acc bits), integer or floating point as the PE's
    ``number_format`` (``fp``: the fp multiply and fp add curves; ``int`` and ``bfp``
    mantissas: the integer ones), at the PE's widths (``mac``) or at a layer's own
    (``mac@<format><w>x<a>``). SRAM read = 64-bit-word energy at one *bank's* capacity
    (``size_kb / banks``) x ``word_bits / 64`` (bit lines and sense amplifiers dominate and
    scale with the bits read); write = read x ``sram_write_over_read``. PE-local
    operand accesses at ``rf_pj_per_bit`` x the operand width; an array-network hop at
    ``hop_over_rf`` times that. Leakage per cycle = ``leakage_mw_per_mm2`` x component area /
    clock.
    """

    class Params(BaseModel):
        model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
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

    @property
    def needs_area(self) -> bool:
        return self.params.leakage_mw_per_mm2.value > 0

    def add_pj(self, bits: float, fmt: str = "int") -> float:
        """Adder energy at ``bits`` (fit through Horowitz's points)."""
        return (self.params.fp_add_pj if fmt == "fp" else self.params.int_add_pj).at(bits)

    def multiply_pj(self, w_bits: float, a_bits: float, fmt: str = "int") -> float:
        """Multiplier energy of ``w_bits x a_bits`` (geometric-mean width, fit)."""
        curve = self.params.fp_multiply_pj if fmt == "fp" else self.params.int_multiply_pj
        return curve.at(math.sqrt(w_bits * a_bits))

    def sram_pj(self, size_kb: float, word_bits: int, banks: int = 1) -> float:
        """One read of a ``word_bits`` word from one bank of an SRAM of ``size_kb`` KiB."""
        return self.params.sram_read_64bit_pj.at(size_kb / banks) * word_bits / 64

    def mac_entry(self, fmt: str, w: int, a: int, acc_bits: int, by: str) -> Entry:
        q = self.params
        f = "fp" if fmt == "fp" else "int"
        mul, add = self.multiply_pj(w, a, f), self.add_pj(acc_bits, f)
        mc, ac = (q.fp_multiply_pj, q.fp_add_pj) if f == "fp" else (q.int_multiply_pj,
                                                                   q.int_add_pj)
        src = (f"{f}{w}x{a} multiply {mul:.4g} pJ ({mc.source}) + "
               f"{f}{acc_bits} add {add:.4g} pJ ({ac.source})")
        return Entry(mul + add, src, "dynamic", "pJ/MAC", by)

    def _unit_entries(self, unit: str, p: Any,
                      variants: Iterable[str]) -> dict[tuple[str, str], Entry]:
        """MAC, PE-local register, hop and own-arithmetic entries of one PE unit."""
        q = self.params
        fmt = pe_format(p)
        mac = self.mac_entry(fmt, p.weight_bits, p.act_bits, p.acc_bits,
                             f"{unit}.weight_bits={p.weight_bits}, act_bits={p.act_bits}, "
                             f"acc_bits={p.acc_bits}, number_format={fmt}")
        out = _mac_entries(unit, mac, q.mac_gated_fraction, q.mac_idle_fraction)
        out.update(variant_entries(
            variants, lambda f, w, a: self.mac_entry(
                f, w, a, p.acc_bits, f"the layer's precision {f}{w}x{a}; "
                                     f"{unit}.acc_bits={p.acc_bits}"),
            q.mac_gated_fraction, unit))
        rf, hop = q.rf_pj_per_bit, q.hop_over_rf
        for op, bits in _pe_bits(p).items():
            by = f"{unit}.{_BITS_PARAM[op]}={bits}"
            for rw in ("read", "write"):
                out[(unit, f"{op}_rf_{rw}")] = Entry(
                    rf.value * bits, f"{bits} bits x {rf.value:g} pJ/bit: {rf.source}",
                    "dynamic", "pJ/access", by)
            out[(unit, f"{op}_hop")] = Entry(
                hop.value * rf.value * bits,
                f"{bits} bits x {hop.value:g} x {rf.value:g} pJ/bit: {hop.source}",
                "dynamic", "pJ/hop", by)
        out[(unit, "halo_psum")] = Entry(
            hop.value * rf.value * p.acc_bits,
            f"a partial sum to a neighbour PE, priced as a hop of {p.acc_bits} bits: "
            f"{hop.source}", "dynamic", "pJ/psum", f"{unit}.acc_bits={p.acc_bits}")
        f = "fp" if fmt == "fp" else "int"
        out.update(arith_op_entries(
            unit, p, self.multiply_pj(p.weight_bits, p.act_bits, f), self.add_pj(p.acc_bits, f),
            f"{q.int_multiply_pj.source}; {q.int_add_pj.source}"))
        return out

    def entries(self, acc: Accelerator, area_mm2: Mapping[str, float], table_nm: float,
                variants: Iterable[str] = ()) -> dict[tuple[str, str], Entry]:
        q = self.params
        out = _dram(acc)
        for unit, pu in acc.units.items():
            out.update(self._unit_entries(unit, pu, variants))
        p = acc.pe_array
        rf = q.rf_pj_per_bit
        vbits = p.act_bits
        vpj = self.add_pj(32) if q.vector_op == "add" else self.multiply_pj(vbits, vbits)
        out[("vector_unit", "vector_op")] = Entry(
            vpj, f"one {q.vector_op} ({'int32' if q.vector_op == 'add' else f'int{vbits}'}) per "
                 f"primitive op: {q.int_multiply_pj.source}", "dynamic", "pJ/op",
            f"pe_array.act_bits={vbits}")
        by = f"pe_array.act_bits={vbits}"
        cmp, mul, add2 = self.add_pj(vbits), self.multiply_pj(vbits, vbits), self.add_pj(2 * vbits)
        out[("vector_unit", "compare")] = Entry(
            cmp, f"an int{vbits} add/compare: {q.int_add_pj.source}", "dynamic", "pJ/op", by)
        out[("vector_unit", "mul_add")] = Entry(
            mul + add2, f"int{vbits} multiply {mul:.4g} + int{2 * vbits} add {add2:.4g} pJ: "
                        f"{q.int_multiply_pj.source}; {q.int_add_pj.source}", "dynamic", "pJ/op",
            by)
        for rw in ("read", "write"):
            out[("vector_unit", f"lut_{rw}_bit")] = Entry(
                rf.value, f"a small table in registers, per bit: {rf.source}", "dynamic",
                "pJ/bit", "rf_pj_per_bit")
        sram = q.sram_read_64bit_pj
        for name, buf in acc.buffers.items():
            kb, wb, banks = buf.params.size_kb, buf.params.word_bits, buf.params.banks
            if not math.isfinite(kb):
                raise EnergyError(f"buffers.{name}: an unbounded SRAM (size_kb: .inf) has no "
                                  f"access energy; give it a size or an explicit table entry")
            read = self.sram_pj(kb, wb, banks)
            bank = kb / banks
            rsrc = (f"{bank:g} KiB per bank ({banks} of {kb:g} KiB): {sram.at(bank):.4g} pJ "
                    f"per 64-bit read x {wb}/64 ({sram.source})")
            by = sram_chosen_by(name, buf)
            out[(name, "read")] = Entry(read, rsrc, "dynamic", f"pJ/{wb}-bit word", by)
            k = q.sram_write_over_read
            out[(name, "write")] = Entry(read * k.value, f"{k.value:g} x read: {k.source}",
                                         "dynamic", f"pJ/{wb}-bit word", by)
        out.update(leakage_entries(q.leakage_mw_per_mm2, area_mm2, acc.arch.clock_mhz,
                                   leaky(acc)))
        return out


def leakage_entries(density: Sourced, area_mm2: Mapping[str, float], clock_mhz: float,
                    components: Iterable[str] = LEAKY) -> dict[tuple[str, str], Entry]:
    """``leak_cycle`` of each on-chip component: mW/mm^2 x mm^2 / MHz = nJ -> x 1e3 pJ.

    A component without an area is an :class:`EnergyError` when the density is not zero
    (never a silent zero leakage)."""
    out = {}
    components = tuple(components)
    missing = [c for c in components if c not in area_mm2]
    if missing and density.value > 0:
        raise EnergyError(f"leakage of {density.value:g} mW/mm^2 needs the area of "
                          f"{', '.join(missing)}; the table has no area for them")
    for comp in components:
        mm2 = area_mm2.get(comp, 0.0)
        out[(comp, "leak_cycle")] = Entry(
            density.value * mm2 / clock_mhz * 1e3,
            f"{density.value:g} mW/mm^2 x {mm2:.4g} mm^2 / {clock_mhz:g} MHz: {density.source}",
            "leakage", "pJ/cycle", f"area of {comp} (area file), clock_mhz={clock_mhz:g}")
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
        model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
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

    @property
    def needs_area(self) -> bool:
        return self.params.leakage_mw_per_mm2.value > 0

    def mac_entry(self, fmt: str, w: int, a: int, by: str) -> Entry:
        q = self.params
        if fmt == "fp":
            raise EnergyError("the eyeriss_ratios model prices fixed-point MACs only (Eyeriss "
                              "is 16-bit fixed point); use a horowitz table for fp")
        anchor, wq = q.mac_pj.value, q.word_bits
        pj = q.ratio_mac.value * anchor * w * a / wq**2
        src = (f"{q.ratio_mac.value:g} x {anchor:g} pJ x {w}x{a}/{wq}^2 "
               f"({q.ratio_mac.source}; anchor: {q.mac_pj.source})")
        return Entry(pj, src, "dynamic", "pJ/MAC", by)

    def _unit_entries(self, unit: str, p: Any,
                      variants: Iterable[str]) -> dict[tuple[str, str], Entry]:
        """MAC, PE-local register, hop and own-arithmetic entries of one PE unit."""
        q = self.params
        anchor, wq = q.mac_pj.value, q.word_bits
        fmt = pe_format(p)
        mac = self.mac_entry(fmt, p.weight_bits, p.act_bits,
                             f"{unit}.weight_bits={p.weight_bits}, act_bits={p.act_bits}")
        out = _mac_entries(unit, mac, q.mac_gated_fraction, q.mac_idle_fraction)
        out.update(variant_entries(
            variants, lambda f, w, a: self.mac_entry(f, w, a, f"the layer's precision "
                                                              f"{f}{w}x{a}"),
            q.mac_gated_fraction, unit))
        for op, bits in _pe_bits(p).items():
            by = f"{unit}.{_BITS_PARAM[op]}={bits}"
            for rw in ("read", "write"):
                out[(unit, f"{op}_rf_{rw}")] = Entry(
                    q.ratio_rf.value * anchor * bits / wq,
                    f"{q.ratio_rf.value:g} x MAC x {bits}/{wq}: {q.ratio_rf.source}",
                    "dynamic", "pJ/access", by)
            out[(unit, f"{op}_hop")] = Entry(
                q.ratio_network.value * anchor * bits / wq,
                f"{q.ratio_network.value:g} x MAC x {bits}/{wq}: {q.ratio_network.source}",
                "dynamic", "pJ/hop", by)
        out[(unit, "halo_psum")] = Entry(
            q.ratio_network.value * anchor * p.acc_bits / wq,
            f"a partial sum to a neighbour PE: {q.ratio_network.value:g} x MAC x "
            f"{p.acc_bits}/{wq} ({q.ratio_network.source})", "dynamic", "pJ/psum",
            f"{unit}.acc_bits={p.acc_bits}")
        # a real multiply as one MAC at the unit's widths, an add as 0.15 of it (Horowitz,
        # ISSCC 2014, 45 nm: int8 add 0.03 pJ against an int8 multiply 0.2 pJ)
        mul = anchor * p.weight_bits * p.act_bits / wq**2
        out.update(arith_op_entries(unit, p, mul, 0.15 * mul, f"{q.ratio_mac.source}; an add "
                                                             f"at 0.15 of a multiply"))
        return out

    def entries(self, acc: Accelerator, area_mm2: Mapping[str, float], table_nm: float,
                variants: Iterable[str] = ()) -> dict[tuple[str, str], Entry]:
        q = self.params
        p = acc.pe_array
        anchor, wq = q.mac_pj.value, q.word_bits
        out = _dram(acc)
        for unit, pu in acc.units.items():
            out.update(self._unit_entries(unit, pu, variants))
        out[("vector_unit", "vector_op")] = Entry(
            anchor * p.act_bits**2 / wq**2, f"one MAC-equivalent per op ({q.ratio_mac.source})",
            "dynamic", "pJ/op", f"pe_array.act_bits={p.act_bits}")
        for action in ("compare", "mul_add"):  # priced as one op each (an upper bound)
            out[("vector_unit", action)] = Entry(
                anchor * p.act_bits**2 / wq**2, f"one MAC-equivalent per op, an upper bound "
                                                f"({q.ratio_mac.source})", "dynamic", "pJ/op",
                f"pe_array.act_bits={p.act_bits}")
        for rw in ("read", "write"):
            out[("vector_unit", f"lut_{rw}_bit")] = Entry(
                q.ratio_rf.value * anchor / wq, f"{q.ratio_rf.value:g} x MAC / {wq} per bit: "
                                                f"{q.ratio_rf.source}", "dynamic", "pJ/bit",
                "ratio_rf")
        for name, buf in acc.buffers.items():
            kb, wb, banks = buf.params.size_kb, buf.params.word_bits, buf.params.banks
            r = self.sram_ratio(kb / banks)
            for action in ("read", "write"):
                out[(name, action)] = Entry(
                    r * anchor * wb / wq,
                    f"{r:.3g} x MAC x {wb}/{wq} at {kb / banks:g} KiB per bank "
                    f"({q.ratio_glb.source})", "dynamic", f"pJ/{wb}-bit word",
                    sram_chosen_by(name, buf))
        out.update(leakage_entries(q.leakage_mw_per_mm2, area_mm2, acc.arch.clock_mhz,
                                   leaky(acc)))
        return out
