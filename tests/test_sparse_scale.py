"""Sparse engines at scale (issue 12, item 4): the EIE and SCNN work counts need memory of the
order of the masks themselves (O(nnz) / O(K x P) on top), never O(M x K x PEs) or
O(K x N) int64 temporaries; batch samples share one activation mask. Each shortcut is proven
equal to the long way (the engines' reference implementations) on random small layers."""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Layer, parse_arch
from simulator.arch.accelerator import build
from simulator.hardware import eie, eie_queue, scnn
from simulator.hardware.eie_queue import masked_queue_cycles, queue_cycles
from simulator.mapping.masks import random_mask, weight_mask, weight_mask_pieces
from simulator.simulation import map_layer
from simulator.workload.spec import parse_network

INF = float("inf")
MB = 1 << 20


def accelerator(impl: str, **pe: object) -> object:
    return build(parse_arch({
        "name": impl, "clock_mhz": 800, "pe_array": {"impl": impl, "n_pes": 64, **pe},
        "buffers": {b: {"impl": "sram", "size_kb": 1024, "bandwidth_words": INF}
                    for b in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": INF, "energy_pj_per_bit": 8.0},
        "vector_unit": {"impl": "simd", "lanes": 4}}))


def network(layer: dict, batch: int = 1, density: float = 0.5) -> Layer:
    return parse_network({"name": "n", "batch_size": batch, "layers": [
        {**layer, "weight_density": density, "act_density": density}]}).layers[0]


def peak_mb(acc: object, layer: Layer) -> float:
    """Peak traced Python heap (MB) of mapping ``layer`` (masks drawn inside)."""
    tracemalloc.start()
    try:
        map_layer(layer, acc, 0)  # type: ignore[arg-type]
        return tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


FC = {"name": "fc", "op": "linear", "in_features": 4096, "out_features": 4096}
CONV = {"name": "c", "op": "conv2d", "in_channels": 64, "out_channels": 64, "in_h": 56,
        "in_w": 56, "kernel": 3, "stride": 1, "padding": 1}


def test_eie_fc_work_count_memory_is_below_the_whole_mask() -> None:
    # 4096 x 4096 at 50 % weights: the whole weight mask would be 16 MiB of bools; drawn and
    # counted piece by piece, the count needs one piece plus the per-PE entries (K x 64 PEs,
    # int64: 2 MiB); the old count needed ~380 MiB (int64 temporaries over K x N)
    assert peak_mb(accelerator("eie"), network(FC)) < 20


def test_eie_conv_queue_model_memory_is_bounded() -> None:
    # 64 -> 64 channels, 3x3 on 56 x 56: the im2col activation mask is M x K = 3136 x 576
    # bools (1.7 MiB); the old queue model sorted it into int64 (14 MiB) and gathered
    # (vectors x broadcasts x PEs) int64 work (~27 MiB peak)
    assert peak_mb(accelerator("eie"), network(CONV)) < 8


def test_eie_batch_samples_share_one_activation_mask() -> None:
    # batch 8: the eight samples' im2col views are one drawn mask; counting them must not copy
    # it per sample (the old view tiled it: ~3x the batch-1 peak)
    acc = accelerator("eie")
    small = {**CONV, "in_h": 28, "in_w": 28}
    one, eight = peak_mb(acc, network(small)), peak_mb(acc, network(small, batch=8))
    assert eight < one + 1


def test_scnn_fc_work_count_memory_is_below_the_whole_mask() -> None:
    # the same 4096 x 4096 layer (16 MiB as one mask): the old count padded the whole mask and
    # summed it per filter group into int64 and float64 (~100 MiB)
    assert peak_mb(accelerator("scnn"), network(FC)) < 14


# --- shortcuts against the long way, on random small layers -------------------------------

WEIGHT_MODES = ("dense", "iid", "magnitude", "2:4", "trace")
ACT_MODES = ("dense", "density", "trace")


@st.composite
def sparse_layers(draw: st.DrawFn) -> Layer:
    """A small conv or linear layer, batch 1-3, in every weight and activation mode."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w_mode, a_mode = draw(st.sampled_from(WEIGHT_MODES)), draw(st.sampled_from(ACT_MODES))
    batch = draw(st.integers(1, 3))
    if draw(st.booleans()):
        g = draw(st.sampled_from((1, 2)))
        c_in, c_out = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 12))
        k = draw(st.integers(1, 3))
        h = draw(st.integers(k, 8))
        spec = {"name": "c", "op": "conv2d", "in_channels": c_in, "out_channels": c_out,
                "in_h": h, "in_w": h + draw(st.integers(0, 2)), "kernel": k,
                "stride": draw(st.integers(1, 2)), "padding": draw(st.integers(0, 1)),
                "groups": g}
        w_shape: tuple[int, ...] = (c_out, c_in // g, k, k)
        a_shape: tuple[int, ...] = (c_in, h, spec["in_w"])
    else:
        f_in, f_out = draw(st.integers(1, 40)), draw(st.integers(1, 40))
        spec = {"name": "fc", "op": "linear", "in_features": f_in, "out_features": f_out}
        w_shape, a_shape = (f_out, f_in), (f_in,)
    wd, ad = draw(st.floats(0.05, 0.95)), draw(st.floats(0.05, 0.95))
    spec |= {"weight_density": 1.0 if w_mode in ("dense", "trace") else wd,
             "act_density": ad if a_mode == "density" else 1.0}
    if w_mode == "magnitude":
        spec["weight_mask_model"] = "magnitude"
    if w_mode == "2:4":
        spec |= {"weight_structure": "2:4", "weight_density": 0.5}
    layer = parse_network({"name": "n", "batch_size": batch, "layers": [spec]}).layers[0]
    if w_mode == "trace":
        wm = rng.random(w_shape) < wd
        layer = dataclasses.replace(layer, weight=dataclasses.replace(
            layer.weight, mask=wm, density=float(wm.mean())))
    if a_mode == "trace":
        am = rng.random(a_shape) < ad
        layer = dataclasses.replace(layer, activation=dataclasses.replace(
            layer.activation, mask=am, density=float(am.mean())))
    return layer


#: the engines' memory bounds and the queue kernel's path switch: as shipped, and tiny (many
#: chunks of K rows, of channels and of vectors, nonzeros turned into slots a few at a time,
#: the per-slot path on every chunk)
BOUNDS: dict[str, dict[tuple[object, str], int]] = {
    "shipped": {},
    "tiny": {(eie_queue, "_SLAB"): 16, (eie_queue, "_SLOTS"): 24,
             (eie_queue, "_NONZEROS"): 5, (eie_queue, "_WIDE"): 1, (eie, "_CHUNK"): 8,
             (scnn, "_CHUNK"): 16}}


@contextmanager
def bounds(name: str) -> Iterator[None]:
    old = {key: getattr(*key) for key in BOUNDS[name]}
    for (mod, attr), v in BOUNDS[name].items():
        setattr(mod, attr, v)
    try:
        yield
    finally:
        for (mod, attr), v in old.items():
            setattr(mod, attr, v)


@pytest.mark.parametrize("sizes", BOUNDS)
@settings(max_examples=60, deadline=None)
@given(layer=sparse_layers(), pes=st.integers(1, 9), depth=st.integers(1, 10),
       index_bits=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_eie_work_equals_the_long_way(sizes: str, layer: Layer, pes: int, depth: int,
                                      index_bits: int, seed: int) -> None:
    """Chunked entries, the queue model on the nonzero coordinates and one shared mask per
    batch: the same entries, per-column counts and cycles as the reference."""
    acc = accelerator("eie", n_pes=pes, queue_depth=depth, index_bits=index_bits)
    arr = acc.pe_array  # type: ignore[attr-defined]
    with bounds(sizes):
        fast = arr.work(layer, seed)
    long = arr.work(layer, seed, long_way=True)
    for got, want in zip(fast[:3], long[:3], strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert fast[3] == long[3]


@pytest.mark.parametrize("sizes", BOUNDS)
@settings(max_examples=60, deadline=None)
@given(layer=sparse_layers(), pes=st.integers(1, 9), f=st.integers(1, 4),
       i=st.integers(1, 4), kg=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_scnn_counts_equal_the_long_way(sizes: str, layer: Layer, pes: int, f: int, i: int,
                                        kg: int, seed: int) -> None:
    """Products and per-group cycles over chunks of channels against all channels at once."""
    acc = accelerator("scnn", n_pes=pes, multipliers_f=f, multipliers_i=i,
                      output_channel_group=kg)
    arr, bufs = acc.pe_array, acc.buffers  # type: ignore[attr-defined]
    with bounds(sizes):
        fast = arr.map_layer(layer, bufs, seed)
    long = arr.map_layer(layer, bufs, seed, long_way=True)
    assert fast.compute_cycles == long.compute_cycles
    assert fast.counts == long.counts
    assert fast.load_imbalance == long.load_imbalance


@pytest.mark.parametrize("sizes", BOUNDS)
@settings(max_examples=100, deadline=None)
@given(v=st.integers(1, 30), k=st.integers(1, 40), p=st.integers(1, 9),
       depth=st.integers(1, 12), wmax=st.integers(0, 7), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**16))
def test_masked_queue_equals_gathered_work(sizes: str, v: int, k: int, p: int, depth: int,
                                           wmax: int, density: float, seed: int) -> None:
    """:func:`masked_queue_cycles` (nonzero coordinates, per slot or per block) against
    :func:`queue_cycles` on each vector's gathered ``(broadcasts, PEs)`` work."""
    rng = np.random.default_rng(seed)
    table = rng.integers(0, wmax + 1, (k, p))
    mask = rng.random((v, k)) < density
    with bounds(sizes):
        got = masked_queue_cycles(table, mask, depth)
    want = [int(queue_cycles(table[np.flatnonzero(row)], depth)) if row.any() else 0
            for row in mask]
    assert got.dtype == np.int64 and got.tolist() == want


@pytest.mark.parametrize("sizes", BOUNDS)
def test_masked_queue_wide_values_take_the_wide_type(sizes: str) -> None:
    # 3000 broadcasts of 20 cycles on one PE (the other idle): 60,000 cycles do not fit
    # int16; the kernel must widen (a silent int16 overflow would wrap negative)
    table = np.zeros((3000, 2), dtype=np.int64)
    table[:, 0] = 20
    with bounds(sizes):
        got = masked_queue_cycles(table, np.ones((3, 3000), dtype=bool), 8)
    assert got.tolist() == [3000 * 20] * 3 == [int(queue_cycles(table, 8))] * 3


def test_random_mask_stream_is_unchunked() -> None:
    """Density-only masks are drawn from one 16-bit stream whatever the chunking: the
    drawn mask equals ``rng.bytes`` over the whole size at once (the long way)."""
    for shape, density, seed in (((1, 3, 5), 0.3, 1), ((7,), 0.5, 2),
                                 ((2, 1001, 2049), 0.7, 3), ((1, 1, 1), 0.9, 4)):
        size = int(np.prod(shape))
        draws = np.frombuffer(np.random.default_rng(seed).bytes(2 * size), dtype="<u2")
        assert np.array_equal(random_mask(shape, density, seed),
                              (draws < round(density * 65536)).reshape(shape))


@settings(max_examples=80, deadline=None)
@given(layer=sparse_layers(), rows=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_weight_mask_pieces_are_the_whole_mask(layer: Layer, rows: int, seed: int) -> None:
    """Pieces of K rows (drawn lazily for i.i.d. densities: odd piece sizes split a 32-bit
    draw) put back together are :func:`weight_mask`, bit for bit, in every weight mode."""
    whole = weight_mask(layer, seed)
    pieces = weight_mask_pieces(layer, seed, rows)
    if whole is None:
        assert pieces is None
        return
    assert pieces is not None
    got = np.zeros_like(whole)
    seen = 0
    for gi, k0, piece in pieces:
        assert piece.shape == (min(rows, layer.K - k0), layer.N)
        got[gi, k0:k0 + piece.shape[0]] = piece
        seen += piece.size
    assert seen == whole.size and np.array_equal(got, whole)
