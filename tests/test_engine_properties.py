"""Invariants of every compute engine under sparsity (Hypothesis): systolic arrays skipping
zeros in each dataflow, the EIE-like and the SCNN-like engines, on random convolutions (strides,
padding) and GEMMs with random masks.

* skipping zeros is never slower than the same layer dense;
* effectual MACs never exceed the dense MACs, nor the products the engine computes;
* utilisation of effectual MACs never exceeds the peak rate;
* every action count is a non-negative integer and the energy is positive.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Operand, Workload, parse_arch, simulate
from simulator.workload.spec import parse_network

INF = float("inf")
ENGINES = {
    "systolic_os": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os"},
    "systolic_ws": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "ws"},
    "systolic_is": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "is"},
    "eie": {"impl": "eie", "n_pes": 4, "queue_depth": 2},
    "scnn": {"impl": "scnn", "n_pes": 4, "multipliers_f": 2, "multipliers_i": 2,
             "output_channel_group": 2},
}
SKIP = {"weights": "skip", "activations": "skip"}


def arch(engine: str, sparse: bool):
    pe = dict(ENGINES[engine])
    if pe["impl"] == "systolic" and sparse:
        pe["sparsity"] = SKIP
    return parse_arch({
        "name": engine, "clock_mhz": 1000, "pe_array": pe,
        "buffers": {b: {"impl": "sram", "size_kb": 1024, "bandwidth_words": INF}
                    for b in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": INF, "energy_pj_per_bit": 8.0},
        "vector_unit": {"impl": "simd", "lanes": 4}})


@st.composite
def convs(draw):
    c_in, c_out = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    k = draw(st.integers(1, 3))
    h = draw(st.integers(k, 9))
    spec = {"name": "c", "op": "conv2d", "in_channels": c_in, "out_channels": c_out,
            "in_h": h, "in_w": draw(st.integers(k, 9)), "kernel": k,
            "stride": draw(st.integers(1, 2)), "padding": draw(st.integers(0, 1))}
    layer = parse_network({"name": "n", "layers": [spec]}).layers[0]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    wd, ad = draw(st.floats(0.1, 1.0)), draw(st.floats(0.1, 1.0))
    wm = rng.random((c_out, c_in, k, k)) < wd
    am = rng.random((c_in, spec["in_h"], spec["in_w"])) < ad
    sparse = dataclasses.replace(
        layer, weight=Operand(mask=wm, density=float(wm.mean())),
        activation=Operand(mask=am, density=float(am.mean())))
    return Workload("w", (layer,)), Workload("w", (sparse,))


def check(report, engine: str) -> None:  # type: ignore[no-untyped-def]
    row = report.layers.iloc[0]
    acts = dict(report.results[0].actions)
    assert all(isinstance(n, int) and n >= 0 for n in acts.values())
    assert report.totals["energy_pj"] > 0
    assert row.effectual_macs <= row.macs
    computed = sum(n for (c, a), n in acts.items()
                   if c == "pe_array" and (a == "mac" or a.startswith("mac@")))
    assert row.effectual_macs <= computed + acts.get(("pe_array", "mac_gated"), 0)
    assert 0 <= row.pe_utilisation <= 1 + 1e-9, engine


@pytest.mark.parametrize("engine", sorted(ENGINES))
@settings(max_examples=12, deadline=None)
@given(case=convs())
def test_skipping_never_slower_and_counts_consistent(case, engine: str) -> None:
    dense_wl, sparse_wl = case
    dense = simulate(arch(engine, False), dense_wl)
    sparse = simulate(arch(engine, True), sparse_wl)
    assert sparse.layers.iloc[0].compute_cycles <= dense.layers.iloc[0].compute_cycles
    check(dense, engine)
    check(sparse, engine)
