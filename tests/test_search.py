"""The tiling search (simulator/mapping/search.py): objectives, determinism, its memo, and
the closed forms it ranks candidates with."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from conftest import REPO, arch_dict, make_layer
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Operand, load_arch, load_workload, parse_arch, simulate
from simulator.arch.accelerator import build
from simulator.cost.table_file import table_for
from simulator.mapping.candidates import candidate_arrays, tile_choices
from simulator.mapping.dataflows import DATAFLOWS
from simulator.mapping.nest import (
    DIM_INDEX,
    DIMS,
    ORDERS,
    Grid,
    Nest,
    OperandBytes,
    Storage,
    fold_table,
    traffic,
)
from simulator.mapping.options import MappingContext, MappingParams
from simulator.mapping.search import choose_all
from simulator.mapping.systolic import gemm_problem, systolic_grid
from simulator.simulation import map_layer, mapping_costs


def _mapped(arch: dict, layer, objective: str):
    a = parse_arch({**arch, "mapping": {"objective": objective}})
    acc = build(a)
    ctx = MappingContext(params=a.mapping, costs=mapping_costs(table_for(a, acc), acc))
    return map_layer(layer, acc, 0, ctx)


def test_objective_decides_between_spilling_and_tiling():
    # The 2-fold layer of tests/test_traffic.py (ws 4x4, M=64, K=8, N=4, 0.5 KB single-buffered
    # ofmap SRAM) at unlimited DRAM bandwidth: keeping the whole stream (SCALE-Sim's 147
    # cycles) spills half the partial sums (512 B read, 768 B written) for free in time,
    # while tiling M = 32 moves none at 167 cycles. Latency takes the first, energy the second.
    arch = arch_dict(4, 4, "ws", buffers={"ofmap": {"size_kb": 0.5, "double_buffered": False}})
    layer = make_layer(64, 8, 4)
    fast = _mapped(arch, layer, "latency")
    lean = _mapped(arch, layer, "energy")
    assert fast.compute_cycles == 147 and fast.tile_dims["M"] == 64
    assert int(fast.tiles.psum_load_bytes.sum()) == 512
    assert lean.compute_cycles == 167 and lean.tile_dims["M"] == 32
    assert int(lean.tiles.psum_load_bytes.sum()) == 0


def test_fixed_order_is_one_candidate_and_first_of_the_search():
    acc = build(parse_arch(arch_dict(8, 8, "os", mapping={"search": False})))
    m = map_layer(make_layer(100, 70, 30), acc)
    assert m.candidates == 1 and m.loop_order == "M>N>K"
    assert m.tile_dims == {"M": 8, "K": 70, "N": 8}  # one fold per tile, whole K streamed
    searched = map_layer(make_layer(100, 70, 30), build(parse_arch(arch_dict(8, 8, "os"))))
    assert searched.candidates > 100


def test_tile_choices_are_a_geometric_grid():
    # ceil(100 / j) for j = 1, 2, 4, ..., 128 (capped at 100), and 1
    assert tile_choices(100).tolist() == [100, 50, 25, 13, 7, 4, 2, 1]
    assert tile_choices(1).tolist() == [1]


def test_memo_equals_the_long_way():
    # ResNet-18 maps each distinct GEMM once per simulate() call; with the memo off every
    # layer is searched again: the reports are identical.
    wl = load_workload(REPO / "workloads" / "networks" / "resnet18.yaml")
    arch = load_arch(REPO / "arch_configs" / "scalesim_32x32_ws.yaml")
    memo = simulate(arch, wl)
    import simulator.simulation as sim

    original = sim.MappingContext

    class NoMemo(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs["memo"] = None
            super().__init__(*args, **kwargs)

    sim.MappingContext = NoMemo  # type: ignore[misc]
    try:
        plain = simulate(arch, wl)
    finally:
        sim.MappingContext = original  # type: ignore[misc]
    assert memo.layers.equals(plain.layers)
    assert memo.actions.equals(plain.actions)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300),
       st.sampled_from(["os", "ws", "is"]), st.sampled_from([1.0, 4.0, 16.0]),
       st.sampled_from([2.0, 8.0]))
def test_latency_estimate_never_worse_with_bigger_buffers(m, k, n, df, kb, factor):
    # Every candidate of the smaller buffers is a candidate of the bigger ones with no more
    # traffic (a footprint that fitted still fits; a partly kept one keeps more), so the best
    # latency estimate cannot rise (energy can: bigger SRAMs cost more per access).
    def estimate(size_kb: float) -> float:
        a = parse_arch(arch_dict(8, 8, df, size_kb=size_kb, dram_bandwidth=4.0,
                                 mapping={"objective": "latency"}))
        acc = build(a)
        ctx = MappingContext(params=a.mapping, costs=mapping_costs(table_for(a, acc), acc))
        layer = make_layer(m, k, n)
        problem = gemm_problem(layer, acc.pe_array, acc.buffers, 0, ctx)
        return choose_all([problem])[0].latency_cycles

    assert estimate(kb * factor) <= estimate(kb) * (1 + 1e-9)


def test_traffic_closed_form_equals_the_folds():
    # The search's per-candidate traffic (closed form) equals the sum over the folds of the
    # same nest (the long way), for every order and a few tile sizes, on a ws 4x4 grid.
    size = {"M": 37, "K": 23, "N": 11}
    grid: Grid = systolic_grid(DATAFLOWS["ws"], 4, 4, size)
    nbytes = {"ifmap": OperandBytes(1.0, 1.0), "filter": OperandBytes(0.5, 0.5),
              "ofmap": OperandBytes(4.0, 4.0, 1.0)}
    sizes = {"ifmap": 37 * 23, "filter": 23 * 11, "ofmap": 37 * 11}
    cap = {"ifmap": 300.0, "filter": 90.0, "ofmap": 400.0}
    half = {k: v / 2 for k, v in cap.items()}
    for order in ORDERS:
        for per in ({"M": 10, "K": 2, "N": 1}, {"M": 37, "K": 1, "N": 3},
                    {"M": 5, "K": 6, "N": 2}):
            orders = np.array([[DIM_INDEX[d] for d in order]])
            tiles = np.array([[per[d] for d in DIMS]])
            tr = traffic(grid, candidate_arrays(grid, orders, tiles), sizes, nbytes, cap, half)
            storage = {op: Storage(int(tr.levels[op][0]), float(tr.held[op][0]))
                       for op in tr.levels}
            ft = fold_table(grid, Nest(order, per), storage, nbytes)
            for key in ("ifmap", "filter", "psum"):
                assert abs(ft.loads[key].sum() - tr.reads[key][0]) < 1e-6, (order, per, key)
            assert abs(ft.stores.sum() - tr.writes[0]) < 1e-6, (order, per)
            assert abs(ft.final_bytes.sum() - sizes["ofmap"] * 1.0) < 1e-6


def test_search_is_deterministic():
    arch = load_arch(REPO / "arch_configs" / "edge_8x8.yaml")
    wl = load_workload(REPO / "workloads" / "networks" / "lenet5.yaml")
    a, b = simulate(arch, wl), simulate(arch, wl)
    cols = ["loop_order", "tile_M", "tile_K", "tile_N", "total_cycles", "dram_read_bytes"]
    assert a.layers[cols].equals(b.layers[cols])
    fixed = simulate(dataclasses.replace(arch, mapping=MappingParams(search=False)), wl)
    assert (fixed.layers.loc[fixed.layers["unit"] == "pe_array", "loop_order"] == "M>N>K").all()


def test_loop_positions_are_the_argsort_of_the_orders() -> None:
    """candidate_arrays inverts each order by scattering, as ``argsort + 1`` would."""
    from simulator.mapping.systolic import systolic_grid

    grid = systolic_grid(DATAFLOWS["ws"], 4, 4, {"M": 9, "K": 7, "N": 5})
    orders = np.array([[DIM_INDEX[d] for d in o] for o in ORDERS] * 3)
    per = np.ones_like(orders)
    assert (candidate_arrays(grid, orders, per)["pos"] == np.argsort(orders, axis=1) + 1).all()


def _same(a: object, b: object) -> bool:
    """Deep equality of mapping results: dataclasses, mappings, sequences, arrays (exact)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True)))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and (a == b or (a != a and b != b))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.integers(1, 200), st.integers(1, 200)),
                min_size=1, max_size=4),
       st.sampled_from(["os", "ws", "is"]), st.integers(2, 16), st.integers(2, 16),
       st.lists(st.tuples(st.sampled_from([0.25, 2.0, 64.0]), st.sampled_from([1.0, 8.0])),
                min_size=2, max_size=3))
def test_shared_candidate_geometry_equals_the_long_way(shapes, df, rows, cols, archs) -> None:
    """Sweep-like: arrays of one shape and dataflow under several buffer sizes and DRAM
    bandwidths (so different prices, capacities and choices) share the search's candidate
    geometry (``MappingContext.geometry``); every mapping equals the one derived afresh."""
    from simulator.mapping.options import SharedMemo

    shared = SharedMemo()
    for kb, bw in archs:
        a = parse_arch(arch_dict(rows, cols, df, size_kb=kb, dram_bandwidth=bw))
        acc = build(a)
        costs = mapping_costs(table_for(a, acc), acc)
        for M, K, N in shapes:
            layer = make_layer(M, K, N)
            fast = map_layer(layer, acc, 0, MappingContext(params=a.mapping, costs=costs,
                                                           geometry=shared))
            slow = map_layer(layer, acc, 0, MappingContext(params=a.mapping, costs=costs))
            assert _same(fast, slow)
    assert shared.hits >= (len(archs) - 1) * len(set(shapes))


def _class_key(order: np.ndarray, per: np.ndarray, trivial: np.ndarray) -> tuple[object, ...]:
    return (tuple(per.tolist()), tuple(int(j) for j in order if not trivial[j]))


def test_distinct_candidates_are_the_first_of_each_class() -> None:
    """The pruned enumeration, checked against the whole one by its definition: a candidate is
    kept iff no earlier candidate has its tile sizes and the same order of non-trivial loops
    (trivial: one tile spans the dimension), and the kept ones stay in enumeration order."""
    from simulator.mapping.candidates import _candidates, default_nest

    for df, shape in (("ws", {"M": 300, "K": 7, "N": 64}), ("os", {"M": 5, "K": 200, "N": 3}),
                      ("is", {"M": 1, "K": 1, "N": 1}), ("ws", {"M": 64, "K": 64, "N": 64})):
        grid = systolic_grid(DATAFLOWS[df], 8, 8, shape)
        first = default_nest(grid, DATAFLOWS[df].outer, DATAFLOWS[df].inner)
        all_o, all_t, total, all_mesh, all_of = _candidates(grid, first, True, distinct=False)
        some_o, some_t, total2, mesh, mesh_of = _candidates(grid, first, True)
        # each candidate's tile sizes are its mesh row's; the mesh is row 0 (the fixed
        # order's sizes) and the distinct sizes of the rest, each used
        for t, m, of in ((all_t, all_mesh, all_of), (some_t, mesh, mesh_of)):
            assert (m[of] == t).all()
            assert (m[0] == t[0]).all() and len(np.unique(m[1:], axis=0)) == len(m) - 1
            assert sorted(set(of.tolist())) == list(range(len(m)))
        assert total == total2 == len(all_o)
        trivial = candidate_arrays(grid, all_o, all_t)["trivial"]
        seen: set[tuple[object, ...]] = set()
        expected = []
        for i in range(len(all_o)):
            key = _class_key(all_o[i], all_t[i], trivial[i])
            if i == 0 or key not in seen:
                expected.append((tuple(all_o[i]), tuple(all_t[i])))
            if i > 0:
                seen.add(key)
        # the fixed order (index 0) is kept, and so is the first of its class in the mesh
        got = list(zip(map(tuple, some_o), map(tuple, some_t), strict=True))
        assert [(tuple(map(int, o)), tuple(map(int, t))) for o, t in got] == [
            (tuple(map(int, o)), tuple(map(int, t))) for o, t in expected]
        assert len(some_o) < len(all_o)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.integers(1, 400), st.integers(1, 3),
       st.sampled_from(["os", "ws", "is"]), st.integers(1, 24), st.integers(1, 24),
       st.sampled_from([0.125, 0.5, 4.0, 64.0, 1024.0]), st.sampled_from([0.5, 8.0, math.inf]),
       st.sampled_from(["latency", "energy", "edp"]), st.booleans(),
       st.sampled_from([frozenset(), frozenset({"filter"}), frozenset({"ifmap"})]),
       st.sampled_from([None, "skip", "gate"]))
def test_distinct_candidates_choose_what_the_whole_enumeration_does(
        m, k, n, count, df, rows, cols, kb, bw, objective, db, resident, weights) -> None:
    """The search over one candidate per class (``distinct_candidates``, the default) maps
    every layer exactly as the search over the whole enumeration: same nest, storage,
    estimate, folds, tiles and counts (deep equality), on random GEMMs, arrays, buffers,
    DRAM bandwidths, objectives, resident operands and weight sparsity."""
    over: dict[str, object] = {"mapping": {"objective": objective}}
    if weights is not None:
        over["pe_array"] = {"sparsity": {"weights": weights}}
    a = parse_arch(arch_dict(rows, cols, df, size_kb=kb, dram_bandwidth=bw, latency_ns=20,
                             double_buffered=db, **over))
    acc = build(a)
    costs = mapping_costs(table_for(a, acc), acc)
    layer = make_layer(m, k, n, count=count,
                       **({} if weights is None else {"weight": Operand(density=0.3)}))
    slow = map_layer(layer, acc, 0, MappingContext(params=a.mapping, costs=costs,
                                                   resident=resident,
                                                   distinct_candidates=False))
    for bound_above in (0, 4096):  # the bound always, and the default
        fast = map_layer(layer, acc, 0, MappingContext(params=a.mapping, costs=costs,
                                                       resident=resident,
                                                       bound_above=bound_above))
        assert _same(fast, slow)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 24), st.integers(5, 20), st.sampled_from([1, 3, 5]),
       st.integers(1, 2), st.sampled_from([1, 2]), st.integers(2, 14), st.integers(2, 14),
       st.sampled_from([0.5, 8.0, 108.0]), st.sampled_from(["latency", "energy", "edp"]))
def test_distinct_candidates_equal_the_whole_enumeration_row_stationary(
        cin, cout, hw, kernel, stride, batch, rows, cols, kb, objective) -> None:
    """The same on the row-stationary dataflow (its own grid of passes and blocks)."""
    from simulator import parse_network

    wl = parse_network({"name": "n", "batch_size": batch, "layers": [
        {"name": "c", "op": "conv2d", "in_channels": cin, "out_channels": cout, "in_h": hw,
         "in_w": hw, "kernel": kernel, "stride": stride}]})
    a = parse_arch(arch_dict(rows, cols, "rs", bits=16, size_kb=kb, dram_bandwidth=1.6,
                             mapping={"objective": objective}))
    acc = build(a)
    costs = mapping_costs(table_for(a, acc), acc)
    layer = wl.layers[0]
    slow = map_layer(layer, acc, 0, MappingContext(params=a.mapping, costs=costs,
                                                   distinct_candidates=False))
    for bound_above in (0, 4096):
        fast = map_layer(layer, acc, 0, MappingContext(params=a.mapping, costs=costs,
                                                       bound_above=bound_above))
        assert _same(fast, slow)


@st.composite
def _problems(draw):
    """A search problem of a random GEMM on a random systolic array and context."""
    df = draw(st.sampled_from(["os", "ws", "is"]))
    a = parse_arch(arch_dict(
        draw(st.integers(1, 24)), draw(st.integers(1, 24)), df,
        size_kb=draw(st.sampled_from([0.125, 1.0, 64.0, 1024.0])),
        dram_bandwidth=draw(st.sampled_from([0.5, 4.0, 64.0, math.inf])),
        latency_ns=draw(st.sampled_from([0.0, 100.0])),
        sram_bandwidth=draw(st.sampled_from([2.0, math.inf])),
        double_buffered=draw(st.booleans()),
        mapping={"objective": draw(st.sampled_from(["latency", "energy", "edp"])),
                 "search": draw(st.sampled_from([True, True, False]))}))
    acc = build(a)
    ctx = MappingContext(params=a.mapping, costs=mapping_costs(table_for(a, acc), acc),
                         memo={}, resident=frozenset(draw(st.sets(st.sampled_from(
                             ["ifmap", "filter"]), max_size=1))),
                         keep_output=draw(st.booleans()),
                         bound_above=draw(st.sampled_from([0, 0, 4096])))
    layer = make_layer(*(draw(st.integers(1, 300)) for _ in range(3)))
    return gemm_problem(layer, acc.pe_array, acc.buffers, 0, ctx)


@settings(max_examples=60, deadline=None)
@given(st.lists(_problems(), min_size=1, max_size=6))
def test_searching_gemms_together_equals_one_at_a_time(problems) -> None:
    """choose_all over several GEMMs (stacked candidates, per-candidate numbers, per-problem
    segments, the bound's survivors) equals each searched alone, and each alone equals the
    whole enumeration with every candidate evaluated (distinct_candidates=False)."""
    fresh = [dataclasses.replace(p, ctx=dataclasses.replace(p.ctx, memo={})) for p in problems]
    together = choose_all(fresh)
    alone = [choose_all([dataclasses.replace(p, ctx=dataclasses.replace(p.ctx, memo={}))])[0]
             for p in problems]
    assert _same(together, alone)
    longway = [choose_all([dataclasses.replace(p, ctx=dataclasses.replace(
        p.ctx, memo={}, geometry=None, distinct_candidates=False))])[0] for p in problems]
    assert [(c.nest, c.storage, c.latency_cycles, c.energy_pj) for c in alone] == \
        [(c.nest, c.storage, c.latency_cycles, c.energy_pj) for c in longway]
    # grids seen before (a shared geometry memo, as a sweep's chunk has): all their level
    # arrays kept, each problem evaluated whole; the first pass fills the memo
    from simulator.mapping.options import SharedMemo

    shared = SharedMemo()
    for _ in range(2):
        again = choose_all([dataclasses.replace(p, ctx=dataclasses.replace(
            p.ctx, memo={}, geometry=shared)) for p in problems])
        assert _same(again, alone)


def test_the_bound_leaves_few_candidates_to_evaluate() -> None:
    """Not vacuous: on ResNet-50's 3x3 convolution of stage 3 on a 32x32 array most candidates
    are bounded out before their traffic is evaluated, and the choice is the whole one's."""
    from simulator.mapping import search

    a = parse_arch(arch_dict(32, 32, "ws", size_kb=512, dram_bandwidth=25.6))
    acc = build(a)
    ctx = MappingContext(params=a.mapping, costs=mapping_costs(table_for(a, acc), acc),
                         bound_above=0)
    layer = make_layer(196, 2304, 256)
    p = gemm_problem(layer, acc.pe_array, acc.buffers, 0, ctx)
    evaluated = []
    original = search.level_arrays

    def spy(orders, *rest):
        evaluated.append(len(orders))
        return original(orders, *rest)

    search.level_arrays = spy
    try:
        fast = choose_all([p])[0]
    finally:
        search.level_arrays = original
    slow = choose_all([dataclasses.replace(p, ctx=dataclasses.replace(
        ctx, distinct_candidates=False))])[0]
    assert fast == dataclasses.replace(slow, candidates=fast.candidates)
    assert sum(evaluated) < 0.5 * fast.candidates, (evaluated, fast.candidates)


@st.composite
def _grids(draw):
    """A grid of random axes: streamed (a size) or spatial (uneven unit extents, as
    row-stationary's blocks are), with random tile sizes per candidate."""
    from simulator.mapping.nest import Axis, Grid

    axes = {}
    stream = draw(st.sampled_from([None, *DIMS]))
    for d in DIMS:
        if d == stream:
            axes[d] = Axis(draw(st.integers(1, 500)))
        else:
            units = np.array(draw(st.lists(st.integers(1, 20), min_size=1, max_size=10)),
                             dtype=np.int64)
            axes[d] = Axis(int(units.sum()) + draw(st.sampled_from([0, 0, 3])), units)
    totals = [a.size if a.streamed else a.n_units for a in axes.values()]
    per = np.array([[draw(st.integers(1, t + 3)) for t in totals]
                    for _ in range(draw(st.integers(1, 6)))], dtype=np.int64)
    return Grid(axes, within=tuple(d for d in DIMS if d != stream)[:2]), per


@settings(max_examples=100, deadline=None)
@given(st.lists(_grids(), min_size=1, max_size=5))
def test_stacked_axis_arrays_equal_one_grid_at_a_time(grids) -> None:
    """The one-pass axis arrays of several grids are each grid's Axis methods' integers."""
    from simulator.mapping.candidates import axis_arrays, stacked_axis_arrays

    stacked = stacked_axis_arrays([g for g, _ in grids], [p for _, p in grids])
    lo = 0
    for grid, per in grids:
        alone = axis_arrays(grid, per)
        hi = lo + len(per)
        for k in range(4):
            assert (stacked[k][lo:hi] == alone[k]).all(), k
        assert (stacked[4][lo:hi] == alone[4]).all()
        lo = hi


def test_stacked_searches_are_cut_into_bounded_groups() -> None:
    """Memory stays bounded: the stacked pass takes at most _STACK candidates at once (a
    larger problem alone), in order."""
    from simulator.mapping.search import _STACK, _groups

    sizes = [_STACK // 2, _STACK // 2, 1, _STACK * 3, 5, _STACK - 5, 1]
    groups = _groups(list(range(len(sizes))), sizes)
    assert groups == [[0, 1], [2], [3], [4, 5], [6]]
    assert [i for g in groups for i in g] == list(range(len(sizes)))
    assert all(sum(sizes[i] for i in g) <= _STACK or len(g) == 1 for g in groups)
