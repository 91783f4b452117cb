"""LUTNet-style layers (Wang et al., FCCM 2019): the LUT layer's arithmetic against a numpy
table lookup, its XNOR initialisation, the method's plan, and the digits model end to end
(accuracy, trace, FPGA cost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from simulator import parse_arch, simulate
from simulator.arch.accelerator import build
from simulator.frontend import compress, parse_recipe
from simulator.frontend.lutmap import LutParams, lut_input_map, lutnet_plan
from simulator.frontend.lutnet import LUTLinear


def numpy_lut_layer(x: np.ndarray, layer: LUTLinear) -> np.ndarray:
    """The layer by hand: binarise each input against its threshold, read each connection's
    LUT at the index its K input bits form (bit j = input j > 0), sum, scale, add bias."""
    bits = (x - layer.theta.detach().numpy()) >= 0  # sign(0) = +1
    imap = layer.input_map.numpy()
    tables = np.where(layer.tables.detach().numpy() >= 0, 1.0, -1.0)
    if layer.lut_inputs == 1:
        tables = np.stack([-tables, tables], axis=-1)
    tables *= layer.mask.numpy()[..., None]
    out_f, in_f = layer.weight.shape
    y = np.zeros((x.shape[0], out_f))
    for b in range(x.shape[0]):
        for o in range(out_f):
            for i in range(in_f):
                idx_inputs = imap[i] if imap.ndim == 2 else imap[o, i]
                e = sum(int(bits[b, j]) << k for k, j in enumerate(idx_inputs))
                y[b, o] += tables[o, i, e]
    return y * layer.alpha.detach().numpy() + layer.bias.detach().numpy()


@pytest.mark.parametrize(("k", "mapping"), [(1, "tiled"), (3, "tiled"), (4, "random")])
def test_lut_layer_is_a_table_lookup(k: int, mapping: str):
    rng = np.random.default_rng(k)
    w = rng.normal(size=(5, 7))
    w[0, :3] = 0.0  # pruned connections stay empty
    layer = LUTLinear(w, rng.normal(size=5), lut_input_map(7, 5, k, mapping, rng),
                      rng.normal(size=7))
    with torch.no_grad():  # arbitrary learned entries, not the XNOR initialisation
        layer.tables.copy_(torch.from_numpy(rng.normal(size=layer.tables.shape)))
    x = rng.normal(size=(6, 7)).astype(np.float32)
    got = layer(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, numpy_lut_layer(x, layer), rtol=1e-5, atol=1e-5)


def test_xnor_initialisation_makes_every_k_the_bnn_layer():
    """LUTNet starts from the BNN: a K-LUT initialised as c_e = sign(w) s_e0 ignores its extra
    inputs, so for any K the layer computes alpha * sum_i sign(w_i) sign(x_i - theta_i)."""
    rng = np.random.default_rng(0)
    w, theta = rng.normal(size=(4, 9)), rng.normal(size=9)
    x = rng.normal(size=(8, 9)).astype(np.float32)
    xb = np.where(x - theta >= 0, 1.0, -1.0)
    alpha = np.abs(w).mean(axis=1)
    want = (xb @ np.where(w >= 0, 1.0, -1.0).T) * alpha
    for k in (1, 4, 6):
        layer = LUTLinear(w, None, lut_input_map(9, 4, k, "tiled", rng), theta)
        got = layer(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_gradients_reach_the_tables_and_thresholds():
    rng = np.random.default_rng(1)
    layer = LUTLinear(rng.normal(size=(3, 6)), None, lut_input_map(6, 3, 4, "tiled", rng),
                      np.zeros(6))
    layer(torch.randn(5, 6)).sum().backward()
    assert layer.tables.grad is not None and layer.tables.grad.abs().sum() > 0
    assert layer.theta.grad is not None and layer.theta.grad.abs().sum() > 0


def test_plan_prunes_exactly_and_maps_own_input_first():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(64, 128))
    out = lutnet_plan(w, LutParams(lut_inputs=5, prune=0.75))
    assert int((out.weight != 0).sum()) == 64 * 128 // 4
    imap = out.extra["input_map"]
    assert imap.shape == (128, 5) and (imap[:, 0] == np.arange(128)).all()
    assert (out.scheme, out.bits) == ("lutnet", 32)
    assert (lutnet_plan(w, LutParams(lut_inputs=1)).scheme, 1) == ("binary", 1)
    with pytest.raises(ValueError, match="fully connected"):
        lutnet_plan(rng.normal(size=(4, 2, 3, 3)), LutParams())


def recipe(k: int, prune: float = 0.0) -> Any:
    return parse_recipe({"name": f"lut{k}", "finetune": {"epochs": 3, "lr": 0.003},
                         "steps": [{"method": "lutnet", "lut_inputs": k, "prune": prune,
                                    "layers": ["fc1"]}]})


def test_digits_lutnet_and_xnor_layers_end_to_end(digits: tuple[Any, Any], repo: Path):
    """fc1 (128 -> 64) as XNOR-popcount and as 4-input LUTs, 75 % of connections pruned:
    both keep accuracy near the float baseline (>= 90 % on the 540 held-out digits); the trace
    carries each layer's scheme; on the FPGA the LUTNet layer costs one LUT per kept K-LUT and
    fewer LUTs than its XNOR twin with all connections."""
    model, data = digits
    xnor = compress(model, recipe(1), data, name="digits-lenet")
    lut = compress(model, recipe(4, prune=0.75), data, name="digits-lenet")
    for res in (xnor, lut):
        acc = res.trace.accuracy
        assert acc is not None and acc.compressed >= 0.90
    fc1 = {r: next(la for la in res.trace.workload.layers if la.name == "fc1")
           for r, res in (("xnor", xnor), ("lut", lut))}
    assert (fc1["xnor"].weight.scheme, fc1["xnor"].weight.bits) == ("binary", 1)
    assert (fc1["lut"].weight.scheme, fc1["lut"].weight.bits) == ("lutnet", 16)
    assert fc1["lut"].weight.density == pytest.approx(0.25)
    arch = parse_arch({"name": "finn", "clock_mhz": 100,
                       "pe_array": {"impl": "fpga_finn", "device": "xczu3eg", "weight_bits": 8,
                                    "act_bits": 8, "acc_bits": 16,
                                    "folding": {"fc1": {"pe": 64, "simd": 128}}},
                       "buffers": {b: {"impl": "sram", "size_kb": 4, "word_bits": 8,
                                       "bandwidth_words": 64}
                                   for b in ("ifmap", "filter", "ofmap")},
                       "dram": {"impl": "dram", "bandwidth_gb_per_s": 1.0, "latency_ns": 0,
                                "energy_pj_per_bit": 8},
                       "vector_unit": {"impl": "simd", "lanes": 8}})
    u = build(arch).pe_array
    lut_plan, xnor_plan = u.plan(fc1["lut"]), u.plan(fc1["xnor"])
    assert lut_plan.luts < xnor_plan.luts
    assert simulate(arch, lut.trace.workload).totals["total_cycles"] > 0
