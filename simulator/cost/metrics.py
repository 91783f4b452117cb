"""Whole-inference figures of merit from energy, cycles, MACs and area."""

from __future__ import annotations

import math
from collections.abc import Mapping


def energy_totals(energy_pj: float, total_cycles: int, clock_mhz: float, macs: int,
                  area_mm2: Mapping[str, float]) -> dict[str, float]:
    """Whole-inference figures: energy, average power, TOPS (2 ops per MAC), TOPS/W,
    TOPS/mm^2, energy-delay product, inferences per second (one run of the workload)."""
    seconds = total_cycles / (clock_mhz * 1e6) if total_cycles else math.nan
    ops = 2.0 * macs
    area = math.fsum(area_mm2.values()) if area_mm2 else math.nan
    tops = ops / seconds / 1e12 if seconds else math.nan
    return {
        "energy_pj": energy_pj,
        "energy_uj": energy_pj * 1e-6,
        "avg_power_mw": energy_pj * 1e-9 / seconds if seconds else math.nan,
        "tops": tops,
        "tops_per_w": ops / energy_pj if energy_pj else math.nan,  # (ops/s) / (J/s), J = pJ 1e-12
        "area_mm2": area,
        "tops_per_mm2": tops / area if area else math.nan,
        "edp_j_s": energy_pj * 1e-12 * seconds,
        "inferences_per_s": 1.0 / seconds if seconds else math.nan,
    }
