"""Compression methods on small tensors against hand-worked values; recipe validation."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.frontend.methods import METHODS, log_quantise
from simulator.frontend.recipe import RecipeError, parse_recipe


def run(name: str, w: np.ndarray, **params: object) -> np.ndarray:
    m = METHODS.get(name)
    return np.asarray(m.fn(w, m.Params(**params)).weight)


def test_every_method_cites_a_paper() -> None:
    assert all(len(METHODS.get(n).citation) > 15 for n in METHODS.names)


def test_magnitude_exact_count() -> None:
    w = np.array([[0.1, -0.5, 0.3, -0.05], [0.2, 0.9, -0.01, 0.4]], dtype=np.float32)
    out = run("magnitude", w, sparsity=0.5)
    assert np.array_equal(out != 0, np.array([[0, 1, 0, 0], [0, 1, 0, 1]], bool) |
                          np.array([[0, 0, 1, 0], [0, 0, 0, 0]], bool))


def test_two_of_four_keeps_two_largest_of_each_four() -> None:
    w = np.array([[1, -4, 3, 2, 0.5, -0.1, 0.2, 0.3]], dtype=np.float32)
    out = run("n_m", w, n=2, m=4)
    assert out.tolist() == [[0, -4, 3, 0, 0.5, 0, 0, 0.30000001192092896]]
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(8, 3, 3, 3)).astype(np.float32)  # K = 27: a partial last group
    groups = np.pad((run("n_m", conv) != 0).reshape(8, -1), ((0, 0), (0, 1))).reshape(8, -1, 4)
    assert (groups.sum(axis=2) <= 2).all()


def test_filter_l1_removes_smallest_filters() -> None:
    w = np.array([[1, 1], [0.1, -0.1], [3, 0], [-0.2, 0.5]], dtype=np.float32)
    out = run("filter_l1", w, sparsity=0.5)
    assert (out[[1, 3]] == 0).all() and np.array_equal(out[[0, 2]], w[[0, 2]])


def test_fixed_point_levels() -> None:
    w = np.array([[1.0, 0.5, -0.26, 0.1]], dtype=np.float32)
    out = run("fixed_point", w, bits=3, per_channel=True)  # scale 1/3, levels -3..3
    np.testing.assert_allclose(out, [[1.0, 2 / 3, -1 / 3, 0.0]], rtol=1e-6)
    for bits in (2, 4, 8):
        assert np.unique(run("fixed_point", w, bits=bits)).size <= 2**bits - 1


def test_log_quantise_matches_formula() -> None:
    x = np.array([0.0, 0.3, -0.7, 1.6, 0.001, -3.0])
    bits, fsr = 2, 1
    want = [0.0 if v == 0 else np.sign(v) * 2.0 ** np.clip(np.round(np.log2(abs(v))),
                                                          fsr - 2**bits, fsr) for v in x]
    assert log_quantise(x, bits, fsr).tolist() == want
    assert want == [0.0, 0.25, -0.5, 2.0, 2.0**-3, -2.0]


def test_pow2_inq_levels() -> None:
    w = np.array([0.9, 0.5, 0.3, 0.2, 0.07, 0.06, -0.7])  # 0.06 < 2^n2 / 2: zero
    # n1 = floor(log2(4 * 0.9 / 3)) = 0; b = 4: n2 = 0 + 1 - 4 = -3 -> {0, 1/8 .. 1}
    out = run("pow2", w, bits=4)
    assert out.tolist() == [1.0, 0.5, 0.25, 0.25, 0.125, 0.0, -0.5]


def test_binary_and_ternary() -> None:
    w = np.array([[0.5, -1.5, 0.0, 1.0]], dtype=np.float32)
    assert run("binary", w).tolist() == [[0.75, -0.75, 0.75, 0.75]]
    # TWN: delta = 0.7 * mean|w| = 0.525; alpha = mean(1.5, 1.0) = 1.25
    assert run("ternary", w).tolist() == [[0.0, -1.25, 0.0, 1.25]]


def test_block_floating_point_shares_an_exponent() -> None:
    w = np.array([[3.0, 0.3, -1.1, 0.01]], dtype=np.float32)
    # max 3 -> e = 2, 4-bit mantissa: scale 2^(2-3) = 0.5, clip at 7
    assert run("bfp", w, bits=4, block=4).tolist() == [[3.0, 0.5, -1.0, 0.0]]


def test_kmeans_leaves_at_most_k_values() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 32)).astype(np.float32)
    w[w.__abs__() < 0.3] = 0
    out = run("kmeans", w, clusters=8)
    assert np.unique(out[out != 0]).size <= 8
    assert np.array_equal(out == 0, w == 0)


def test_svd_factors_reconstruct_at_full_rank() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 4)).astype(np.float32)
    m = METHODS.get("svd")
    a, b = m.fn(w, m.Params(rank=4))
    np.testing.assert_allclose(b @ a, w, atol=1e-5)
    a, b = m.fn(w, m.Params(rank=2))
    assert a.shape == (2, 4) and b.shape == (6, 2)


@pytest.mark.parametrize(("step", "match"), [
    ({"method": "magic"}, r"steps\[0\]\.method: unknown compression method 'magic'"),
    ({"method": "fixed_point", "bits": 0}, r"steps\[0\]\.bits"),
    ({"method": "fixed_point", "bits": 8, "colour": 1}, r"steps\[0\]\.colour: unknown key"),
    ({"method": "magnitude", "sparsity": 1.5}, r"steps\[0\]\.sparsity"),
])
def test_recipe_errors(step: dict[str, object], match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        parse_recipe({"name": "r", "steps": [step]}, source="r.yaml")


def test_recipe_order_is_enforced() -> None:
    with pytest.raises(RecipeError, match=r"steps\[1\]\.method.*must come before"):
        parse_recipe({"name": "r", "steps": [{"method": "fixed_point", "bits": 8},
                                             {"method": "magnitude", "sparsity": 0.5}]})


def test_bundled_recipes_validate(repo) -> None:  # type: ignore[no-untyped-def]
    from simulator.frontend.recipe import load_recipe

    names = sorted(p.stem for p in (repo / "workloads" / "recipes").glob("*.yaml"))
    assert len(names) >= 12
    for name in names:
        assert load_recipe(name).name == name
