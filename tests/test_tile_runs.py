"""Runs of repeated tiles (simulator/mapping/tile_runs.py, engine.run_runs) are exact: on
thousands of random schedules built from repeated blocks (with noise tiles, read-after-write
dependencies, multi-channel DRAM, latency, single and double buffering) the shortened run's
total, stall and DRAM-busy cycles equal the tile-by-tile SimPy run's, integer for integer."""

from __future__ import annotations

import numpy as np
from conftest import make_dram as dram
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator.engine as engine
from simulator.mapping.schedule import TileSchedule
from simulator.mapping.tile_runs import find_runs, shorten

MANY = settings(max_examples=1000, deadline=None)


@st.composite
def tile_rows(draw):
    busy = draw(st.integers(1, 400))
    ld = [draw(st.sampled_from([0, 0, 16, 100, 513, 2048])) for _ in range(3)]
    store = draw(st.sampled_from([0, 8, 300, 1024]))
    head = draw(st.integers(0, sum(ld)))
    tail = draw(st.integers(0, busy))
    return [busy, *ld, store, head, tail, draw(st.integers(0, store))]


@st.composite
def schedules(draw):
    kinds = draw(st.lists(tile_rows(), min_size=1, max_size=4))
    seq: list[list[int]] = []
    deps: list[int] = []
    for _ in range(draw(st.integers(1, 3))):
        q = draw(st.integers(1, 5))
        block = [draw(st.integers(0, len(kinds) - 1)) for _ in range(q)]
        blocks = draw(st.sampled_from([1, 3, 40, 90]))
        raw = draw(st.sampled_from([None, None, 0]))  # a psum read-after-write each block
        for _ in range(blocks):
            for j, k in enumerate(block):
                deps.append(len(seq) - q if raw is not None and j == 0 and len(seq) >= q
                            else -1)
                seq.append(kinds[k])
        if draw(st.booleans()):  # a noise tile between runs
            seq.append(draw(tile_rows()))
            deps.append(-1)
    a = np.array(seq, dtype=np.int64)
    after = np.array(deps, dtype=np.int64)
    psum = np.where(after >= 0, a[:, 3], 0)
    t = TileSchedule(busy_cycles=a[:, 0], ifmap_load_bytes=a[:, 1], filter_load_bytes=a[:, 2],
                     psum_load_bytes=psum, store_bytes=a[:, 4], head_load_bytes=a[:, 5],
                     tail_cycles=a[:, 6], store_tail_bytes=a[:, 7], psum_after=after)
    d = dram(draw(st.sampled_from([0.7, 4.0, 16.0, 25.6, float("inf")])),
             draw(st.sampled_from([0.0, 35.0, 100.0])), draw(st.sampled_from([1, 2, 4])))
    slots = draw(st.sampled_from([(1, 1), (2, 2), (2, 1), (1, 2)]))
    return t, d, slots


@MANY
@given(schedules())
def test_runs_equal_tile_by_tile(case):
    t, d, (i, o) = case
    fast = engine.run_tiles(t, d, in_slots=i, out_slots=o)
    slow = engine.run_tiles(t, d, in_slots=i, out_slots=o, runs=False)
    assert fast == slow  # total, busy (so stall) and DRAM-busy cycles


def test_a_long_run_is_simulated_around_its_ends_only(monkeypatch):
    # 3,000 identical tiles (compute 100 cycles, 1,000 bytes in, 500 out; 16 B/cycle over 2
    # channels, 100-cycle read latency, double buffers) and a shorter last one
    n = 3000
    busy = np.full(n, 100)
    busy[-1] = 7
    t = TileSchedule(busy_cycles=busy, ifmap_load_bytes=np.full(n, 1000),
                     filter_load_bytes=np.zeros(n, dtype=np.int64),
                     psum_load_bytes=np.zeros(n, dtype=np.int64), store_bytes=np.full(n, 500))
    d = dram(16.0, 100.0, 2)
    runs = find_runs(t, 3, 3, 6)
    assert len(runs) == 1 and runs[0].start == 0 and runs[0].period == 1
    short, _ = shorten(t, runs)
    assert short.n_tiles < 40
    simulated: list[int] = []
    real = engine._simulate

    def spy(tiles, *args, **kwargs):
        simulated.append(tiles.n_tiles)
        return real(tiles, *args, **kwargs)

    monkeypatch.setattr(engine, "_simulate", spy)
    fast = engine.run_tiles(t, d)
    assert simulated == [short.n_tiles]  # one short run, verified periodic
    monkeypatch.setattr(engine, "_simulate", real)
    slow = engine.run_tiles(t, d, runs=False)
    assert fast == slow
    # steady state (by hand): tile t+2's reads are issued when tile t's compute frees its
    # slot and arrive 100 (latency) + 1000 / 16 = 62.5 cycles later, then it computes 100:
    # each of the 2 slots turns over every 262.5 cycles, 131.25 cycles per tile (the 500
    # bytes of stores, 31.25 cycles, fit in the gaps: DRAM busy 1,500 / 16 = 93.75 per tile)
    assert 131.25 * (n - 1) <= slow.total_cycles <= 131.25 * n + 300
    assert slow.dram_busy_cycles == 1500 * n // 16
