"""The SimPy replay (simulator/timeline.py) is exact: on 1,000 random schedules (up to 40
tiles each), built so that events fall on the same cycle often (small integer cycles and
bytes, bandwidths that divide them, zero latency), every event time of every tile equals the
SimPy run's, float for float, and so do the layer's total, stall and DRAM-busy cycles.
Read-after-write dependencies, single and double buffering, one to four channels, infinite
bandwidth and latency are all drawn."""

from __future__ import annotations

import numpy as np
from conftest import make_dram as dram
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator.engine as engine
from simulator.mapping.schedule import TileSchedule
from simulator.timeline import replay

MANY = settings(max_examples=1000, deadline=None)
SOME = settings(max_examples=200, deadline=None)


@st.composite
def schedules(draw):
    n = draw(st.integers(1, 40))
    small = st.sampled_from([0, 0, 1, 2, 4, 8, 16])  # ties: multiples of one another
    rows = []
    for _ in range(n):
        busy = draw(st.sampled_from([0, 1, 2, 4, 8, 16, 3, 5]))
        ld = [draw(small) for _ in range(3)]
        store = draw(small)
        rows.append([busy, *ld, store, draw(st.integers(0, sum(ld))), draw(st.integers(0, busy)),
                     draw(st.integers(0, store))])
    a = np.array(rows, dtype=np.int64)
    after = np.full(n, -1, dtype=np.int64)
    for t in range(1, n):  # a psum read-after-write on an earlier tile, sometimes
        if draw(st.integers(0, 3)) == 0:
            after[t] = draw(st.integers(0, t - 1))
    t = TileSchedule(busy_cycles=a[:, 0], ifmap_load_bytes=a[:, 1], filter_load_bytes=a[:, 2],
                     psum_load_bytes=np.where(after >= 0, a[:, 3], 0), store_bytes=a[:, 4],
                     head_load_bytes=a[:, 5], tail_cycles=a[:, 6], store_tail_bytes=a[:, 7],
                     psum_after=after)
    # GB/s at 1 GHz = bytes per cycle; 2.0 and 4.0 divide the byte counts, 0.7 does not
    d = dram(draw(st.sampled_from([1.0, 2.0, 4.0, 0.7, 3.0, float("inf")])),
             draw(st.sampled_from([0.0, 0.0, 1.0, 2.0, 7.0])), draw(st.sampled_from([1, 2, 4])))
    slots = draw(st.sampled_from([(1, 1), (2, 2), (2, 1), (1, 2), (3, 2)]))
    return t, d, slots


@MANY
@given(schedules())
def test_replay_equals_simpy_event_for_event(case):
    t, d, (i, o) = case
    ref_end, ref = engine._simulate(t, d, i, o, None, record=True, reference=True)
    end, times = replay(t, d.channels, d.bytes_per_cycle, d.latency_cycles, i, o, record=True)
    assert end == ref_end
    assert times == ref  # every tile's head/rest/body/tail/load/start/end/drain time


@SOME
@given(schedules())
def test_engine_timing_equals_simpy(case):
    t, d, (i, o) = case
    fast = engine.run_tiles(t, d, in_slots=i, out_slots=o, runs=False)
    slow = engine.run_tiles(t, d, in_slots=i, out_slots=o, runs=False, reference=True)
    assert fast == slow


def test_a_hand_worked_pipeline():
    # two tiles, 8 bytes each at 2 B/cycle (4 cycles per load), 10 busy cycles, no stores,
    # no latency, double buffers: loads 0-4 and 4-8, compute 4-14 and 14-24
    t = TileSchedule(busy_cycles=np.array([10, 10]), ifmap_load_bytes=np.array([8, 8]),
                     filter_load_bytes=np.array([0, 0]), psum_load_bytes=np.array([0, 0]),
                     store_bytes=np.array([0, 0]))
    end, times = replay(t, 1, 2.0, 0, 2, 2, record=True)
    assert end == 24.0
    assert times["rest"] == [4.0, 8.0] and times["start"] == [4.0, 14.0]
