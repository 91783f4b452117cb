"""Fold classes (simulator/mapping/fold_classes.py) equal every fold: on random layers,
arrays, dataflows, buffers and bandwidths, the mapping built from classes has the very tiles
(every array, element for element), cycles, counts and engine timing of the one built fold
by fold (``MappingContext(fold_classes=False)``, the long way)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from conftest import arch_dict, make_layer
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import parse_arch
from simulator.arch.accelerator import build
from simulator.cost.table_file import table_for
from simulator.engine import run_tiles
from simulator.mapping.options import BufferView, MappingContext
from simulator.mapping.systolic import map_planned_all, plan_gemm
from simulator.simulation import map_layer, mapping_costs
from simulator.workload.layer import Operand

CASES = settings(max_examples=150, deadline=None)


@st.composite
def cases(draw):
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    df = draw(st.sampled_from(["os", "ws", "is"]))
    arch = parse_arch(arch_dict(
        rows, cols, df, size_kb=draw(st.sampled_from([0.125, 0.25, 1.0, 16.0])),
        sram_bandwidth=draw(st.sampled_from([1.0, 4.0, math.inf])),
        dram_bandwidth=draw(st.sampled_from([1.0, 8.0, math.inf])),
        latency_ns=draw(st.sampled_from([0.0, 30.0])), channels=draw(st.sampled_from([1, 3])),
        bits=draw(st.sampled_from([4, 8, 16])),
        mapping={"search": draw(st.booleans()),
                 "objective": draw(st.sampled_from(["latency", "energy", "edp"]))}))
    M, K, N = (draw(st.integers(1, 90)) for _ in range(3))
    layer = make_layer(M, K, N, count=draw(st.sampled_from([1, 1, 3])),
                       weight=Operand(scale_bits=draw(st.sampled_from([0.0, 0.15625]))))
    return arch, layer


def both(arch, layer):
    acc = build(arch)
    # the search priced as simulate prices it (its energy objectives pick nests with many
    # units per tile, whose classes run along the within-tile loops)
    ctx = MappingContext(params=arch.mapping, costs=mapping_costs(table_for(arch, acc), acc))
    fast = map_layer(layer, acc, 0, ctx)
    slow = map_layer(layer, acc, 0, dataclasses.replace(ctx, fold_classes=False))
    return acc, fast, slow


def assert_same_mapping(acc, fast, slow) -> None:
    for f in dataclasses.fields(slow.tiles):
        np.testing.assert_array_equal(getattr(fast.tiles, f.name), getattr(slow.tiles, f.name),
                                      err_msg=f.name)
    assert dict(fast.counts) == dict(slow.counts)
    assert (fast.compute_cycles, fast.folds, fast.resident, fast.mapping_efficiency) == \
        (slow.compute_cycles, slow.folds, slow.resident, slow.mapping_efficiency)
    slots = {"in_slots": min(acc.buffers["ifmap"].slots, acc.buffers["filter"].slots),
             "out_slots": acc.buffers["ofmap"].slots}
    assert run_tiles(fast.tiles, acc.dram, **slots) == run_tiles(slow.tiles, acc.dram, **slots)


@CASES
@given(cases())
def test_classes_equal_every_fold(case):
    arch, layer = case
    assert_same_mapping(*both(arch, layer))


def test_a_decode_gemv_is_a_few_classes(tiny_arch):
    # M = 1 token, K = 512, N = 64 on a 4x4 ws array with tiny buffers: 128 x 16 = 2048 folds
    # in runs along the innermost K loop; the classes hold 3 per run (first, middle, last)
    arch = tiny_arch(4, 4, "ws", size_kb=0.125, dram_bandwidth=4.0)
    layer = make_layer(1, 512, 64)
    acc, fast, slow = both(arch, layer)
    assert slow.folds == fast.folds == 128 * 16
    assert_same_mapping(acc, fast, slow)


def test_spilled_partial_sums_keep_their_order(repo):
    # A LLaMA-7B q_proj (2048 tokens x 4096 x 4096, fp16) on an 8x8 ws array with the LLM
    # accelerator's 16 MiB of SRAM: the search tiles K (1024 per tile) outside the ofmap's
    # level, so the first fold of every K tile reads back the partial sums the last fold of
    # the tile before wrote. Classes run along the within-tile K loop, those folds stay
    # single, and every read-after-write lands where the long way puts it.
    from simulator.files import read_yaml

    raw = read_yaml(repo / "arch_configs" / "llm_128x128_ws.yaml")
    raw["pe_array"] = {**raw["pe_array"], "rows": 8, "cols": 8}
    layer = make_layer(2048, 4096, 4096, weight=Operand(bits=16), activation=Operand(bits=16))
    acc, fast, slow = both(parse_arch(raw), layer)
    assert (fast.tiles.psum_after >= 0).sum() > 100
    assert_same_mapping(acc, fast, slow)


@settings(max_examples=60, deadline=None)
@given(cases(), st.lists(st.tuples(st.integers(1, 90), st.integers(1, 90), st.integers(1, 90),
                                   st.sampled_from([1, 1, 3]), st.booleans(), st.booleans(),
                                   st.sampled_from([1.0, 0.5, 0.05])),
                         min_size=1, max_size=5), st.sampled_from([1, 400, 1 << 18]))
def test_many_layers_at_once_equal_one_at_a_time(case, shapes, max_folds):
    """map_planned_all (the tiles of every layer's fold classes built in one call, each with
    its own buffer room, residency and groups) equals mapping each layer alone."""
    arch, _ = case
    acc = build(arch)
    base = MappingContext(params=arch.mapping, memo={},
                          costs=mapping_costs(table_for(arch, acc), acc))
    plans, alone = [], []
    for i, (M, K, N, count, resident, keep, room) in enumerate(shapes):
        layer = make_layer(M, K, N, count=count, name=f"g{i}")
        views = {b: BufferView(buf.capacity_bytes * room, buf.capacity_bytes * room / buf.slots,
                               buf.bits_per_cycle, buf.params.word_bits)
                 for b, buf in acc.buffers.items()}
        ctx = dataclasses.replace(base, resident=frozenset({"ifmap"} if resident else ()),
                                  keep_output=keep, buffers=views)
        plans.append(plan_gemm(layer, acc.pe_array, acc.buffers, 0, ctx))
        alone.append(acc.pe_array.map_layer(layer, acc.buffers, 0, ctx))
    together = map_planned_all(plans, max_folds)  # in calls of at most max_folds folds
    assert len(together) == len(alone)
    for fast, slow in zip(together, alone, strict=True):
        assert_same_mapping(acc, fast, slow)
