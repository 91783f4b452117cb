"""Row-stationary dataflow (simulator/mapping/rowstationary.py): a pass worked by hand, its
choices on Eyeriss-sized layers, its errors, and Eyeriss's published figures on AlexNet."""

from __future__ import annotations

import pytest
from conftest import arch_dict

from simulator import MappingError, parse_arch, parse_network, simulate
from simulator.mapping.rowstationary import ConvShape, Scratchpads, pass_candidates, pass_cost


def conv(**kw):
    spec = {"name": "c", "op": "conv2d", "in_channels": 1, "out_channels": 1, "in_h": 5,
            "in_w": 5, "kernel": 3, **kw}
    return parse_network({"name": "n", "layers": [spec]})


def rs_arch(rows=3, cols=3, **kw):
    return parse_arch(arch_dict(rows, cols, "rs", bits=16, **kw))


def test_one_pass_by_hand():
    # 3x3 filter on a 5x5 input (1 channel, 1 filter, stride 1): E = F = 3. On a 3x3 array the
    # PE set R x E = 3 x 3 fits whole: one pass, p = q = n = 1. PE (i, j) convolves filter row
    # i with input row j + i: S * F = 3 * 3 = 9 MACs after loading its 3 weights:
    #   cycles 3 + 9 = 12; 9 PEs busy of 9;
    #   buffer reads: ifmap (3 - 1) * 1 + 3 = 5 rows of 5 = 25 words, filter 9, psum writes 9;
    #   scratchpad fills: 9 PEs x 3 weights = 27, 9 PEs x one 5-value input row = 45;
    #   psum hops: 2 of the 3 rows of each of the 3 columns pass 3 psums up = 2 * 3 * 3 = 18.
    rep = simulate(rs_arch(), conv())
    r = rep.layers.iloc[0]
    assert (r["macs"], r["folds"], r["compute_cycles"]) == (81, 1, 12)
    assert r["mapping_efficiency"] == 1.0
    assert (r["sram_ifmap_reads"], r["sram_filter_reads"], r["sram_ofmap_writes"]) == (25, 9, 9)
    a = rep.actions.set_index(["component", "action"])["count"]
    assert a[("pe_array", "filter_rf_write")] == 27
    assert a[("pe_array", "ifmap_rf_write")] == 45
    assert a[("pe_array", "psum_hop")] == 18
    for op in ("ifmap_rf_read", "filter_rf_read", "psum_rf_read", "psum_rf_write"):
        assert a[("pe_array", op)] == 81  # every MAC reads its three scratchpads


def test_taller_filters_fold_and_wider_outputs_strip():
    # 5x5 filter on a 3x3 array: filter rows fold into ceil(5/3) = 2 row folds (3 + 2 rows)
    # whose partial sums meet in the buffer; 12x12 input -> E = 8 ofmap rows in strips of 3
    # (the widest set the 3 columns allow: 3 + 3 + 2).
    s = ConvShape(N=1, C=1, M=1, H=12, W=12, R=5, S=5, E=8, F=8, U=1)
    (best, *_) = pass_candidates(s, 3, 3, Scratchpads())
    assert best.rows_per_fold == 3 and best.e == 3
    # per-PE work S * F = 40 per pass, 3 strips x 2 row folds = 6 passes, 5 cycles of fill:
    assert pass_cost(s, best)[0] == 6 * (5 + 40)


def test_eyeriss_sized_conv3_keeps_the_pes_busy():
    # AlexNet conv3 (13x13 outputs, 3x3 filters) on 12x14: 3-row sets stack 4 high, so for
    # latency the passes keep 156 or more of the 168 PEs busy (Eyeriss: 13-wide sets, 156);
    # for energy a pass with more reuse in the scratchpads may leave some idle.
    net = parse_network({"name": "n", "batch_size": 4, "layers": [
        {"name": "conv3", "op": "conv2d", "in_channels": 256, "out_channels": 384, "in_h": 13,
         "in_w": 13, "kernel": 3, "padding": 1}]})
    fast = simulate(rs_arch(12, 14, mapping={"objective": "latency"}), net).layers.iloc[0]
    assert fast["macs"] / (168 * fast["compute_cycles"]) >= 156 / 168
    lean = simulate(rs_arch(12, 14, mapping={"objective": "energy"}), net)
    assert lean.totals["energy_pj"] <= simulate(rs_arch(12, 14, mapping={
        "objective": "latency"}), net).totals["energy_pj"] * 1.001


def test_fc_layers_run_as_1x1_convolutions():
    # a linear 8 -> 4 on 2x2: 1x1 "convolution" of 1 image; per PE q = 8 channels (ifmap
    # scratchpad 12 >= 8), p = 2 filters; 2x2 copies -> 32 MACs in 1 pass of 8*2 + fill 16.
    net = parse_network({"name": "n", "layers": [
        {"name": "fc", "op": "linear", "in_features": 8, "out_features": 4}]})
    r = simulate(rs_arch(2, 2), net).layers.iloc[0]
    assert r["macs"] == 32
    assert r["compute_cycles"] <= 32


def test_rs_gates_but_does_not_skip():
    with pytest.raises(MappingError, match="row-stationary"):
        simulate(rs_arch(pe_array={"sparsity": {"activations": "skip"}}), conv())
    with pytest.raises(MappingError, match="pe: mac"):
        simulate(rs_arch(pe_array={"pe": "bitfusion", "weight_bits": 4, "act_bits": 4}),
                 conv())


def test_eyeriss_alexnet_figures(monkeypatch):
    # Eyeriss (Chen et al., JSSC 2017, abstract; reference/energy.md) on AlexNet's
    # five conv layers at batch 4: 35 frames/s, 0.0029 DRAM accesses (16-bit words) per MAC,
    # 278 mW chip power without DRAM. Both sides: conv layers only, input activation
    # densities of its Table V, run-length coded activations. Stated tolerances:
    # frame rate within 15 %, DRAM accesses within 2x (approxsim stores outputs uncompressed
    # and splits the 108 KB buffer into three fixed ones), chip power within a factor 5 below
    # (the Eyeriss ratio table prices data movement and MACs only: no clock tree, control or
    # leakage, which the measured power includes).
    import importlib.util

    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "analysis"))  # the study imports study_output
    spec = importlib.util.spec_from_file_location("eyeriss_study",
                                                  REPO / "analysis" / "eyeriss_study.py")
    study = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(study)
    fig = study.alexnet_figures()
    assert fig["fps"] == pytest.approx(35, rel=0.15)
    assert 0.0029 / 2 <= fig["dram_accesses_per_mac"] <= 0.0029 * 2
    assert 278 / 5 <= fig["chip_mw"] <= 278
