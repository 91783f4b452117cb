"""SimPy timelines of the tile engine, on hand-built tile schedules.

A DRAM at 1000 MHz moves ``bandwidth_gb_per_s`` bytes per cycle over all its channels and its
latency in ns is in cycles. A transfer is striped evenly over the channels; a read stripe
waits the latency (without holding its channel: requests overlap) and then holds its channel
for ``bytes / channel bandwidth``; writes (posted) hold it only. Loads are issued as soon as a
buffer slot is free and queue on the channels in issue order. Every expected timeline below is
worked by hand in the comments; ``tiles(...)`` without streaming fields loads a tile entirely
before its compute and stores it entirely after.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.engine import run_tiles
from simulator.hardware.memory import Dram
from simulator.mapping.schedule import TileSchedule


def dram(bandwidth: float = math.inf, latency: float = 0.0, channels: int = 1) -> Dram:
    return Dram("dram", Dram.Params(bandwidth_gb_per_s=bandwidth, latency_ns=latency,
                                    channels=channels, energy_pj_per_bit=8.0),
                clock_mhz=1000)


def tiles(busy, loads=None, stores=None, *, filters=None, psums=None, head=None, tail=None,
          store_tail=None, after=None) -> TileSchedule:
    n = len(busy)

    def arr(values, fill=0):
        return np.asarray(values if values is not None else [fill] * n, dtype=np.int64)

    extra = {name: arr(v) for name, v in (("head_load_bytes", head), ("tail_cycles", tail),
                                          ("store_tail_bytes", store_tail),
                                          ("psum_after", after)) if v is not None}
    return TileSchedule(busy_cycles=arr(busy), ifmap_load_bytes=arr(loads),
                        filter_load_bytes=arr(filters), psum_load_bytes=arr(psums),
                        store_bytes=arr(stores), **extra)


def timeline(log) -> dict[tuple[int, str], int]:
    out = {}
    for tile, event, cycle in log:
        assert (tile, event) not in out, f"event {event} of tile {tile} logged twice"
        out[(tile, event)] = cycle
    return out


def test_double_buffer_overlaps_load_with_compute():
    # 3 tiles, 20 bytes each at 4 B/cycle = 5-cycle loads, 10-cycle computes, 2 input slots:
    #   load0 and load1 are issued at 0 and queue on the channel: 0-5, 5-10. compute0 5-15;
    #   load2 waits for tile 0's slot, freed at 15: 15-20; compute1 15-25; compute2 25-35.
    #   Total 5 + 3*10 = 35.
    log: list = []
    t = run_tiles(tiles([10, 10, 10], [20, 20, 20]), dram(4), in_slots=2, log=log)
    ev = timeline(log)
    assert ev[(1, "load_start")] == 0 and ev[(1, "head_end")] == 10
    assert ev[(1, "head_end")] < ev[(0, "compute_end")] == 15
    assert ev[(2, "load_start")] == 15
    assert [ev[(i, "compute_start")] for i in range(3)] == [5, 15, 25]
    assert t.total_cycles == 35
    assert t.busy_cycles == 30
    assert t.dram_busy_cycles == 15


def test_single_buffer_serialises_load_and_compute():
    # One input slot: load i+1 waits for compute i to free it; 3 * (5 + 10) = 45.
    log: list = []
    t = run_tiles(tiles([10, 10, 10], [20, 20, 20]), dram(4), in_slots=1, log=log)
    ev = timeline(log)
    for i in range(2):
        assert ev[(i + 1, "load_start")] >= ev[(i, "compute_end")]
    assert [ev[(i, "load_start")] for i in range(3)] == [0, 15, 30]
    assert t.total_cycles == 45


def test_slow_dram_stalls_compute():
    # Loads of 60 bytes at 4 B/cycle take 15 cycles, longer than the 10-cycle computes:
    #   load0 0-15, load1 queued 15-30; compute0 15-25, frees its slot: load2 issued at 25,
    #   queued behind load1: 30-45; compute1 waits for load1: 30-40 (5-cycle stall);
    #   compute2 45-55. Total 3*15 + 10 = 55.
    log: list = []
    t = run_tiles(tiles([10, 10, 10], [60, 60, 60]), dram(4), log=log)
    ev = timeline(log)
    for i in (1, 2):
        assert ev[(i, "compute_start")] == ev[(i, "head_end")]
        assert ev[(i, "compute_start")] > ev[(i - 1, "compute_end")]
    assert ev[(2, "load_start")] == 25
    assert ev[(1, "compute_start")] == 30
    assert t.total_cycles == 55


def test_unlimited_bandwidth_no_latency_is_sum_of_busy():
    busy = [7, 1, 13, 4]
    t = run_tiles(tiles(busy, [10**9] * 4, [10**9] * 4, filters=[5, 0, 5, 0], psums=[0, 3, 0, 3]),
                  dram(math.inf))
    assert t.total_cycles == sum(busy) == 25


def test_latency_with_infinite_bandwidth_adds_first_load_only():
    # Every read waits L = 5 cycles, every busy >= L, drains are free: load0 and load1 issued
    # at 0 both arrive at 5; compute0 5-12; load2 issued when tile 0 frees its slot at 12,
    # arrives at 17, exactly when compute1 (12-17) ends; compute2 17-26. Total 5 + 21 = 26.
    busy = [7, 5, 9]
    log: list = []
    t = run_tiles(tiles(busy, [1, 1, 1], [1, 1, 1]), dram(math.inf, latency=5), log=log)
    assert t.total_cycles == 5 + sum(busy) == 26
    assert timeline(log)[(2, "compute_start")] == 17


def test_requests_in_flight_overlap_their_latency():
    # L = 5 > busy = 3. Loads 0 and 1 are both in flight from 0 and arrive at 5; compute0 5-8
    # frees slot 0: load2 issued at 8, arrives at 13; compute1 8-11; compute2 13-16. Total 16
    # (one request at a time, as a channel held for its latency, would give 3*5 + 3 = 18).
    log: list = []
    t = run_tiles(tiles([3, 3, 3], [1, 1, 1]), dram(math.inf, latency=5), log=log)
    ev = timeline(log)
    assert ev[(0, "head_end")] == ev[(1, "head_end")] == 5
    assert ev[(2, "head_end")] == 13
    assert t.total_cycles == 16


def test_drain_contends_with_load_on_one_channel():
    # 1 B/cycle on 1 channel; two tiles: busy 2, loads 4 bytes (4 cycles), stores 4 bytes.
    #   load0 0-4, load1 queued 4-8; compute0 4-6; drain0 issued at 6 waits for the channel:
    #   8-12; compute1 8-10; drain1 queues behind drain0: 12-16. Total 16.
    log: list = []
    t = run_tiles(tiles([2, 2], [4, 4], [4, 4]), dram(1, channels=1), log=log)
    ev = timeline(log)
    assert ev[(0, "compute_end")] == 6
    assert ev[(0, "drain_end")] == 12  # 2 cycles queued behind load1
    assert ev[(1, "drain_end")] == 16
    assert t.total_cycles == 16
    assert t.dram_busy_cycles == 16  # four 4-cycle transfers


def test_twice_the_bandwidth_halves_the_contended_timeline():
    # As above at 2 B/cycle: load0 0-2, load1 2-4; compute0 2-4; drain0 at 4 (after load1)
    # 4-6; compute1 4-6; drain1 6-8. Total 8.
    t = run_tiles(tiles([2, 2], [4, 4], [4, 4]), dram(2, channels=1))
    assert t.total_cycles == 8


def test_channels_in_parallel_worked_on_paper():
    # 2 channels of 1 B/cycle (2 B/cycle in total), read latency 3.
    # tile 0: load 8 B, busy 2, store 6 B; tile 1: load 4 B, busy 6, store 2 B.
    #   load0: a 4-byte stripe on each channel; both wait 0-3, then transfer 3-7 in parallel.
    #   load1 (issued at 0, second slot): 2-byte stripes, latency 0-3, queued behind load0's
    #     stripes on their channels: 7-9.
    #   compute0 7-9; drain0: 3-byte stripes from 9 (channels free at 9): 9-12.
    #   compute1 9-15; drain1: 1-byte stripes 15-16. Total 16.
    # One channel of 2 B/cycle gives the same timeline (an even stripe per channel): the
    # channels add parallel queues, never a slower path for a single transfer.
    sched = tiles([2, 6], [8, 4], [6, 2])
    for channels, rate in ((2, 2.0), (1, 2.0)):
        log: list = []
        t = run_tiles(sched, dram(rate, latency=3, channels=channels), log=log)
        ev = timeline(log)
        assert ev[(0, "head_end")] == 7 and ev[(1, "head_end")] == 9, channels
        assert ev[(0, "drain_end")] == 12 and ev[(1, "compute_end")] == 15, channels
        assert t.total_cycles == 16, channels
        assert t.dram_busy_cycles == 4 + 2 + 3 + 1, channels  # per channel


def test_more_channels_at_equal_total_bandwidth_are_never_slower():
    # Gap 3 of issue 10: one transfer held one channel at bandwidth/channels, so 4 channels
    # took 4x per transfer. Now 1, 2, 4, 8 channels of 1 B/cycle in total time alike.
    sched = tiles([5, 40, 3, 9], [30, 7, 60, 11], [13, 8, 21, 2], psums=[0, 6, 0, 6])
    totals = [run_tiles(sched, dram(1, latency=7, channels=c)).total_cycles
              for c in (1, 2, 4, 8)]
    assert totals == [totals[0]] * 4


def test_single_output_slot_waits_for_drain():
    # As the one-channel case but one ofmap slot: compute1 (ready at 8) waits until drain0
    # frees the slot at 12: 12-14; drain1 14-18. Total 18.
    log: list = []
    t = run_tiles(tiles([2, 2], [4, 4], [4, 4]), dram(1), out_slots=1, log=log)
    ev = timeline(log)
    assert ev[(1, "compute_start")] == ev[(0, "drain_end")] == 12
    assert t.total_cycles == 18


def test_load_of_one_tile_moves_ifmap_filter_and_psums():
    # 3 + 5 + 2 = 10 bytes at 2 B/cycle after 1 cycle of latency: 1 + 5 = 6 cycles; compute 4;
    # drain 6 bytes at 2 B/cycle = 3. Total 6 + 4 + 3 = 13.
    t = run_tiles(tiles([4], [3], [6], filters=[5], psums=[2]), dram(2, latency=1))
    assert t.total_cycles == 13
    assert t.dram_busy_cycles == 5 + 3


def test_compute_starts_after_the_first_fold_of_a_tile():
    # One tile, 100 bytes of which its first fold needs 10 (head), busy 50 of which the last
    # 5 cycles (tail) need all the data. At 10 B/cycle: head 0-1, rest 1-10; compute 1-46,
    # the rest is in, tail 46-51. Total 51 (the whole tile before its compute: 10 + 50 = 60).
    log: list = []
    t = run_tiles(tiles([50], [100], head=[10], tail=[5]), dram(10), log=log)
    assert timeline(log)[(0, "compute_start")] == 1
    assert t.total_cycles == 51
    # At 1 B/cycle the data is late: head 0-10, rest 10-100; compute 10-55, waits for the
    # rest until 100, tail 100-105.
    assert run_tiles(tiles([50], [100], head=[10], tail=[5]), dram(1)).total_cycles == 105


def test_stores_leave_while_the_tile_computes():
    # Busy 20, stores 30 bytes of which the last fold's 5 leave after the compute, at 1 B/cycle:
    # the other 25 are issued at the start: 0-25; the last 5 at 20, queued behind: 25-30.
    # Total 30 (everything after the compute: 20 + 30 = 50).
    t = run_tiles(tiles([20], stores=[30], store_tail=[5]), dram(1))
    assert t.total_cycles == 30


def test_spilled_partial_sums_are_read_after_they_are_written():
    # Tile 0 (busy 2) spills 4 bytes of partial sums that tile 1 reads back (psum_after = 0),
    # at 1 B/cycle: compute0 0-2, drain0 2-6; load1 may only start at 6: 6-10; compute1 10-12.
    # Total 12. Without the dependency load1 would run 0-4 and tile 1 end by 8.
    log: list = []
    sched = tiles([2, 2], psums=[0, 4], stores=[4, 0], after=[-1, 0])
    t = run_tiles(sched, dram(1), log=log)
    ev = timeline(log)
    assert ev[(1, "load_start")] == ev[(0, "drain_end")] == 6
    assert t.total_cycles == 12
    free = run_tiles(tiles([2, 2], psums=[0, 4], stores=[4, 0]), dram(1))
    assert free.total_cycles == 8


@pytest.mark.parametrize("after", [[-1, 1], [1, -1], [-2, -1], [0, 0]])
def test_a_tile_waiting_on_itself_or_a_later_one_is_refused(after):
    """A dependency on the tile itself or a later one would leave the engine waiting
    forever; the schedule refuses it when built."""
    with pytest.raises(ValueError, match="psum_after must name an earlier tile"):
        tiles([2, 2], psums=[4, 4], stores=[4, 4], after=after)


def test_event_order_per_tile():
    log: list = []
    run_tiles(tiles([3, 1, 4, 1, 5], [9, 2, 6, 5, 3], [5, 8, 9, 7, 9]), dram(3, latency=2),
              log=log)
    ev = timeline(log)
    order = ["load_start", "head_end", "load_end", "compute_start", "compute_end",
             "drain_end"]
    assert len(ev) == 5 * len(order)
    for i in range(5):
        cycles = [ev[(i, name)] for name in order]
        assert cycles == sorted(cycles), i
        if i:
            assert ev[(i, "compute_start")] >= ev[(i - 1, "compute_end")]


@pytest.mark.parametrize("in_slots", [1, 2])
def test_compute_never_starts_before_its_load(in_slots):
    log: list = []
    run_tiles(tiles([1, 8, 2, 8], [40, 1, 40, 1], [3, 3, 3, 3]), dram(2, latency=3),
              in_slots=in_slots, log=log)
    ev = timeline(log)
    for i in range(4):
        assert ev[(i, "compute_start")] >= ev[(i, "head_end")]
        assert ev[(i, "compute_end")] >= ev[(i, "load_end")]
