"""The layer memo (simulator/memo.py) is exact: a report with it equals the report of
simulating every layer (``memo=False``, the long way), on random networks with repeated
layers, with residency (weights preloaded, activations kept) on and off, sparse engines and
masks included; across calls a shared LayerCache changes nothing but the work done."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from conftest import arch_dict, make_layer
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import parse_arch, simulate, simulation
from simulator.memo import LayerCache, LayerKeys, MaskHashes, layer_key
from simulator.workload.layer import Layer, Operand, Workload

FAST = settings(max_examples=40, deadline=None)


def same(a, b) -> None:
    pd.testing.assert_frame_equal(a.layers, b.layers, check_exact=True)
    pd.testing.assert_frame_equal(a.actions, b.actions, check_exact=True)
    pd.testing.assert_frame_equal(a.energy, b.energy, check_exact=True)
    assert a.totals == b.totals
    assert a.preload == b.preload


@st.composite
def networks(draw):
    """A network of a few distinct GEMMs and vector layers, each repeated, in random order."""
    kinds = []
    for _ in range(draw(st.integers(1, 3))):
        M, K, N = (draw(st.integers(1, 40)) for _ in range(3))
        dens = draw(st.sampled_from([1.0, 1.0, 0.5]))
        kinds.append(("gemm", M, K, N, dens))
    if draw(st.booleans()):
        kinds.append(("vector", draw(st.integers(1, 500)), 0, 0, 1.0))
    order = draw(st.lists(st.integers(0, len(kinds) - 1), min_size=2, max_size=10))
    layers = []
    for i, k in enumerate(order):
        kind, M, K, N, dens = kinds[k]
        if kind == "vector":
            layers.append(Layer(f"v{i}", "add", "vector", ifmap_elements=M, ofmap_elements=M,
                                vector_ops=M))
        else:
            layers.append(make_layer(M, K, N, name=f"g{i}",
                                     weight=Operand(density=dens)))
    return Workload("net", tuple(layers))


@st.composite
def archs(draw):
    rows, cols = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    sparsity = draw(st.sampled_from([None, {"weights": "skip", "activations": "none"}]))
    over = {"residency": {"weights": draw(st.sampled_from(["stream", "preload"])),
                          "activations": draw(st.sampled_from(["dram", "keep"]))},
            "mapping": {"search": draw(st.booleans())}}
    if sparsity is not None:
        over["pe_array"] = {"sparsity": sparsity}
    return parse_arch(arch_dict(rows, cols, draw(st.sampled_from(["os", "ws", "is"])),
                                size_kb=draw(st.sampled_from([0.25, 1.0, 64.0])),
                                dram_bandwidth=draw(st.sampled_from([2.0, 16.0])),
                                latency_ns=draw(st.sampled_from([0.0, 20.0])),
                                channels=draw(st.sampled_from([1, 2])), **over))


@FAST
@given(archs(), networks())
def test_memo_equals_the_long_way(arch, wl):
    same(simulate(arch, wl), simulate(arch, wl, memo=False))


@FAST
@given(archs(), networks())
def test_shared_cache_across_calls_changes_nothing(arch, wl):
    cache = LayerCache()
    first = simulate(arch, wl, cache=cache)
    hits = cache.hits
    again = simulate(arch, wl, cache=cache)
    same(first, again)
    same(again, simulate(arch, wl, memo=False))
    assert cache.hits > hits  # the second call reused the first call's layers


def test_repeated_layers_run_once_and_keep_their_own_rows(tiny_arch):
    # 32 identical blocks of 3 layers: 3 distinct outcomes, 96 rows under their own names
    block = [make_layer(64, 32, 48, name="q"), make_layer(64, 48, 32, name="o"),
             Layer("add", "add", "vector", ifmap_elements=2048, ofmap_elements=2048,
                   vector_ops=2048)]
    layers = tuple(dataclasses.replace(lay, name=f"{lay.name}{b}")
                   for b in range(32) for lay in block)
    cache = LayerCache()
    rep = simulate(tiny_arch(8, 8, "ws", dram_bandwidth=8.0), Workload("blocks", layers),
                   cache=cache)
    assert len(rep.layers) == 96 and list(rep.layers["layer"][:3]) == ["q0", "o0", "add0"]
    assert len(cache) == 3 and cache.misses == 3 and cache.hits == 93
    assert rep.layers["total_cycles"].nunique() <= 3


def test_masks_are_keyed_by_content_and_drawn_masks_by_name(tiny_arch):
    rng = np.random.default_rng(1)
    m1 = rng.random((48, 32)) < 0.3  # (out_features, in_features)
    m2 = m1.copy()
    m3 = ~m1
    lin = make_layer(64, 32, 48, name="a", weight=Operand(density=0.3, mask=m1))
    h = MaskHashes()
    k1 = layer_key(lin, h)
    assert k1 == layer_key(dataclasses.replace(lin, name="b",
                                               weight=Operand(density=0.3, mask=m2)), h)
    assert k1 != layer_key(dataclasses.replace(lin, weight=Operand(density=0.3, mask=m3)), h)
    # a density without a mask draws the mask from the layer's name: names enter the key
    drawn = make_layer(64, 32, 48, name="a", weight=Operand(density=0.3))
    assert layer_key(drawn) != layer_key(dataclasses.replace(drawn, name="b"))
    arch = tiny_arch(8, 8, "os", pe_array={"sparsity": {"weights": "skip"}})
    wl = Workload("w", (drawn, dataclasses.replace(drawn, name="b")))
    same(simulate(arch, wl), simulate(arch, wl, memo=False))


def test_cache_is_bounded():
    cache = LayerCache(max_entries=2)
    arch = parse_arch(arch_dict(4, 4, "ws"))
    wl = Workload("w", tuple(make_layer(8, 8, n, name=f"l{n}") for n in (3, 4, 5, 6)))
    simulate(arch, wl, cache=cache)
    assert len(cache) == 2


def test_the_context_key_covers_every_field_of_a_buffer_view() -> None:
    """The key spells a BufferView's fields out (no astuple copy): a new field must join it."""
    from simulator.mapping.options import BufferView, MappingContext, MappingParams
    from simulator.memo import context_key

    view = BufferView(100.0, 50.0, 64.0, 8)
    keys = {context_key(MappingContext(params=MappingParams(), buffers={"ifmap": view}))}
    for f in dataclasses.fields(BufferView):
        changed = dataclasses.replace(view, **{f.name: getattr(view, f.name) + 1})
        keys.add(context_key(MappingContext(params=MappingParams(), buffers={"ifmap": changed})))
    assert len(keys) == 1 + len(dataclasses.fields(BufferView))


@settings(max_examples=15, deadline=None)
@given(archs(), networks(), st.sampled_from([0, 1, 20]))
def test_a_bounded_map_ahead_changes_nothing(arch, wl, budget):
    """With the tiles held ahead bounded (``AHEAD_TILES``: the layers past it map themselves
    when they run), every row is still the long way's."""
    real = simulation.AHEAD_TILES, simulation._AHEAD_CHUNK
    simulation.AHEAD_TILES, simulation._AHEAD_CHUNK = budget, 1  # one layer per call
    try:
        bounded = simulate(arch, wl)
    finally:
        simulation.AHEAD_TILES, simulation._AHEAD_CHUNK = real
    same(bounded, simulate(arch, wl, memo=False))


def test_layer_keys_are_layer_key_per_object_and_name_rule() -> None:
    """The per-call cache of layer keys gives layer_key's value, for each object and each
    ``by_name`` (a cached key without the name is never served for one with it)."""
    keys, hashes = LayerKeys(), MaskHashes()
    a, b = make_layer(8, 4, 2, name="a"), make_layer(8, 4, 2, name="b")
    assert keys.of(a, hashes, False) == layer_key(a) == layer_key(b) == keys.of(b, hashes, False)
    assert keys.of(a, hashes, True) == layer_key(a, by_name=True) != keys.of(b, hashes, True)
    assert keys.of(a, hashes, False) == layer_key(a)
