"""Whole-inference figures of merit from energy, cycles, MACs and area."""

from __future__ import annotations

import math
from collections.abc import Mapping


def energy_totals(energy_pj: float, total_cycles: int, clock_mhz: float, macs: int,
                  area_mm2: Mapping[str, float], effectual_macs: int | None = None,
                  onchip_pj: float | None = None) -> dict[str, float]:
    """Whole-inference figures: energy, average power (all, and on chip only: without DRAM),
    TOPS (2 ops per *dense* MAC of the workload, as peer tools quote them), effective TOPS
    (2 ops per effectual MAC: both operands nonzero), TOPS/W (dense ops), TOPS/mm^2,
    energy-delay product, inferences per second (one run of the workload)."""
    seconds = total_cycles / (clock_mhz * 1e6) if total_cycles else math.nan
    ops = 2.0 * macs
    area = math.fsum(area_mm2.values()) if area_mm2 else math.nan
    tops = ops / seconds / 1e12 if seconds else math.nan
    eff = 2.0 * (macs if effectual_macs is None else effectual_macs)
    onchip = energy_pj if onchip_pj is None else onchip_pj
    return {
        "energy_pj": energy_pj,
        "energy_uj": energy_pj * 1e-6,
        "avg_power_mw": energy_pj * 1e-9 / seconds if seconds else math.nan,
        "onchip_energy_uj": onchip * 1e-6,
        "onchip_power_mw": onchip * 1e-9 / seconds if seconds else math.nan,
        "tops": tops,
        "effective_tops": eff / seconds / 1e12 if seconds else math.nan,
        "tops_per_w": ops / energy_pj if energy_pj else math.nan,  # (ops/s) / (J/s), J = pJ 1e-12
        "area_mm2": area,
        "tops_per_mm2": tops / area if area else math.nan,
        "edp_j_s": energy_pj * 1e-12 * seconds,
        "inferences_per_s": 1.0 / seconds if seconds else math.nan,
    }
