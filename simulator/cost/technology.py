"""Technology scaling of dynamic energy between CMOS nodes.

Leakage is not scaled here (it follows area, :mod:`simulator.cost.area`), nor is DRAM energy
(the architecture's own ``energy_pj_per_bit``).
"""

from __future__ import annotations

import math

from simulator.errors import EnergyError

#: Energy relative to 45 nm, Stillmaker and Baas, "Scaling equations for the accurate
#: prediction of CMOS device performance from 180 nm to 7 nm", Integration, the VLSI Journal
#: 58:74-81, 2017 (the polynomials Accelergy's library plug-in uses); reference/
#: energy.md. Published at a fixed 0.8 V; used here as ratios between nodes only.
STILLMAKER_BAAS = {130: 3.07, 90: 1.90, 65: 1.24, 45: 1.0, 32: 0.66, 20: 0.22, 16: 0.17,
                   14: 0.14, 10: 0.12, 7: 0.094}

def scale_factor(from_nm: float, to_nm: float) -> float:
    """Dynamic-energy factor from node ``from_nm`` to ``to_nm`` (Stillmaker-Baas)."""
    return _node_factor(to_nm) / _node_factor(from_nm)


def _node_factor(nm: float) -> float:
    if nm in STILLMAKER_BAAS:
        return STILLMAKER_BAAS[int(nm)]
    nodes = sorted(STILLMAKER_BAAS)
    if not nodes[0] <= nm <= nodes[-1]:
        raise EnergyError(f"technology_nm must be within {nodes[0]}-{nodes[-1]} nm, the range "
                          f"of the Stillmaker-Baas factors (got {nm})")
    hi = next(n for n in nodes if n > nm)
    lo = max(n for n in nodes if n < nm)
    t = math.log(nm / lo) / math.log(hi / lo)
    return math.exp((1 - t) * math.log(STILLMAKER_BAAS[lo]) + t * math.log(STILLMAKER_BAAS[hi]))
