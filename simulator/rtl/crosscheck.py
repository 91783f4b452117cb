"""RTL cross-check: the generated Amaranth array against numpy and the fast simulator.

For each case, real quantised operands run through :func:`simulator.rtl.sim.simulate_rtl` and

(a) its outputs must equal numpy's product of the same operands, exactly;
(b) its busy cycles (the last cycle on which a PE held a valid operand, zero-based as
    SCALE-Sim counts) must equal the compute cycles the fast simulator reports for the same
    GEMM on the same array (``simulate``, i.e. SCALE-Sim's closed form on the PE kind's view of
    the GEMM), exactly, whenever the sequencer ran the folds back to back (a one-cycle GEMM,
    whose last busy cycle is number 0, counts as 1, as the fast simulator reports it);
    When the ``os`` drain needs idle cycles between folds (:func:`simulator.rtl.array.fold_gap`)
    the RTL takes exactly those cycles more (``explained``);
(c) the cycle on which the last result leaves the array is reported beside them: in ``ws`` and
    ``is`` it is the busy cycle itself (the bottom row's partial sum is the output); in ``os``
    the results still climb the drain, ``R - 1`` cycles for the last fold (drains of earlier
    folds overlap the next fold, which is what SCALE-Sim's count assumes).

The case list :data:`FAST_CASES` covers every RTL PE kind in every dataflow on non-square
arrays with partial folds (``make test``); :data:`FULL_CASES` adds more shapes and the corner
where the ``os`` drain needs an idle cycle between folds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.arch.config import parse_arch
from simulator.rtl.pe import KINDS
from simulator.rtl.sim import simulate_rtl
from simulator.simulation import simulate
from simulator.workload.layer import Layer, Operand, Workload

#: weight scheme of each RTL PE kind's operands (what a compressed layer would declare)
SCHEMES = {"mac": "int", "shift": "pow2", "ternary": "ternary", "xnor": "binary",
           "bitserial": "int"}
#: (weight_bits, act_bits, PE params) exercised per kind
PRECISION: dict[str, tuple[int, int, dict[str, int]]] = {
    "mac": (8, 8, {}), "shift": (4, 6, {}), "ternary": (2, 5, {}),
    "xnor": (1, 1, {"word_bits": 4}), "bitserial": (6, 4, {"lanes": 2})}


@dataclass(frozen=True, slots=True)
class RtlCase:
    """One GEMM ``M x K @ K x N`` on an ``rows x cols`` array."""

    pe: str
    dataflow: str
    rows: int
    cols: int
    M: int
    K: int
    N: int
    weight_bits: int = 8
    act_bits: int = 8
    params: Mapping[str, int] = field(default_factory=dict)
    seed: int = 0


def _grid(shapes: Iterable[tuple[int, int, int, int, int]]) -> tuple[RtlCase, ...]:
    out = []
    for pe in KINDS:
        wb, ab, params = PRECISION[pe]
        for df in ("os", "ws", "is"):
            for i, (M, K, N, R, C) in enumerate(shapes):
                out.append(RtlCase(pe, df, R, C, M, K, N, wb, ab, params, seed=i))
    return tuple(out)


#: the hand-worked case (2x2 os, 2x3x2) plus every kind x dataflow on two non-square arrays
#: with partial folds
FAST_CASES = (RtlCase("mac", "os", 2, 2, 2, 3, 2),
              *_grid([(5, 7, 3, 2, 3), (3, 4, 5, 3, 2)]))
FULL_CASES = FAST_CASES + _grid([(2, 2, 2, 4, 1), (9, 9, 9, 4, 4), (1, 3, 1, 1, 1),
                                 (6, 5, 7, 3, 3), (4, 12, 2, 1, 4)])


def random_operands(case: RtlCase) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random operands already quantised for the case's PE kind."""
    rng = np.random.default_rng(case.seed)
    M, K, N, wb, ab = case.M, case.K, case.N, case.weight_bits, case.act_bits
    if case.pe == "xnor":
        return rng.choice([-1, 1], (M, K)), rng.choice([-1, 1], (K, N))
    A = rng.integers(-(2 ** (ab - 1)), 2 ** (ab - 1), (M, K))
    if case.pe == "shift":
        exps = rng.integers(0, 2 ** (wb - 1) - 1, (K, N))
        return A, rng.choice([-1, 0, 1], (K, N)) * (1 << exps)
    if case.pe == "ternary":
        return A, rng.choice([-1, 0, 1], (K, N))
    return A, rng.integers(-(2 ** (wb - 1)), 2 ** (wb - 1), (K, N))


def fast_compute_cycles(case: RtlCase) -> int:
    """Compute cycles of the case's GEMM in the fast simulator (one layer, no memory limits)."""
    pe: dict[str, object] = {"impl": case.pe, **case.params}
    buf = {"impl": "sram", "size_kb": 1024, "word_bits": 8, "bandwidth_words": 1024}
    arch = parse_arch({
        "name": "rtl_check", "clock_mhz": 1000,
        "pe_array": {"impl": "systolic", "rows": case.rows, "cols": case.cols,
                     "dataflow": case.dataflow, "pe": pe, "weight_bits": case.weight_bits,
                     "act_bits": case.act_bits, "acc_bits": 32},
        "buffers": {"ifmap": buf, "filter": buf, "ofmap": buf},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": 1e6, "latency_ns": 0,
                 "energy_pj_per_bit": 8}}, source="<rtl cross-check>")
    layer = Layer("g", "gemm", "gemm", M=case.M, K=case.K, N=case.N,
                  ifmap_elements=case.M * case.K, filter_elements=case.K * case.N,
                  ofmap_elements=case.M * case.N,
                  weight=Operand(bits=case.weight_bits, scheme=SCHEMES[case.pe]),
                  activation=Operand(bits=case.act_bits))
    report = simulate(arch, Workload("rtl_check", (layer,)))
    return int(report.layers["compute_cycles"].iloc[0])


def check_case(case: RtlCase) -> dict[str, object]:
    """Run one case through the RTL; one row of the cross-check table."""
    A, W = random_operands(case)
    res = simulate_rtl(A, W, rows=case.rows, cols=case.cols, dataflow=case.dataflow,
                       pe=case.pe, weight_bits=case.weight_bits, act_bits=case.act_bits,
                       **case.params)
    closed = fast_compute_cycles(case)
    gaps = (res.folds - 1) * res.fold_gap
    busy = max(res.last_busy_cycle, 1)  # the fast simulator reports >= 1 cycle for a layer
    return {
        "pe": case.pe, "dataflow": case.dataflow, "array": f"{case.rows}x{case.cols}",
        "gemm": f"{case.M}x{case.K}x{case.N}", "folds": res.folds,
        "values_equal": bool(np.array_equal(res.output, A.astype(np.int64)
                                            @ W.astype(np.int64))),
        "closed_form_cycles": closed, "rtl_busy_cycles": res.last_busy_cycle,
        "rtl_last_output_cycle": res.last_leave_cycle,
        "drain_cycles": res.last_leave_cycle - res.last_busy_cycle,
        "fold_gap_cycles": gaps,
        "cycles_equal": busy == closed,
        "explained": busy == closed + gaps,
    }


def crosscheck(cases: Iterable[RtlCase] = FAST_CASES) -> pd.DataFrame:
    """The cross-check table (module docstring), one row per case."""
    return pd.DataFrame([check_case(c) for c in cases])


__all__ = ["FAST_CASES", "FULL_CASES", "RtlCase", "check_case", "crosscheck",
           "fast_compute_cycles", "random_operands"]
