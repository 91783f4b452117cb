"""Sparsity: gating, skipping with per-lane imbalance, N:M, structural pruning, formats, and
the sparse accelerators (EIE-like, SCNN-like). Expected values are worked out by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Layer, Operand, Workload, parse_arch, simulate
from simulator.mapping.formats import format_bits

INF = float("inf")


def arch(dataflow: str = "os", rows: int = 4, cols: int = 4, weights: str = "none",
         activations: str = "none", impl: str = "systolic", **pe: object) -> object:
    pe_array: dict[str, object] = {"impl": impl}
    if impl == "systolic":
        pe_array |= {"rows": rows, "cols": cols, "dataflow": dataflow,
                     "sparsity": {"weights": weights, "activations": activations}}
    pe_array |= pe
    return parse_arch({
        "name": "t", "clock_mhz": 1000, "pe_array": pe_array,
        "buffers": {b: {"impl": "sram", "size_kb": 1024, "bandwidth_words": INF}
                    for b in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": INF, "energy_pj_per_bit": 8.0},
        "vector_unit": {"impl": "simd", "lanes": 4}})


def gemm(m: int, k: int, n: int, a_mask: np.ndarray | None = None,
         w_mask: np.ndarray | None = None, a_density: float = 1.0,
         w_density: float = 1.0, structure: str = "unstructured") -> Workload:
    """A matmul layer: activation mask (1, M, K), weight mask (1, K, N)."""
    layer = Layer("g", "matmul", "gemm", M=m, K=k, N=n, ifmap_elements=m * k,
                  filter_elements=k * n, ofmap_elements=m * n,
                  weight=Operand(mask=w_mask, density=w_density, structure=structure),
                  activation=Operand(mask=a_mask, density=a_density))
    return Workload("w", (layer,))


def row(report: object) -> object:
    return report.layers.iloc[0]  # type: ignore[attr-defined]


def test_one_busy_lane_sets_the_fold_time() -> None:
    # os on 4x4, M = 4 rows (one fold of rows), K = 8, N = 4. Activation skipping: lane m
    # streams nnz(a[m, :]) values. Put all 8 nonzeros of row 0 and one nonzero in rows 1-3:
    # busiest lane = 8 = dense K, so no saving; mean lane = (8 + 1 + 1 + 1) / 4 = 2.75.
    a = np.zeros((1, 4, 8), dtype=bool)
    a[0, 0, :] = True
    a[0, 1:, 0] = True
    dense = row(simulate(arch(), gemm(4, 8, 4)))
    skip = row(simulate(arch(activations="skip"), gemm(4, 8, 4, a_mask=a)))
    assert skip.compute_cycles == dense.compute_cycles == 1 * (8 + 4 + 4 - 2) - 1
    assert skip.load_imbalance == pytest.approx(8 / 2.75)
    # the same 11 nonzeros spread evenly (3, 3, 3, 2): busiest lane 3 -> 3 + 6 - 1 cycles
    b = np.zeros((1, 4, 8), dtype=bool)
    for m, cnt in enumerate((3, 3, 3, 2)):
        b[0, m, :cnt] = True
    even = row(simulate(arch(activations="skip"), gemm(4, 8, 4, a_mask=b)))
    assert even.compute_cycles == 3 + 4 + 4 - 2 - 1
    assert even.load_imbalance == pytest.approx(3 / 2.75)


def test_ws_weight_skipping_idles_a_lane_without_weights() -> None:
    # ws on 4x4: rows take K = 4, columns N = 4, stream M = 6. A lane (row k) whose 4 weights
    # are all zero does nothing; others stream M = 6 activations. Busiest lane 6 = dense.
    w = np.ones((1, 4, 4), dtype=bool)
    w[0, 2, :] = False
    r = row(simulate(arch("ws", weights="skip"), gemm(6, 4, 4, w_mask=w)))
    assert r.compute_cycles == 2 * 4 + 4 + 6 - 2 - 1
    assert r.load_imbalance == pytest.approx(6 / (18 / 4))


def test_gating_never_changes_cycles_and_counts_gated_macs() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((1, 10, 12)) < 0.5
    w = rng.random((1, 12, 7)) < 0.6
    dense = row(simulate(arch("ws"), gemm(10, 12, 7, a, w)))
    gated = row(simulate(arch("ws", weights="gate", activations="gate"),
                         gemm(10, 12, 7, a, w)))
    assert gated.compute_cycles == dense.compute_cycles
    assert gated.total_cycles == dense.total_cycles
    effectual = int((a[0].astype(int) @ w[0].astype(int)).sum())
    assert gated.effectual_macs == effectual
    assert gated.gated_macs == 10 * 12 * 7 - effectual
    assert gated.skipped_macs == 0


#: (pe, arch weight bits, arch act bits, weight scheme): every PE kind at a precision it runs
KINDS = [("mac", 8, 8, "int"), ("shift", 4, 8, "pow2"), ("xnor", 1, 1, "binary"),
         ("ternary", 2, 8, "ternary"), ({"impl": "bitserial", "lanes": 4}, 8, 4, "int"),
         ("bitfusion", 4, 4, "int"), ("bfp", 8, 8, "bfp")]


@settings(max_examples=80, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 300), n=st.integers(1, 40),
       df=st.sampled_from(["os", "ws", "is"]), da=st.floats(0.05, 1.0),
       dw=st.floats(0.05, 1.0), seed=st.integers(0, 2**16),
       modes=st.sampled_from([("skip", "none"), ("none", "skip"), ("skip", "skip")]),
       kind=st.sampled_from(KINDS), port=st.sampled_from([INF, 2.0]))
def test_skipping_is_never_slower_than_dense(m: int, k: int, n: int, df: str, da: float,
                                             dw: float, seed: int, modes: tuple[str, str],
                                             kind: tuple, port: float) -> None:
    # Over every PE kind (packed kinds skip on their packed K) and with narrow SRAM ports
    # (a skipping fold still moves its operands through them).
    rng = np.random.default_rng(seed)
    a = rng.random((1, m, k)) < da
    w = rng.random((1, k, n)) < dw
    pe, wb, ab, scheme = kind
    pe_kw = {"pe": pe, "weight_bits": wb, "act_bits": ab}
    layer = gemm(m, k, n, a, w)
    layer = Workload("w", (dataclasses.replace(
        layer.layers[0], weight=dataclasses.replace(layer.layers[0].weight, scheme=scheme)),))

    def run(**modes_kw: str) -> object:
        raw = {"name": "t", "clock_mhz": 1000,
               "pe_array": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": df,
                            "sparsity": modes_kw, **pe_kw},
               "buffers": {b: {"impl": "sram", "size_kb": 1024, "bandwidth_words": port}
                           for b in ("ifmap", "filter", "ofmap")},
               "dram": {"impl": "dram", "bandwidth_gb_per_s": INF, "energy_pj_per_bit": 8.0},
               "vector_unit": {"impl": "simd", "lanes": 4}}
        return row(simulate(parse_arch(raw), layer))

    dense = run()
    skip = run(weights=modes[0], activations=modes[1])
    assert skip.folds == dense.folds
    assert skip.compute_cycles <= dense.compute_cycles
    assert skip.total_cycles <= dense.total_cycles
    assert skip.load_imbalance >= 1.0 - 1e-12


def test_uniform_random_masks_give_the_expected_effectual_macs() -> None:
    # densities only: seeded random masks; effectual ~ M K N d_w d_a. With M K N = 2.4e6
    # Bernoulli pairs of p = 0.18 the relative standard deviation is ~0.15 %: allow 1 %.
    m, k, n = 100, 120, 200
    r = row(simulate(arch("os", 8, 8), gemm(m, k, n, a_density=0.45, w_density=0.4)))
    assert r.effectual_macs == pytest.approx(m * k * n * 0.4 * 0.45, rel=0.01)
    assert r.weight_density == pytest.approx(0.4, abs=0.01)
    # deterministic for a given seed
    again = row(simulate(arch("os", 8, 8), gemm(m, k, n, a_density=0.45, w_density=0.4)))
    assert again.effectual_macs == r.effectual_macs


def test_two_of_four_halves_compute_on_a_2to4_array() -> None:
    # ws on 4x4, K = 16 with weights 2:4 along K -> K' = 8: row folds ceil(16/4) = 4 -> 2;
    # N = 4 (one column fold), M = 10: fold = 2*4 + 4 + 10 - 2 = 20 cycles.
    w = np.zeros((1, 16, 4), dtype=bool)
    w[0, 0::4, :] = True
    w[0, 2::4, :] = True
    dense = row(simulate(arch("ws"), gemm(10, 16, 4, w_mask=w, structure="2:4")))
    nm = row(simulate(arch("ws", weights="2:4"), gemm(10, 16, 4, w_mask=w, structure="2:4")))
    assert dense.compute_cycles == 4 * 20 - 1
    assert nm.compute_cycles == 2 * 20 - 1
    # a layer that is not 2:4 runs dense on the same array
    w[0, 1, :] = True
    assert row(simulate(arch("ws", weights="2:4"),
                        gemm(10, 16, 4, w_mask=w))).compute_cycles == 4 * 20 - 1


def test_filter_pruning_shrinks_n_everywhere() -> None:
    w = np.ones((1, 8, 8), dtype=bool)
    w[0, :, 4:] = False  # four of eight filters pruned away
    r = row(simulate(arch("os"), gemm(4, 8, 8, w_mask=w, structure="filter")))
    # os 4x4: M = 4 (1 row fold), N' = 4 (1 column fold), K = 8: 8 + 4 + 4 - 2 - 1
    assert r.compute_cycles == 13
    assert r.skipped_macs == 4 * 8 * 4


def test_format_bits_by_hand() -> None:
    mask = np.array([[1, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]], dtype=bool)
    # bitmask: 2 values x 8 bits + 12 mask bits
    assert format_bits(mask, 8, "bitmask", 2, 16) == (16.0, 12.0)
    # csr, 2-bit relative index (runs up to 3): row 0 = [v, gap 4 -> one padding entry, v]
    # -> 3 entries x (8 value bits, 2 index bits) + 3 row pointers x 16
    assert format_bits(mask, 8, "csr", 2, 16) == (24.0, 3 * 2 + 3 * 16.0)


def test_eie_balanced_work_is_nonzeros_over_pes() -> None:
    # N = 128 output rows over 64 PEs (2 each), dense weights, 10 of 32 activations nonzero:
    # each PE does 10 broadcasts x 2 rows = 20 MACs -> 20 cycles = 10 * 128 / 64.
    a = np.zeros((1, 1, 32), dtype=bool)
    a[0, 0, :10] = True
    r = row(simulate(arch(impl="eie"), gemm(1, 32, 128, a_mask=a)))
    assert r.compute_cycles == 10 * 128 // 64
    assert r.effectual_macs == 10 * 128
    assert r.load_imbalance == pytest.approx(1.0)


def test_scnn_cartesian_product_cycles_by_hand() -> None:
    # 1 input channel (K = 1) and 8 filters as one group, M = 64 positions over 64 PEs (one
    # each). Weights: 5 nonzeros -> ceil(5/4) = 2 weight steps; activations: PE 0 holds one
    # nonzero, the rest none -> busiest PE: 2 * ceil(1/4) = 2 cycles.
    a = np.zeros((1, 64, 1), dtype=bool)
    a[0, 0, 0] = True
    w = np.zeros((1, 1, 8), dtype=bool)
    w[0, 0, :5] = True
    r = row(simulate(arch(impl="scnn"), gemm(64, 1, 8, a_mask=a, w_mask=w)))
    assert r.compute_cycles == 2
    assert r.effectual_macs == 5


def test_four_bit_weights_halve_weight_dram_traffic() -> None:
    layer8 = Layer("fc", "linear", "gemm", M=1, K=512, N=512, ifmap_elements=512,
                   filter_elements=512 * 512, ofmap_elements=512, weight=Operand(bits=8))
    layer4 = Layer("fc", "linear", "gemm", M=1, K=512, N=512, ifmap_elements=512,
                   filter_elements=512 * 512, ofmap_elements=512, weight=Operand(bits=4))
    r8 = row(simulate(arch("ws", 8, 8), Workload("w", (layer8,))))
    r4 = row(simulate(arch("ws", 8, 8), Workload("w", (layer4,))))
    assert r8.dram_filter_read_bytes == 512 * 512
    assert r4.dram_filter_read_bytes == 512 * 512 // 2
    assert math.isclose(r4.dram_filter_read_bytes / r8.dram_filter_read_bytes, 0.5)
