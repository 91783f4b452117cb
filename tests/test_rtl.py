"""The generated RTL systolic array (Amaranth HDL, simulated cycle by cycle) against numpy,
the numpy reference model and the fast simulator's closed form.

The fast subset runs in ``make test`` (a few seconds); ``pytest -m full`` adds the full case
set and a Hypothesis search over shapes, kinds and dataflows.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.hardware.pe_kinds import pe_kind
from simulator.rtl.array import fold_gap
from simulator.rtl.crosscheck import (
    FAST_CASES,
    FULL_CASES,
    PRECISION,
    RtlCase,
    check_case,
    random_operands,
)
from simulator.rtl.sim import simulate_rtl
from simulator.validation.reference import simulate_gemm


def test_hand_worked_2x2_os_on_a_2x3x2_gemm():
    """A (2x3) @ W (3x2) on a 2x2 output-stationary array, worked by hand.

    A = [[1, 2, 3], [4, 5, 6]], W = [[1, -1], [2, 0], [-3, 1]]:
    out[0] = [1 + 4 - 9, -1 + 0 + 3] = [-4, 2]; out[1] = [4 + 10 - 18, -4 + 0 + 6] = [-4, 2].
    Slot k (k = 0, 1, 2) meets PE (r, c) on cycle k + r + c, so PE (r, c) makes its last MAC
    on cycle 2 + r + c: (0,0) on 2, (0,1) and (1,0) on 3, (1,1) on 4. The array is busy on
    cycles 0..4: SCALE-Sim's K + R + C - 2 = 5 cycles, counted from zero as 4. Results climb
    the drain to the top edge, one row per cycle: row 0 leaves on its last-MAC cycle, row 1 one
    cycle later: (0,0) 2, (0,1) 3, (1,0) 4, (1,1) 5.
    """
    A = np.array([[1, 2, 3], [4, 5, 6]])
    W = np.array([[1, -1], [2, 0], [-3, 1]])
    res = simulate_rtl(A, W, rows=2, cols=2, dataflow="os")
    np.testing.assert_array_equal(res.output, [[-4, 2], [-4, 2]])
    np.testing.assert_array_equal(res.leave_cycle, [[2, 3], [4, 5]])
    assert res.last_busy_cycle == 4
    assert res.last_leave_cycle == 5
    assert (res.folds, res.fold_cycles, res.fold_gap) == (1, 5, 0)


@pytest.mark.parametrize("case", FAST_CASES, ids=lambda c: f"{c.pe}-{c.dataflow}-{c.rows}x"
                         f"{c.cols}-{c.M}x{c.K}x{c.N}")
def test_rtl_values_and_cycles(case: RtlCase):
    row = check_case(case)
    assert row["values_equal"]
    assert row["explained"], row  # busy cycles == closed form (+ os idle cycles, if any)
    if row["fold_gap_cycles"] == 0:
        assert row["cycles_equal"]
    if case.dataflow != "os":
        assert row["rtl_last_output_cycle"] == row["rtl_busy_cycles"]


@pytest.mark.parametrize("case", [c for c in FAST_CASES if c.pe in ("mac", "xnor")][:12],
                         ids=lambda c: f"{c.pe}-{c.dataflow}-{c.M}x{c.K}x{c.N}")
def test_each_output_leaves_when_the_reference_model_says(case: RtlCase):
    """Per output: the numpy reference's cycle, plus (os) one drain hop per array row above."""
    A, W = random_operands(case)
    res = simulate_rtl(A, W, rows=case.rows, cols=case.cols, dataflow=case.dataflow,
                       pe=case.pe, weight_bits=case.weight_bits, act_bits=case.act_bits,
                       **case.params)
    ref = simulate_gemm(A, W, rows=case.rows, cols=case.cols, dataflow=case.dataflow,
                        pe=pe_kind(case.pe, **case.params), weight_bits=case.weight_bits,
                        act_bits=case.act_bits)
    np.testing.assert_array_equal(res.output, ref.output)
    m = np.arange(case.M)[:, None]
    if case.dataflow == "os":
        fold = (m // case.rows) * -(-case.N // case.cols) + np.arange(case.N) // case.cols
        want = ref.leave_cycle + m % case.rows + fold * res.fold_gap
    else:
        want = ref.leave_cycle
    np.testing.assert_array_equal(res.leave_cycle, want)


def test_os_drain_needs_the_idle_cycle_it_is_given():
    """K' + C <= R with an even fold: without the sequencer's idle cycle two folds' results
    would meet in a drain register (the array flags it); with it, all results are right."""
    A = np.arange(16).reshape(8, 2) - 7  # two M folds of 4 rows
    W = np.arange(4).reshape(2, 2) - 1
    # R = 4, K = 2: with C = 1 a fold is 2 + 4 + 1 - 2 = 5 cycles (odd): no idle cycle; with
    # C = 2 it is 6 <= 2R - 2: fold 1's row 0 reaches drain register 1 on the cycle fold 0's
    # row 3 result passes it (6 / 2 = 3 rows apart).
    assert fold_gap(4, 2, "os", 2) == 1 and fold_gap(4, 1, "os", 2) == 0
    with pytest.raises(RuntimeError, match="overrun"):
        simulate_rtl(A, W, rows=4, cols=2, dataflow="os", fold_gap_cycles=0)
    res = simulate_rtl(A, W, rows=4, cols=2, dataflow="os")
    np.testing.assert_array_equal(res.output, A @ W)
    assert res.last_busy_cycle == 2 * 6 - 1 + 1  # one idle cycle between the two folds


def test_wraps_like_the_accumulator():
    """Sums wrap at acc_bits, as an acc_bits-bit register does (two's complement)."""
    A = np.full((1, 4), 127)
    W = np.full((4, 1), 127)
    res = simulate_rtl(A, W, rows=1, cols=1, dataflow="os", acc_bits=16)
    want = (127 * 127 * 4 + 2**15) % 2**16 - 2**15
    assert res.output[0, 0] == want


@pytest.mark.full
@pytest.mark.parametrize("case", FULL_CASES[len(FAST_CASES):],
                         ids=lambda c: f"{c.pe}-{c.dataflow}-{c.rows}x{c.cols}-{c.M}x{c.K}x{c.N}")
def test_rtl_full_case_set(case: RtlCase):
    row = check_case(case)
    assert row["values_equal"] and row["explained"], row


@pytest.mark.full
@settings(max_examples=60, deadline=None)
@given(pe=st.sampled_from(list(PRECISION)), dataflow=st.sampled_from(["os", "ws", "is"]),
       M=st.integers(1, 7), K=st.integers(1, 9), N=st.integers(1, 7), R=st.integers(1, 4),
       C=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_rtl_random_cases(pe, dataflow, M, K, N, R, C, seed):
    wb, ab, params = PRECISION[pe]
    row = check_case(RtlCase(pe, dataflow, R, C, M, K, N, wb, ab, params, seed))
    assert row["values_equal"] and row["explained"], row


def test_validate_rtl_cli_prints_the_table_and_fails_on_a_mismatch(monkeypatch):
    from click.testing import CliRunner

    from simulator.cli import main
    from simulator.rtl import crosscheck

    monkeypatch.setattr(crosscheck, "FAST_CASES", FAST_CASES[:2])
    res = CliRunner().invoke(main, ["validate", "rtl"])
    assert res.exit_code == 0, res.output
    assert "2 of 2 cases: outputs equal numpy's product" in res.output
    broken = crosscheck.check_case

    def wrong(case: RtlCase) -> dict:
        row = broken(case)
        return {**row, "values_equal": False}

    monkeypatch.setattr(crosscheck, "check_case", wrong)
    assert CliRunner().invoke(main, ["validate", "rtl"]).exit_code == 1
