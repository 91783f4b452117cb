"""Bundled network specs and architectures against published numbers and the closed form."""

from __future__ import annotations

import dataclasses
import math
from functools import cache
from pathlib import Path

import pytest

from simulator import load_arch, load_workload, simulate
from simulator.mapping.options import ResidencyParams

REPO = Path(__file__).resolve().parent.parent
NETWORKS = sorted((REPO / "workloads" / "networks").glob("*.yaml"))
ARCHS = sorted((REPO / "arch_configs").glob("*.yaml"))

# Published MAC counts (multiply-accumulates, batch 1) and tolerances:
#   ResNet-18 1.814 G, ResNet-50 4.089 G (He et al. 2016 report 1.8 / 3.8 GFLOPs, i.e. MACs;
#   torchvision/ptflops give 1.814 / 4.089 G for the torchvision models), VGG-16 15.47 G
#   (Simonyan & Zisserman; ptflops 15.47 G), AlexNet with Caffe's grouped conv2/4/5 724 M
#   (Krizhevsky et al. 2012), MobileNetV2 1.0/224 300 M (Sandler et al. 2018, Table 4: 300 M
#   multiply-adds, rounded, so 1 %), and one BERT-base encoder layer at 512 tokens:
#   the six weight GEMMs are 512 tokens x 7,077,888 weights, plus the two attention matmuls
#   of 12 heads x 512 x 512 x 64 each.
PUBLISHED_MACS = {
    "resnet18": (1.814e9, 0.005),
    "resnet50": (4.089e9, 0.005),
    "vgg16": (15.47e9, 0.005),
    "alexnet": (724e6, 0.005),
    "mobilenetv2": (300e6, 0.01),
    "bert_base_layer": (512 * 7_077_888 + 2 * 12 * 512 * 512 * 64, 0.0),
}

# Conv/linear weights without biases and BN/LayerNorm, from the published parameter counts:
#   LeNet-5 (Caffe): 431,080 params - 580 biases (20+50+500+10) = 430,500.
#   AlexNet (Caffe, grouped): 60,965,224 - 10,568 biases = 60,954,656.
#   VGG-16: 138,357,544 - 13,416 biases = 138,344,128.
#   ResNet-18: 11,689,512 - 1000 fc bias - 9,600 BN affine = 11,678,912.
#   ResNet-50: 25,557,032 - 1000 fc bias - 53,120 BN affine = 25,502,912.
#   MobileNetV2: 3,504,872 - 1000 fc bias - 34,112 BN affine = 3,469,760.
#   BERT-base layer: 4 * 768^2 + 2 * 768 * 3072 = 7,077,888.
#   FINN SFC (784-256-256-256-10, Umuroglu et al. FPGA 2017, section 5.1, no biases in a BNN):
#   784 * 256 + 2 * 256^2 + 256 * 10 = 334,336.
PUBLISHED_WEIGHTS = {
    "lenet5": 430_500,
    "alexnet": 60_954_656,
    "vgg16": 138_344_128,
    "resnet18": 11_678_912,
    "resnet50": 25_502_912,
    "mobilenetv2": 3_469_760,
    "bert_base_layer": 7_077_888,
    "finn_sfc": 334_336,
}


@cache
def network(stem: str):
    return load_workload(REPO / "workloads" / "networks" / f"{stem}.yaml")


def test_every_spec_has_published_numbers():
    stems = {p.stem for p in NETWORKS}
    assert stems == set(PUBLISHED_WEIGHTS)
    assert set(PUBLISHED_MACS) <= stems


@pytest.mark.parametrize("path", NETWORKS, ids=lambda p: p.stem)
def test_spec_loads(path):
    wl = load_workload(path)
    assert wl.name == path.stem
    assert len(wl.layers) > 0
    assert len({layer.name for layer in wl.layers}) == len(wl.layers)


@pytest.mark.parametrize("stem", sorted(PUBLISHED_MACS))
def test_total_macs_match_published(stem):
    want, rel = PUBLISHED_MACS[stem]
    assert network(stem).macs == pytest.approx(want, rel=rel, abs=0)


@pytest.mark.parametrize("stem", sorted(PUBLISHED_WEIGHTS))
def test_weight_count_exact(stem):
    weights = sum(layer.filter_elements for layer in network(stem).layers
                  if layer.kind == "gemm" and layer.filter_is_weight)
    assert weights == PUBLISHED_WEIGHTS[stem]


def closed_form(rows: int, cols: int, dataflow: str, M: int, K: int, N: int, count: int,
                tile: int | None = None) -> int:
    """SCALE-Sim 3.0.0: folds * cycles-per-fold - 1 (reference/scalesim.md), each
    fold streaming one piece of ``tile`` elements of the streamed dimension (default: all)."""
    spatial, fill, stream = {
        "os": ((M, N), rows + cols - 2, K),
        "ws": ((K, N), 2 * rows + cols - 2, M),
        "is": ((K, M), 2 * rows + cols - 2, N),
    }[dataflow]
    pieces = math.ceil(stream / (tile or stream))
    folds = count * math.ceil(spatial[0] / rows) * math.ceil(spatial[1] / cols)
    return folds * (pieces * fill + stream) - 1


def _is_dense_systolic(path: Path) -> bool:
    """A systolic array (os, ws or is: not row-stationary, whose passes are not folds) of
    plain MAC PEs (a packed or bit-serial kind computes another GEMM view) that neither skips
    zeros nor prunes N:M (the closed form applies)."""
    try:
        arch = load_arch(path)
    except Exception:  # reported by test_bundled_arch_simulates_resnet18
        return False
    if arch.pe_array.impl != "systolic" or arch.pe_array.params.dataflow == "rs":
        return False
    pe = arch.pe_array.params.pe
    if (pe if isinstance(pe, str) else pe.get("impl")) != "mac":
        return False
    sparsity = getattr(arch.pe_array.params, "sparsity", None)
    return sparsity is None or (sparsity.weights in ("none", "gate")
                                and sparsity.activations in ("none", "gate"))


DENSE_ARCHS = [p for p in ARCHS if _is_dense_systolic(p)]


@cache
def resnet18_on(path: Path):
    return simulate(load_arch(path), network("resnet18"))


def test_scalesim_archs_are_dense():
    assert {p.stem for p in DENSE_ARCHS} >= {
        "scalesim_32x32_os", "scalesim_32x32_ws", "scalesim_32x32_is", "edge_8x8",
        "tpu_like_128x128_ws"}


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_bundled_arch_simulates_resnet18(path):
    report = resnet18_on(path)
    layers = report.layers
    assert list(layers["layer"]) == [layer.name for layer in network("resnet18").layers]
    assert (layers["total_cycles"] > 0).all()
    assert (layers["total_cycles"] >= layers["compute_cycles"]).all()
    assert report.totals["macs"] == network("resnet18").macs


@pytest.mark.parametrize("search", [True, False])
@pytest.mark.parametrize("path", DENSE_ARCHS, ids=lambda p: p.stem)
def test_dense_arch_resnet18_compute_cycles_are_closed_form(path, search):
    # With the search a fold streams one piece of the reported tile size (one fill and drain
    # per piece); with ``mapping: {search: false}`` it streams the whole dimension: exactly
    # SCALE-Sim's folds x per-fold - 1.
    arch = load_arch(path)
    arch = dataclasses.replace(arch, mapping=arch.mapping.model_copy(update={"search": search}))
    pe = arch.pe_array.params
    layers = simulate(arch, network("resnet18")).layers
    specs = {layer.name: layer for layer in network("resnet18").layers}
    gemm = layers[layers["op"].isin(["conv2d", "linear"])]
    assert len(gemm) == 21  # 17 3x3/7x7 convs, 3 downsample 1x1 convs, fc
    stream = {"os": "K", "ws": "M", "is": "N"}[pe.dataflow]
    for row in gemm.itertuples():
        spec = specs[row.layer]
        tile = getattr(row, f"tile_{stream}")
        if not search:
            assert tile == getattr(spec, stream), row.layer
        want = closed_form(pe.rows, pe.cols, pe.dataflow, spec.M, spec.K, spec.N, spec.count,
                           tile)
        assert row.compute_cycles == want, row.layer
    # conv1: 7x7/2 pad 3 on 224 -> floor((224 + 6 - 7)/2) + 1 = 112; M = 112^2, K = 3*49.
    conv1 = specs["conv1"]
    assert (conv1.M, conv1.K, conv1.N) == (112 * 112, 147, 64)


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_vector_layers_are_reported_not_dropped(path):
    # (with every output going to DRAM: residency is tested in tests/test_traffic.py)
    arch = dataclasses.replace(load_arch(path), residency=ResidencyParams())
    layers = simulate(arch, network("resnet18")).layers.set_index("layer")
    vector = [layer for layer in network("resnet18").layers if layer.kind == "vector"]
    # maxpool, 8 residual adds, global avgpool
    assert sorted({layer.op for layer in vector}) == ["add", "global_avgpool", "maxpool"]
    assert len(vector) == 10
    for layer in vector:
        row = layers.loc[layer.name]
        assert row["total_cycles"] > 0, layer.name
        assert row["dram_read_bytes"] > 0 and row["dram_write_bytes"] > 0, layer.name
    # The residual add of stage 1 reads two 64x56x56 tensors and writes one.
    add = layers.loc["layer1.0.add"]
    bytes_per = load_arch(path).pe_array.params.act_bits // 8
    assert add["dram_read_bytes"] == 2 * 64 * 56 * 56 * bytes_per
    assert add["dram_write_bytes"] == 64 * 56 * 56 * bytes_per


def test_bert_layer_vector_ops_are_reported():
    arch = load_arch(REPO / "arch_configs" / "scalesim_32x32_os.yaml")
    layers = simulate(arch, network("bert_base_layer")).layers.set_index("layer")
    for name in ("attention.self.softmax", "attention.output.LayerNorm", "intermediate.gelu"):
        assert layers.loc[name, "total_cycles"] > 0
        assert layers.loc[name, "dram_read_bytes"] > 0
