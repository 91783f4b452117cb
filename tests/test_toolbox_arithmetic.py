"""The toolbox methods' arithmetic against values worked out by hand (in the comments): the
circulant projection and its FFT product, piecewise-linear and table activation functions and
their error bounds, distillation's loss, dynamic fixed point, fine-grained ternarisation,
binary inputs, per-filter bit choice, exit decisions, rank candidates, vector-unit counts of
an approximated function, and the frequency-domain counts of a circulant layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.frontend.adaptive import quantise_rows, widths
from simulator.frontend.approximate import approximate, pwl_error_bound
from simulator.frontend.input_dependent import exit_decisions
from simulator.frontend.methods import METHODS
from simulator.frontend.mixed_precision import integer_length
from simulator.frontend.structured import circulant_project
from simulator.mapping.circulant import circulant_work
from simulator.workload.approx import FunctionApprox
from simulator.workload.layer import Layer, Operand


def run(name: str, w: np.ndarray, **params: object) -> object:
    m = METHODS.get(name)
    return m.fn(w, m.Params(**params))


def test_circulant_block_fft_product_equals_the_dense_product() -> None:
    # C[r, c] = v[(r - c) mod 4]: C x is the circular convolution v * x = IFFT(FFT(v) FFT(x))
    v, x = np.array([1.0, 2.0, -1.0, 0.5]), np.array([0.5, -2.0, 3.0, 1.0])
    c = np.array([[v[(r - k) % 4] for k in range(4)] for r in range(4)])
    assert c.tolist() == [[1, 0.5, -1, 2], [2, 1, 0.5, -1], [-1, 2, 1, 0.5], [0.5, -1, 2, 1]]
    # by hand: row 0 = 1*0.5 + 0.5*-2 + -1*3 + 2*1 = -1.5
    assert (c @ x)[0] == pytest.approx(-1.5)
    np.testing.assert_allclose(c @ x, np.fft.ifft(np.fft.fft(v) * np.fft.fft(x)).real)


def test_circulant_projection_is_the_diagonal_mean() -> None:
    # a 2x2 block [[a, b], [c, d]]: diagonal 0 = {a, d}, diagonal 1 = {c, b}
    w = np.array([[1.0, 2.0], [4.0, 3.0]])
    assert circulant_project(w, 2).tolist() == [[2.0, 3.0], [3.0, 2.0]]
    # a partial block (K = 3 with b = 2): column 2 stands alone in its block, rows 0..1:
    # entries (0, 2) on diagonal 0 and (1, 2) on diagonal 1 keep their own values
    w = np.array([[1.0, 2.0, 5.0], [4.0, 3.0, 7.0]])
    assert circulant_project(w, 2)[:, 2].tolist() == [5.0, 7.0]
    rng = np.random.default_rng(0)
    p = circulant_project(rng.normal(size=(7, 10)), 4)
    np.testing.assert_allclose(circulant_project(p, 4), p)  # a projection


def test_circulant_method_marks_the_structure() -> None:
    out = run("circulant", np.ones((8, 2, 2, 2), dtype=np.float32), block=4)
    assert (out.structure, out.block) == ("circulant", 4)  # type: ignore[attr-defined]


def test_three_segment_pwl_sigmoid_and_its_error_bound() -> None:
    fn = FunctionApprox("sigmoid", "pwl", 3, 24, -6.0, 6.0)
    f = approximate(fn)
    # knots -6, -2, 2, 6; on [-2, 2] the chord through sigmoid(-2) = 0.1192029 and
    # sigmoid(2) = 0.8807971: at 0 it is 0.5, at 1 it is 0.5 + 0.7615942 / 4 = 0.6903986
    got = f(np.array([0.0, 1.0, -2.0, 2.0]))
    np.testing.assert_allclose(got, [0.5, 0.6903986, 0.1192029, 0.8807971], atol=1e-6)
    # bound h^2 / 8 max|sigmoid''| = 16 / 8 * 1 / (6 sqrt 3) = 0.19245 (max at ln(2 + sqrt 3))
    assert pwl_error_bound("sigmoid", -6, 6, 3) == pytest.approx(2 / (6 * math.sqrt(3)),
                                                                 rel=1e-3)
    x = np.linspace(-10, 10, 40001)
    exact = 1 / (1 + np.exp(-x))
    inside = np.abs(x) <= 6
    assert np.abs(f(x) - exact)[inside].max() <= 2 / (6 * math.sqrt(3))
    # outside the range it saturates: error at most sigmoid(-6) = 0.002473
    assert np.abs(f(x) - exact)[~inside].max() <= 0.0024728


def test_lut_tanh_takes_the_nearest_entry() -> None:
    # 5 entries at -2, -1, 0, 1, 2 (16-bit values): 0.4 -> entry 0, 0.6 -> entry 1
    f = approximate(FunctionApprox("tanh", "lut", 5, 16, -2.0, 2.0))
    np.testing.assert_allclose(f(np.array([0.4, 0.6, 3.0])), [0.0, math.tanh(1.0), 1.0],
                               atol=1e-4)


def test_gelu_and_exp_saturate_to_their_asymptotes() -> None:
    g = approximate(FunctionApprox("gelu", "pwl", 8, 16, -4.0, 4.0))
    assert g(np.array([-9.0, 9.0])).tolist() == [0.0, 9.0]  # 0 below, x above
    e = approximate(FunctionApprox("softmax", "lut", 64, 16, -16.0, 0.0))
    assert e(np.array([-40.0]))[0] == 0.0


def test_distillation_loss_by_hand() -> None:
    torch = pytest.importorskip("torch")
    from simulator.frontend.distill import kd_loss

    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    y = torch.tensor([0])
    # T = 1: p_t = (0.75, 0.25), q = (0.5, 0.5): KL = 0.75 ln 1.5 + 0.25 ln 0.5 = 0.130812
    assert float(kd_loss(s, t, y, 1.0, 1.0)) == pytest.approx(0.130812, abs=1e-6)
    # T = 2: p_t = (sqrt3, 1) / (sqrt3 + 1) = (0.633975, 0.366025):
    # KL = 0.633975 ln 1.267949 + 0.366025 ln 0.732051 = 0.150505 - 0.114165 = 0.036341, x T^2
    assert float(kd_loss(s, t, y, 2.0, 1.0)) == pytest.approx(0.145363, abs=1e-5)
    # alpha = 0: plain cross-entropy, ln 2 for equal logits
    assert float(kd_loss(s, t, y, 2.0, 0.0)) == pytest.approx(math.log(2.0))


def test_dynamic_fixed_point_by_hand() -> None:
    # max 0.7: il = ceil(log2 0.7) + 1 = 0 + 1 = 1, fl = 8 - 1 = 7: steps of 1/128
    assert integer_length(0.7) == 1 and integer_length(5.3) == 4
    w = np.array([0.7, -0.3, 0.05, 0.001])
    out = run("dynamic_fixed_point", w, bits=8)
    # 89.6 -> 90, -38.4 -> -38, 6.4 -> 6, 0.128 -> 0
    assert out.weight.tolist() == [90 / 128, -38 / 128, 6 / 128, 0.0]  # type: ignore[attr-defined]
    assert out.extra["exponent"] == -7  # type: ignore[attr-defined]
    act = METHODS.get("act_dynamic_fixed_point")
    # unsigned, max 5.3: il = ceil(log2 5.3) = 3 (no sign bit): step 2^(3 - 8) = 1/32
    scale, unsigned = act.fn(np.array([0.0, 5.3, 1.0]), act.Params(bits=8))
    assert (scale, unsigned) == (1 / 32, True)


def test_fine_grained_ternary_scales_each_group() -> None:
    # group 1 = (1.0, -0.1, 0.5, 0.05): Delta = 0.7 * 0.4125 = 0.28875, kept 1.0 and 0.5,
    # alpha = 0.75; group 2 = (0.2, 0.2, -0.2, 0.0): Delta = 0.105, alpha = 0.2
    w = np.array([[1.0, -0.1, 0.5, 0.05, 0.2, 0.2, -0.2, 0.0]])
    out = run("ternary_fgq", w, group=4)
    np.testing.assert_allclose(out.weight, [[0.75, 0, 0.75, 0, 0.2, 0.2, -0.2, 0]])  # type: ignore[attr-defined]
    assert out.scale_bits == 16 / 4 and out.bits == 2  # type: ignore[attr-defined]


def test_binary_inputs_by_hand() -> None:
    act = METHODS.get("act_binary")
    # mu = mean(0, 1, 2, 5) = 2, beta = mean(2, 1, 0, 3) = 1.5: x -> 2 +- 1.5
    q = act.fn(np.array([0.0, 1.0, 2.0, 5.0]), act.Params())
    assert q(np.array([0.0, 2.0, 4.0])).tolist() == [0.5, 3.5, 3.5]


def test_per_filter_widths_meet_the_tolerance() -> None:
    # filter 0 = (1, 0.5), |w| = 1.118: at 2 bits the levels are -1, 0, 1 (scale 1), 0.5
    # rounds (half to even) to 0: error 0.5 / 1.118 = 0.447; at 3 bits (scale 1/3) 1.5 rounds
    # to 2: 0.667, error 0.167 / 1.118 = 0.149; filter 1 = (1, 1) is exact at 2 bits
    rows = np.array([[1.0, 0.5], [1.0, 1.0]])
    assert widths(rows, [2, 3, 4], 0.2, True).tolist() == [3, 2]
    assert widths(rows, [2, 3, 4], 0.5, True).tolist() == [2, 2]
    np.testing.assert_allclose(quantise_rows(rows, np.array([3, 2])),
                               [[1.0, 2 / 3], [1.0, 1.0]])


def test_exit_decisions_by_entropy_and_confidence() -> None:
    early = np.array([[0.98, 0.02], [0.6, 0.4]])  # entropies 0.098, 0.673
    final = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert exit_decisions([early, final], "entropy", 0.1).tolist() == [0, 1]
    assert exit_decisions([early, final], "entropy", 1.0).tolist() == [0, 0]
    assert exit_decisions([early, final], "confidence", 0.9).tolist() == [0, 1]


def test_rank_candidates_are_cheaper_than_dense() -> None:
    from simulator.frontend.imported import ImportedLayer
    from simulator.frontend.rank_search import candidate_ranks

    la = ImportedLayer("fc", {"op": "linear"}, 1.0, None, weight=np.zeros((64, 128)))
    # r (128 + 64) < 128 * 64 = 8192: r <= 42
    assert candidate_ranks(la) == [1, 2, 4, 8, 16, 32, 42]


def test_approximated_function_counts() -> None:
    fn = FunctionApprox("sigmoid", "pwl", 8, 8, -8, 8)
    # 100 outputs, flat sigmoid 3 ops each all replaced: 2 compares, 2 multiply-adds and one
    # 16-bit (slope + intercept) read per element, the 8 x 16-bit table written once
    assert fn.counts(100, 300) == {"vector_op": 0, "compare": 200, "mul_add": 200,
                                   "lut_read_bit": 1600, "lut_write_bit": 128,
                                   "cycles_ops": 100}
    ln = FunctionApprox("layernorm", "lut", 64, 8, 0.1, 4.0, row=32)
    # 64 elements = 2 rows: 2 rsqrt evaluations, all 7 x 64 exact ops kept
    assert ln.counts(64, 448)["cycles_ops"] == 448 + 2
    sm = FunctionApprox("softmax", "lut", 64, 8, -16, 0, row=16)
    assert sm.counts(64, 256)["vector_op"] == 256 - 64  # the exp of each element replaced


def test_frequency_domain_counts_of_a_circulant_layer() -> None:
    # K = N = 8, b = 4, M = 3 rows: p = q = 2; a 4-point FFT has (4 / 2) log2 4 = 4 butterflies:
    # 3 rows x (2 + 2) FFTs x 4 = 48 butterflies; 3 x 2 x 2 x 4 = 48 complex MACs
    layer = Layer("c", "linear", "gemm", M=3, K=8, N=8, weight=Operand(structure="circulant",
                                                                       block=4))
    w = circulant_work(layer, "fft")
    assert (w.p, w.q, w.butterflies, w.cmacs, w.stored_values) == (2, 2, 48, 48, 16)


@settings(max_examples=40, deadline=None)
@given(b_exp=st.integers(1, 4), p=st.integers(1, 3), q=st.integers(1, 3), m=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_frequency_domain_product_equals_the_dense_block_circulant_product(
        b_exp: int, p: int, q: int, m: int, seed: int) -> None:
    """CirCNN eq. 2 as the FFT unit computes it (p FFTs of the input blocks, p q element-wise
    products summed in the frequency domain, q IFFTs) equals the dense product of the projected
    block-circulant matrix, for every block size the unit takes."""
    b = 2**b_exp
    rng = np.random.default_rng(seed)
    w = circulant_project(rng.normal(size=(q * b, p * b)), b)  # N x K
    x = rng.normal(size=(m, p * b))
    v = w.reshape(q, b, p, b)[:, :, :, 0]  # each block's first column is its vector
    spec_w = np.fft.fft(v, axis=1)  # (q, b, p): the stored spectra
    spec_x = np.fft.fft(x.reshape(m, p, b), axis=2)  # p FFTs per row
    acc = np.einsum("qbp,mpb->mqb", spec_w, spec_x)  # p q b complex MACs per row
    y = np.fft.ifft(acc, axis=2).real.reshape(m, q * b)  # q IFFTs per row
    np.testing.assert_allclose(y, x @ w.T, atol=1e-9)
    layer = Layer("c", "linear", "gemm", M=m, K=p * b, N=q * b,
                  weight=Operand(structure="circulant", block=b))
    work = circulant_work(layer, "fft")
    assert work.cmacs == m * p * q * b  # the einsum's products
    assert work.butterflies == m * (p + q) * (b // 2) * b_exp
