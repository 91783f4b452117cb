"""The cycle-stepped reference array against numpy (values) and the closed forms (cycles).

For every PE kind and dataflow, on random small GEMMs and arrays (Hypothesis):
(a) its outputs equal numpy's product of the same quantised operands, exactly;
(b) its total cycles equal the closed form, SCALE-Sim's for ``mac`` (written out here
    independently of the simulator), and each output leaves the array on the cycle the
    systolic schedule predicts; for ``mac`` they also equal the fast simulator's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import simulate
from simulator.hardware.pe_kinds import pe_kind
from simulator.validation.operands import bfp_dequantise, bfp_quantise
from simulator.validation.reference import simulate_gemm
from simulator.workload.layer import Workload

DATAFLOWS = ["os", "ws", "is"]


def scalesim_cycles(dataflow: str, M: int, K: int, N: int, R: int, C: int, s: int = 1) -> int:
    """SCALE-Sim 3.0.0's compute cycles (reference/scalesim.md), stream scaled by s."""
    if dataflow == "os":
        return math.ceil(M / R) * math.ceil(N / C) * (K * s + R + C - 2) - 1
    if dataflow == "ws":
        return math.ceil(K / R) * math.ceil(N / C) * (2 * R + C + M * s - 2) - 1
    return math.ceil(K / R) * math.ceil(M / C) * (2 * R + C + N * s - 2) - 1


def expected_leave(dataflow: str, M: int, N: int, R: int, C: int, view) -> np.ndarray:
    """Cycle each output leaves: fold start + skew of its PE (+ preload and column descent)."""
    _, Kv, _, s = view
    m, n = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    if dataflow == "os":
        fold_len = Kv * s + R + C - 2
        fold = (m // R) * math.ceil(N / C) + n // C
        return fold * fold_len + Kv * s - 1 + m % R + n % C
    fk = math.ceil(Kv / R)
    v, j = (m, n) if dataflow == "ws" else (n, m)
    fold_len = 2 * R + C + (M if dataflow == "ws" else N) * s - 2
    last_k_fold = (j // C) * fk + fk - 1  # K is the inner fold loop
    return last_k_fold * fold_len + R + v * s + s - 1 + R - 1 + j % C


# Precision of each kind under test: (weight_bits, act_bits) strategies and PE params.
PRECISION = {
    "mac": (st.integers(1, 8), st.integers(1, 8), st.just({})),
    "shift": (st.integers(2, 4), st.integers(1, 8), st.just({})),
    "xnor": (st.just(1), st.just(1),
             st.builds(dict, word_bits=st.one_of(st.integers(1, 9), st.just(64)))),
    "ternary": (st.just(2), st.integers(1, 8), st.just({})),
    "bitserial": (st.integers(1, 8), st.integers(1, 8),
                  st.builds(dict, lanes=st.integers(1, 3),
                            serial=st.sampled_from(["activations", "weights"]))),
    "bitfusion": (st.integers(1, 8), st.integers(1, 8), st.just({})),
    "bfp": (st.integers(2, 8), st.integers(2, 8), st.builds(dict, block=st.integers(1, 5))),
}


def operands(kind: str, M: int, K: int, N: int, wb: int, ab: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random operands already quantised for the PE kind."""
    if kind == "xnor":
        return rng.choice([-1, 1], (M, K)), rng.choice([-1, 1], (K, N))
    if kind == "bfp":  # dyadic values: float64 sums of the quantised products stay exact
        def real(shape):
            return rng.integers(-64, 65, shape) * np.ldexp(1.0, rng.integers(-2, 3, shape))

        return real((M, K)), real((K, N))
    A = rng.integers(-(2 ** (ab - 1)), 2 ** (ab - 1), (M, K))
    if kind == "shift":
        exps = rng.integers(0, 2 ** (wb - 1) - 1, (K, N))
        return A, rng.choice([-1, 0, 1], (K, N)) * (1 << exps)
    if kind == "ternary":
        return A, rng.choice([-1, 0, 1], (K, N))
    return A, rng.integers(-(2 ** (wb - 1)), 2 ** (wb - 1), (K, N))


@st.composite
def cases(draw, kind: str):
    wbs, abs_, params = PRECISION[kind]
    dims = st.integers(1, 9)
    return dict(dataflow=draw(st.sampled_from(DATAFLOWS)), M=draw(dims), K=draw(dims),
                N=draw(dims), R=draw(st.integers(1, 4)), C=draw(st.integers(1, 4)),
                wb=draw(wbs), ab=draw(abs_), params=draw(params),
                seed=draw(st.integers(0, 2**32 - 1)))


def quantised_product(kind, A, W, wb, ab, params) -> np.ndarray:
    if kind == "bfp":
        b = params["block"]
        return (bfp_dequantise(*bfp_quantise(A, ab, b, axis=1), b, axis=1)
                @ bfp_dequantise(*bfp_quantise(W, wb, b, axis=0), b, axis=0))
    return A.astype(np.int64) @ W.astype(np.int64)


@pytest.mark.parametrize("kind", list(PRECISION))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_reference_values_and_cycles(kind, data):
    c = data.draw(cases(kind))
    M, K, N, R, C, df = c["M"], c["K"], c["N"], c["R"], c["C"], c["dataflow"]
    pe = pe_kind(kind, **c["params"])
    A, W = operands(kind, M, K, N, c["wb"], c["ab"], np.random.default_rng(c["seed"]))
    res = simulate_gemm(A, W, rows=R, cols=C, dataflow=df, pe=pe, weight_bits=c["wb"],
                        act_bits=c["ab"])
    # (a) values: exactly numpy's product of the quantised operands
    want = quantised_product(kind, A, W, c["wb"], c["ab"], c["params"])
    np.testing.assert_array_equal(res.output, want)
    # (b) cycles: the per-kind closed form (SCALE-Sim's, on the array's view of the GEMM)
    view = pe.gemm_view(M, K, N, c["wb"], c["ab"])
    assert res.total_cycles == scalesim_cycles(df, *view[:3], R, C, view[3])
    np.testing.assert_array_equal(res.leave_cycle, expected_leave(df, M, N, R, C, view))
    assert res.leave_cycle.max() <= res.total_cycles
    if kind == "mac":
        assert res.total_cycles == scalesim_cycles(df, M, K, N, R, C)


@settings(max_examples=25, deadline=None)
@given(M=st.integers(1, 9), K=st.integers(1, 9), N=st.integers(1, 9), R=st.integers(1, 4),
       C=st.integers(1, 4), dataflow=st.sampled_from(DATAFLOWS))
def test_mac_reference_equals_fast_simulator(M, K, N, R, C, dataflow, tiny_arch, tiny_layer):
    """The fast model's compute cycles are the cycles real operands take through the array."""
    rng = np.random.default_rng(M * 1000 + K * 100 + N)
    res = simulate_gemm(rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N)),
                        rows=R, cols=C, dataflow=dataflow)
    report = simulate(tiny_arch(R, C, dataflow), Workload("w", (tiny_layer(M, K, N),)))
    # SCALE-Sim numbers cycles from zero (last busy cycle); the fast model reports at least
    # one cycle for a layer that does work (a 1-cycle layer's last cycle is number 0).
    sim = int(report.layers.set_index("layer").loc["g", "compute_cycles"])
    assert sim == max(res.total_cycles, 1)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_bitserial_reference_stream_halves_from_8_to_4_bits(dataflow):
    """Stripes: the stream part of each fold scales with the activation bits."""
    rng = np.random.default_rng(1)
    M, K, N, R, C = 6, 7, 5, 3, 4
    W = rng.integers(-128, 128, (K, N))
    runs = {b: simulate_gemm(rng.integers(-(2 ** (b - 1)), 2 ** (b - 1), (M, K)), W, rows=R,
                             cols=C, dataflow=dataflow, pe="bitserial", act_bits=b)
            for b in (8, 4)}
    fill = R + C - 2 + (0 if dataflow == "os" else R)
    assert runs[8].folds == runs[4].folds
    assert runs[8].fold_cycles - fill == 2 * (runs[4].fold_cycles - fill)


def test_hand_case_4x4_m5_k3_n6():
    """The hand-worked case of test_closed_form: 35 (os), 29 (ws), 31 (is) cycles."""
    A, W = np.arange(15).reshape(5, 3) - 7, np.arange(18).reshape(3, 6) - 9
    for df, cycles in (("os", 35), ("ws", 29), ("is", 31)):
        res = simulate_gemm(A, W, rows=4, cols=4, dataflow=df)
        assert res.total_cycles == cycles
        np.testing.assert_array_equal(res.output, A @ W)
    # os: output (0, 0) is final after K = 3 MACs at PE (0, 0): cycle 2 of fold 0.
    assert simulate_gemm(A, W, rows=4, cols=4, dataflow="os").leave_cycle[0, 0] == 2


def test_bfp_quantiser():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 37)) * np.ldexp(1.0, rng.integers(-6, 6, (4, 1)))
    x[0, :8] = 0.0
    mant, exp = bfp_quantise(x, 6, 8, axis=1)
    assert exp.shape == (4, 5)
    assert np.abs(mant).max() <= 31
    err = np.abs(bfp_dequantise(mant, exp, 8, axis=1) - x)
    assert (err <= np.ldexp(1.0, np.repeat(exp, 8, axis=1)[:, :37] - 1)).all()
    blocks = np.abs(np.pad(mant, ((0, 0), (0, 3)))).reshape(4, 5, 8).max(axis=-1)
    assert ((blocks >= 16) | (blocks == 0)).all()  # normalised: the top mantissa bit is used
    assert exp[0, 0] == 0 and (mant[0, :8] == 0).all()


def test_reference_rejects_operands_the_pe_cannot_hold():
    A = np.ones((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="shift weights"):
        simulate_gemm(A, np.full((3, 2), 3), rows=2, cols=2, dataflow="os", pe="shift",
                      weight_bits=4)
    with pytest.raises(ValueError, match="xnor"):
        simulate_gemm(A, np.zeros((3, 2), dtype=np.int64), rows=2, cols=2, dataflow="ws",
                      pe="xnor", weight_bits=1, act_bits=1)
    with pytest.raises(ValueError, match="4-bit"):
        simulate_gemm(A * 9, np.ones((3, 2), dtype=np.int64), rows=2, cols=2, dataflow="is",
                      act_bits=4)
