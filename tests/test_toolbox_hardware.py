"""The toolbox's hardware side: per-filter bits (native on a weight-serial array, padded
elsewhere), circulant storage and FFT execution, approximated functions on the vector unit,
heterogeneous PE arrays with placement rules, exit-weighted and per-sample costs, and the trace
fields that carry them. Cycle and byte counts are worked out by hand in the comments."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_arch, parse_arch, parse_network, simulate
from simulator.dynamic import exit_report, simulate_samples
from simulator.errors import ConfigError, MappingError, WorkloadError
from simulator.workload.trace import Trace, write_trace
from simulator.workload.trace_reader import read_trace
from tests.conftest import arch_dict

REPO = Path(__file__).resolve().parent.parent
WEIGHT_SERIAL = {"impl": "bitserial", "serial": "weights", "max_weight_bits": 8}


def fc(**fields: Any) -> dict[str, Any]:
    return {"name": "fc", "op": "linear", "in_features": 16, "out_features": 8, **fields}


def one(layer: dict[str, Any], **arch: Any) -> Any:
    return simulate(parse_arch(arch_dict(**arch)), parse_network({"name": "n",
                                                                  "layers": [layer]}))


@pytest.mark.parametrize(("dataflow", "serial_cycles", "mac_cycles"), [
    # filters 0-3 at 2 bits, 4-7 at 8 bits; M = 1, K = 16, N = 8 on a 4x4 array:
    # os: 2 folds (N chunks), stream K x widest = 32 / 128, fold = stream + 6 -> 38 + 134 - 1
    ("os", 171, 43),
    # ws: 4 K-chunks x 2 N-chunks, stream M x widest = 2 / 8, fold = 10 + s -> 4 (12 + 18) - 1
    ("ws", 119, 87),
    # is: N streamed: sum of widths 4 x 2 + 4 x 8 = 40, fold = 10 + 40, 4 K-chunks -> 200 - 1
    ("is", 199, 71),
])
def test_per_filter_bits_native_on_weight_serial_padded_on_mac(dataflow: str, serial_cycles: int,
                                                               mac_cycles: int) -> None:
    layer = fc(weight_filter_bits=[2, 2, 2, 2, 8, 8, 8, 8])
    serial = one(layer, dataflow=dataflow, pe_array={"pe": WEIGHT_SERIAL})
    mac = one(layer, dataflow=dataflow)
    assert int(serial.layers["compute_cycles"][0]) == serial_cycles
    assert int(mac.layers["compute_cycles"][0]) == mac_cycles
    # weights packed per filter: (4 x 16 x 2 + 4 x 16 x 8) bits + 8 filters x 5-bit width
    # fields = 640 + 40 bits = 85 bytes, on both
    assert int(serial.layers["dram_filter_read_bytes"][0]) == 85
    assert int(mac.layers["dram_filter_read_bytes"][0]) == 85
    # mean width 5 bits: a weight-serial PE does 1/5 MAC per cycle
    assert serial.layers["macs_per_pe_per_cycle"][0] == pytest.approx(0.2)
    assert serial.notes == [] and "padded to 8 bits" in mac.notes[0]
    # bit-serial steps: 16 x (4 x 2 + 4 x 8) = 640
    assert serial.actions.query("action == 'bit_serial_step'")["count"].sum() == 640


def test_per_filter_bits_on_a_row_stationary_array_are_padded_and_said() -> None:
    layer = fc(weight_filter_bits=[2, 2, 2, 2, 8, 8, 8, 8])
    rep = one(layer, dataflow="rs")
    assert int(rep.layers["dram_filter_read_bytes"][0]) == 85  # stored packed per filter
    assert "padded to 8 bits on pe 'mac'" in rep.notes[0]


@settings(max_examples=25, deadline=None)
@given(bits=st.lists(st.integers(1, 8), min_size=1, max_size=12),
       k=st.integers(1, 20), m=st.integers(1, 6), df=st.sampled_from(["os", "ws", "is"]))
def test_per_filter_cycles_equal_the_long_way(bits: list[int], k: int, m: int, df: str) -> None:
    """The vectorised per-fold widths equal one simulation per fold's own width, and are
    never more than running every filter at the widest width."""
    n, rows, cols = len(bits), 3, 4
    layer = {"name": "fc", "op": "linear", "in_features": k, "out_features": n, "tokens": m,
             "weight_filter_bits": bits}
    got = int(one(layer, rows=rows, cols=cols, dataflow=df,
                  pe_array={"pe": WEIGHT_SERIAL}).layers["compute_cycles"][0])
    # the long way: every output-filter chunk (columns) of the array as its own layer at its
    # widest filter's bits (os, ws: N on columns); is streams N: the sum of the widths
    if df == "is":
        s = sum(bits)
        fk, fm = math.ceil(k / rows), math.ceil(m / cols)
        want = fk * fm * (2 * rows + cols + s - 2) - 1
    else:
        want = -1
        for start in range(0, n, cols):
            chunk = bits[start:start + cols]
            w = max(chunk)
            sub = {"name": "c", "op": "linear", "in_features": k, "out_features": len(chunk),
                   "tokens": m, "weight_bits": w}
            want += int(one(sub, rows=rows, cols=cols, dataflow=df,
                            pe_array={"pe": WEIGHT_SERIAL}).layers["compute_cycles"][0]) + 1
    assert got == want
    widest = {**layer, "weight_filter_bits": [max(bits)] * n}
    assert got <= int(one(widest, rows=rows, cols=cols, dataflow=df,
                          pe_array={"pe": WEIGHT_SERIAL}).layers["compute_cycles"][0])


def test_circulant_dense_execution_stores_one_vector_per_block() -> None:
    layer = fc(weight_structure="circulant", weight_block=4)
    rep = one(layer, dataflow="ws")
    dense = one(fc(), dataflow="ws")
    # 16 x 8 weights / 4 = 32 stored values of 8 bits
    assert int(rep.layers["dram_filter_read_bytes"][0]) == 32
    assert int(dense.layers["dram_filter_read_bytes"][0]) == 128
    assert int(rep.layers["compute_cycles"][0]) == int(dense.layers["compute_cycles"][0])
    assert "stored as one vector per block" in rep.notes[0]
    with pytest.raises(WorkloadError, match="weight_block"):
        parse_network({"name": "n", "layers": [fc(weight_structure="circulant")]})


def fft_arch(**placement: Any) -> Any:
    return parse_arch(arch_dict(pe_array=None, pe_arrays={
        "array": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os"},
        "fft": {"impl": "fft", "butterflies": 2, "cmacs": 4, "max_block": 16}},
        placement=placement or {"impl": "by_op", "rules": {"circulant": "fft"},
                                "default": "array"}, vector_unit={"impl": "simd", "lanes": 4}))


def test_fft_unit_cycles_and_actions_by_hand() -> None:
    # M = 3 tokens, K = N = 8, b = 4: 48 butterflies, 48 complex MACs (test_toolbox_arithmetic)
    # on 2 butterfly units and 4 CMACs: max(48 / 2, 48 / 4) + log2 4 = 26 cycles
    net = {"name": "n", "layers": [
        {"name": "c", "op": "linear", "in_features": 8, "out_features": 8, "tokens": 3,
         "weight_structure": "circulant", "weight_block": 4},
        {"name": "d", "op": "linear", "in_features": 8, "out_features": 8, "tokens": 3}]}
    rep = simulate(fft_arch(), parse_network(net))
    layers = rep.layers.set_index("layer")
    assert layers.at["c", "unit"] == "fft" and layers.at["d", "unit"] == "array"
    assert int(layers.at["c", "compute_cycles"]) == 26
    acts = rep.actions.set_index(["layer", "component", "action"])["count"]
    assert acts[("c", "fft", "butterfly")] == 48 and acts[("c", "fft", "cmac")] == 48
    # every unit leaks every cycle of every layer, whether it runs or not
    assert acts[("d", "fft", "leak_cycle")] == int(layers.at["d", "total_cycles"])
    units = rep.units.set_index("unit")
    assert units.at["fft", "layers"] == 1 and units.at["array", "layers"] == 1
    # the FFT unit's busy share: 48 CMACs on 4 units over the network's cycles
    assert units.at["fft", "utilisation"] == pytest.approx(
        48 / (4 * rep.totals["total_cycles"]))


def test_fft_unit_refuses_other_layers_naming_layer_and_units() -> None:
    arch = fft_arch(impl="explicit", layers={"d": "fft"}, default="array")
    net = {"name": "n", "layers": [{"name": "d", "op": "linear", "in_features": 8,
                                    "out_features": 8}]}
    with pytest.raises(MappingError, match=r"layer 'd' can run on none.*fft.*block-circulant"):
        simulate(arch, parse_network(net))


def hetero(placement: dict[str, Any] | None = None) -> Any:
    return parse_arch(arch_dict(pe_array=None, pe_arrays={
        "int8": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os"},
        "xnor": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os", "pe": "xnor",
                 "weight_bits": 1, "act_bits": 1}},
        placement=placement or {"impl": "by_precision"}))


BINARY_NET = {"name": "bnn", "layers": [
    {"name": "first", "op": "linear", "in_features": 64, "out_features": 64, "weight_bits": 8,
     "act_bits": 8},
    {"name": "mid", "op": "linear", "in_features": 64, "out_features": 64, "weight_bits": 1,
     "act_bits": 1, "weight_scheme": "binary"},
    {"name": "last", "op": "linear", "in_features": 64, "out_features": 10, "weight_bits": 8,
     "act_bits": 8}]}


def test_binary_network_runs_end_to_end_with_its_8bit_layers() -> None:
    rep = simulate(hetero(), parse_network(BINARY_NET))
    assert rep.layers["unit"].tolist() == ["int8", "xnor", "int8"]
    # the XNOR layer: K = 64 packs into one 64-bit word: M = 1, K' = 1, N = 64 on 4x4 os:
    # 16 folds of (1 + 4 + 4 - 2) = 7 cycles -> 111
    assert int(rep.layers["compute_cycles"][1]) == 16 * 7 - 1
    with pytest.raises(MappingError, match=r"'mid' cannot run on pe 'xnor'|'first'.*xnor"):
        simulate(parse_arch(arch_dict(pe_array={"pe": "xnor", "weight_bits": 1,
                                                "act_bits": 1})),
                 parse_network(BINARY_NET))


def test_a_layer_no_unit_fits_names_the_layer_and_every_unit() -> None:
    net = {"name": "n", "layers": [{"name": "wide", "op": "linear", "in_features": 8,
                                    "out_features": 8, "weight_bits": 16, "act_bits": 16}]}
    with pytest.raises(MappingError, match=r"layer 'wide' can run on none of the units.*"
                                           r"int8: 16-bit weights.*xnor: 16-bit"):
        simulate(hetero(), parse_network(net))


def test_explicit_and_by_op_placement() -> None:
    arch = hetero({"impl": "explicit", "layers": {"m*": "xnor"}, "default": "int8"})
    rep = simulate(arch, parse_network(BINARY_NET))
    assert rep.layers["unit"].tolist() == ["int8", "xnor", "int8"]
    arch = hetero({"impl": "by_op", "rules": {"linear": "int8"}, "default": "xnor"})
    assert simulate(arch, parse_network({**BINARY_NET, "layers": BINARY_NET["layers"][:1]})
                    ).layers["unit"].tolist() == ["int8"]


@pytest.mark.parametrize(("change", "match"), [
    ({"pe_array": {"impl": "systolic", "rows": 2, "cols": 2, "dataflow": "os"}},
     "either pe_array .* or pe_arrays"),
    ({"placement": None}, "placement: required with several pe_arrays"),
    ({"placement": {"impl": "explicit", "layers": {"x": "int4"}}},
     r"placement\.layers\.x: unknown unit 'int4'"),
    ({"placement": {"impl": "by_speed"}}, "placement.*by_speed"),
    ({"pe_arrays": {"ofmap": {"impl": "systolic", "rows": 2, "cols": 2, "dataflow": "os"}}},
     r"pe_arrays\.ofmap: array names must be identifiers other than"),
])
def test_heterogeneous_config_errors(change: dict[str, Any], match: str) -> None:
    data = arch_dict(pe_array=None, pe_arrays={
        "int8": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os"},
        "xnor": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os", "pe": "xnor",
                 "weight_bits": 1, "act_bits": 1}}, placement={"impl": "by_precision"})
    for k, v in change.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = {**data.get(k, {}), **v} if k == "pe_arrays" else v
    with pytest.raises(ConfigError, match=match):
        parse_arch(data)


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "arch_configs").glob("*.yaml")))
def test_every_bundled_architecture_still_loads(path: str) -> None:
    arch = load_arch(REPO / "arch_configs" / path)
    assert arch.units and next(iter(arch.units.values())) == arch.pe_array


def test_one_array_under_pe_arrays_costs_the_same_as_pe_array() -> None:
    """The single-array YAML and the same array as the only entry of pe_arrays give the same
    cycles and energy (only the component's name differs)."""
    net = parse_network({"name": "n", "layers": [fc(), {"name": "r", "op": "relu",
                                                        "shape": [8]}]})
    single = simulate(parse_arch(arch_dict()), net)
    spec = arch_dict()["pe_array"]
    named = simulate(parse_arch(arch_dict(pe_array=None, pe_arrays={"main": spec})), net)
    assert named.totals["total_cycles"] == single.totals["total_cycles"]
    assert named.totals["energy_pj"] == pytest.approx(single.totals["energy_pj"])
    assert set(named.actions["component"]) - set(single.actions["component"]) == {"main"}


def approx_layer(**approx: Any) -> dict[str, Any]:
    return {"name": "s", "op": "sigmoid", "shape": [100],
            "approx": {"method": "pwl", "entries": 8, "bits": 8, "lo": -8.0, "hi": 8.0,
                       **approx}}


def test_approximated_function_costs_per_element_on_the_vector_unit() -> None:
    rep = one(approx_layer(), vector_unit={"impl": "simd", "lanes": 4})
    exact = one({"name": "s", "op": "sigmoid", "shape": [100]},
                vector_unit={"impl": "simd", "lanes": 4})
    # exact: 3 ops x 100 / 4 lanes = 75 cycles; pwl: one evaluation per element = 25 cycles
    assert int(exact.layers["compute_cycles"][0]) == 75
    assert int(rep.layers["compute_cycles"][0]) == 25
    acts = rep.actions.set_index(["component", "action"])["count"]
    assert acts[("vector_unit", "compare")] == 200 and acts[("vector_unit", "mul_add")] == 200
    assert acts[("vector_unit", "lut_read_bit")] == 1600  # 100 x (8 + 8)-bit entries
    assert acts[("vector_unit", "lut_write_bit")] == 128  # the table: 8 x 16 bits
    # the table (16 bytes) comes from DRAM with the layer
    assert int(rep.layers["dram_filter_read_bytes"][0]) == 16
    with pytest.raises(WorkloadError, match=r"lo .* must be below hi"):
        parse_network({"name": "n", "layers": [approx_layer(lo=1.0, hi=0.0)]})


EXIT_NET = {"name": "e", "layers": [
    {"name": "a", "op": "linear", "in_features": 8, "out_features": 8},
    {"name": "x.fc", "op": "linear", "in_features": 8, "out_features": 2},
    {"name": "b", "op": "linear", "in_features": 8, "out_features": 8},
    {"name": "c", "op": "linear", "in_features": 8, "out_features": 2}],
    "early_exit": {"exits": ["x.fc", "c"], "thresholds": [0.1, 0.5],
                   "rates": [[0.25, 0.75], [0.75, 0.25]], "accuracy": [0.9, 0.8],
                   "samples": 4, "heads": [["x.fc"]]}}


def test_exit_report_weights_cycles_by_the_measured_rates() -> None:
    wl = parse_network(EXIT_NET)
    rep = simulate(parse_arch(arch_dict()), wl)
    cyc = rep.layers["total_cycles"].tolist()
    er = exit_report(rep, wl)
    early, full = cyc[0] + cyc[1], sum(cyc)
    t = er.thresholds.set_index("threshold")
    assert t.at[0.1, "mean_cycles"] == pytest.approx(0.25 * early + 0.75 * full)
    assert t.at[0.5, "mean_cycles"] == pytest.approx(0.75 * early + 0.25 * full)
    # the median sample at 0.1 runs to the end, at 0.5 leaves early; p90 at 0.5 is the end
    assert (t.at[0.1, "p50_cycles"], t.at[0.5, "p50_cycles"]) == (full, early)
    assert t.at[0.5, "p90_cycles"] == full
    # std of a two-point distribution: sqrt(p (1 - p)) x the gap
    assert t.at[0.1, "std_cycles"] == pytest.approx(math.sqrt(0.25 * 0.75) * (full - early))
    # the baseline runs the backbone without the head x.fc
    assert t.at[0.1, "full_cycles"] == full - cyc[1]
    with pytest.raises(WorkloadError, match="must be 2 fractions summing to 1"):
        parse_network({**EXIT_NET, "early_exit": {**EXIT_NET["early_exit"],
                                                  "rates": [[0.5, 0.6], [1.0, 0.0]]}})


def test_per_sample_masks_spread_equals_one_run_per_sample() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 6, 16)) < np.array([0.9, 0.5, 0.2])[:, None, None]
    wl = parse_network({"name": "n", "layers": [
        {"name": "fc", "op": "linear", "in_features": 16, "out_features": 8, "tokens": 6}]})
    layer = wl.layers[0]
    act = dataclasses.replace(layer.activation, mask=masks[0], density=float(masks[0].mean()),
                              mask_set=masks)
    wl = dataclasses.replace(wl, layers=(dataclasses.replace(layer, activation=act),))
    arch = load_arch(REPO / "arch_configs" / "cnvlutin_like_16x16_os.yaml")
    sr = simulate_samples(arch, wl)
    for s in range(3):  # the long way: one simulation per sample's mask
        one_s = dataclasses.replace(wl, layers=(dataclasses.replace(layer, activation=(
            dataclasses.replace(layer.activation, mask=masks[s],
                                density=float(masks[s].mean())))),))
        want = simulate(arch, one_s).layers
        got = sr.layers[sr.layers["sample"] == s].iloc[0]
        assert got["total_cycles"] == want["total_cycles"][0]
        assert got["load_imbalance"] == want["load_imbalance"][0]
    cyc = sr.layers["total_cycles"]
    row = sr.summary.iloc[0]
    assert (row["total_cycles_min"], row["total_cycles_max"]) == (cyc.min(), cyc.max())
    assert cyc.nunique() > 1  # zero skipping: the inputs' sparsity shows in the cycles


def test_trace_carries_the_toolbox_fields(tmp_path: Path) -> None:
    net = {"name": "n", "layers": [
        fc(weight_filter_bits=[2, 3, 4, 5, 6, 7, 8, 8], weight_bits=8),
        {"name": "c", "op": "linear", "in_features": 8, "out_features": 8,
         "weight_structure": "circulant", "weight_block": 4},
        {**approx_layer(), "shape": [8]},
        {"name": "x.fc", "op": "linear", "in_features": 8, "out_features": 2}],
        "early_exit": {"exits": ["c", "x.fc"], "thresholds": [0.2], "rates": [[0.5, 0.5]],
                       "accuracy": [0.7], "samples": 10, "heads": []}}
    wl = parse_network(net)
    masks = np.zeros((2, 1, 16), dtype=bool)
    masks[1, 0, :5] = True
    layers = list(wl.layers)
    layers[0] = dataclasses.replace(layers[0], activation=dataclasses.replace(
        layers[0].activation, mask=masks[0], density=0.0, mask_set=masks))
    back = read_trace(write_trace(Trace(dataclasses.replace(wl, layers=tuple(layers))),
                                  tmp_path / "t"))
    got = {la.name: la for la in back.workload.layers}
    assert got["fc"].weight.filter_bits == (2, 3, 4, 5, 6, 7, 8, 8)
    assert (got["c"].weight.structure, got["c"].weight.block) == ("circulant", 4)
    assert got["s"].approx == wl.layers[2].approx
    assert np.array_equal(got["fc"].activation.mask_set, masks)
    assert back.workload.exits == wl.exits


KEEP = {"residency": {"weights": "stream", "activations": "keep"}}


def test_exit_heads_are_side_branches_of_the_backbone() -> None:
    """Regression (merge with issue 10's residency): a head sits between backbone layers in
    the trace, but the backbone layer after it reads the branch layer, not the head's logits;
    the head's output leaves the chip (no layer consumes it)."""
    wl = parse_network(EXIT_NET)  # a, x.fc (head of a), b, c
    assert wl.producers() == [(-1,), (0,), (0,), (2,)]
    rep = simulate(parse_arch(arch_dict(**KEEP)), wl).layers.set_index("layer")
    # a's 8 outputs (8 bits) stay on chip for both its readers; x.fc's 2 logits go to DRAM
    assert rep.at["x.fc", "dram_ifmap_read_bytes"] == 0
    assert rep.at["b", "dram_ifmap_read_bytes"] == 0
    assert rep.at["x.fc", "dram_write_bytes"] == 2
    assert rep.at["a", "dram_write_bytes"] == 0


def test_per_sample_costs_are_whole_network_runs_under_residency() -> None:
    """Each sample's network cost is one simulation of every layer with that sample's masks
    (what a layer leaves on chip changes its neighbours' traffic), checked the long way."""
    rng = np.random.default_rng(1)
    masks = rng.random((2, 4, 16)) < np.array([0.8, 0.3])[:, None, None]
    wl = parse_network({"name": "n", "layers": [
        {"name": "fc", "op": "linear", "in_features": 16, "out_features": 16, "tokens": 4},
        {"name": "r", "op": "relu", "shape": [4, 16]},
        {"name": "fc2", "op": "linear", "in_features": 16, "out_features": 8, "tokens": 4}]})
    layer = wl.layers[0]
    act = dataclasses.replace(layer.activation, mask=masks[0], density=float(masks[0].mean()),
                              mask_set=masks)
    wl = dataclasses.replace(wl, layers=(dataclasses.replace(layer, activation=act),
                                         *wl.layers[1:]))
    arch = dataclasses.replace(
        load_arch(REPO / "arch_configs" / "cnvlutin_like_16x16_os.yaml"),
        residency=parse_arch(arch_dict(**KEEP)).residency)
    sr = simulate_samples(arch, wl)
    for s in range(2):
        one_s = dataclasses.replace(wl, layers=(dataclasses.replace(layer, activation=(
            dataclasses.replace(act, mask=masks[s], density=float(masks[s].mean())))),
            *wl.layers[1:]))
        want = simulate(arch, one_s).totals
        got = sr.network.set_index("sample").loc[s]
        assert got["total_cycles"] == want["total_cycles"]
        assert got["energy_pj"] == pytest.approx(want["energy_pj"])


def test_outputs_stay_on_chip_across_heterogeneous_units() -> None:
    """Every unit shares the one buffer hierarchy: with ``activations: keep`` the int8 layer's
    output is the XNOR layer's input without DRAM, and preloaded weights stay pinned for any
    unit (the FFT unit's spectra included)."""
    arch = parse_arch({**arch_dict(pe_array=None, pe_arrays={
        "int8": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os"},
        "xnor": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os", "pe": "xnor",
                 "weight_bits": 1, "act_bits": 1}},
        placement={"impl": "by_precision"}), **KEEP})
    rep = simulate(arch, parse_network(BINARY_NET)).layers.set_index("layer")
    assert list(rep["unit"]) == ["int8", "xnor", "int8"]
    # first: 64 outputs x 8 bits kept; mid reads them (and keeps its own 64 x 1 bit)
    assert rep.at["first", "dram_write_bytes"] == 0
    assert rep.at["mid", "dram_ifmap_read_bytes"] == 0
    assert rep.at["last", "dram_ifmap_read_bytes"] == 0
    net = parse_network({"name": "n", "layers": [
        {"name": "c", "op": "linear", "in_features": 16, "out_features": 16,
         "weight_structure": "circulant", "weight_block": 4, "weight_bits": 16,
         "act_bits": 16}]})
    pre = dataclasses.replace(fft_arch(impl="by_op", rules={"circulant": "fft"},
                                       default="array"),
                              residency=parse_arch(arch_dict(residency={
                                  "weights": "preload", "activations": "dram"})).residency)
    rep = simulate(pre, net)
    # 16 blocks' worth of spectra: (16/4)^2 = 16 vectors of 4 values at 16 bits = 128 bytes,
    # loaded once before the first inference, none per inference
    assert rep.layers["unit"][0] == "fft"
    assert int(rep.layers["preload_bytes"][0]) == 128
    assert int(rep.layers["dram_filter_read_bytes"][0]) == 0


def test_units_and_notes_reach_the_sweep_store(tmp_path: Path) -> None:
    """A sweep's layer rows name the unit that ran each layer with its PEs (per-unit
    utilisation from the store equals Report.units), and a point's row carries the units'
    notes (per-filter bits padded on a MAC array)."""
    import yaml

    from simulator.sweep import ResultStore, sweep

    net = {**BINARY_NET, "layers": [*BINARY_NET["layers"][:2], {
        **BINARY_NET["layers"][2], "weight_filter_bits": [8, 4] * 5}]}
    (tmp_path / "bnn.yaml").write_text(yaml.safe_dump(net))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "s", "arch": str(REPO / "arch_configs" / "edge_xnor_int8.yaml"),
        "workloads": ["bnn.yaml"]}))
    sweep(tmp_path / "s.yaml", tmp_path / "out", workers=0)
    store = ResultStore.open(tmp_path / "out")
    layers = store.layers()
    assert list(layers["unit"]) == ["int8", "xnor", "int8"]
    assert list(layers["unit_n_pes"]) == [64, 256, 64]  # 8x8 int8, 16x16 xnor
    rep = simulate(load_arch(REPO / "arch_configs" / "edge_xnor_int8.yaml"), parse_network(net))
    busy = layers["effectual_macs"] / layers["macs_per_pe_per_cycle"]
    total = layers["total_cycles"].sum()
    for unit, u in rep.units.set_index("unit").iterrows():
        if unit != "vector_unit":
            mine = layers["unit"] == unit
            assert busy[mine].sum() / (layers["unit_n_pes"][mine].iloc[0] * total) \
                == pytest.approx(u["utilisation"])
    # peak: 2 ops x (64 int8 PEs x 1 MAC + 256 XNOR PEs x 64 MACs, one 64-bit word) per
    # cycle at 500 MHz = 16.448 TOPS; the PEs of both arrays
    assert list(layers["macs_per_pe_per_cycle"]) == [1.0, 64.0, 1.0]
    point = store.points().iloc[0]
    assert point["n_pes"] == 64 + 256
    assert point["peak_tops"] == pytest.approx(2 * (64 + 256 * 64) * 500e6 / 1e12)
    notes = store.points()["notes"].iloc[0]
    assert "per-filter weight bits 4..8 run padded to 8 bits" in notes
