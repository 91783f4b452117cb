"""SimPy timelines of the tile engine, on hand-built tile schedules.

A DRAM at 1000 MHz moves ``bandwidth_gb_per_s`` bytes per cycle (split evenly over its
channels) and its latency in ns is in cycles. Loads cost ``latency + ceil(bytes / per-channel
bandwidth)``, drains (posted writes) the bandwidth term only. Every expected timeline below is
worked by hand in the comments.
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


def tiles(busy, loads=None, stores=None, *, filters=None, psums=None) -> TileSchedule:
    n = len(busy)

    def arr(values):
        return np.asarray(values if values is not None else [0] * n, dtype=np.int64)

    return TileSchedule(busy_cycles=arr(busy), ifmap_load_bytes=arr(loads),
                        filter_load_bytes=arr(filters), psum_load_bytes=arr(psums),
                        store_bytes=arr(stores))


def timeline(log) -> dict[tuple[int, str], int]:
    out = {}
    for tile, event, cycle in log:
        assert (tile, event) not in out, f"event {event} of tile {tile} logged twice"
        out[(tile, event)] = cycle
    return out


def test_double_buffer_overlaps_load_with_compute():
    # 3 tiles, 20 bytes each at 4 B/cycle = 5-cycle loads, 10-cycle computes, 2 input slots:
    #   load0 0-5, compute0 5-15; load1 5-10 (second slot); load2 waits for tile 0's slot,
    #   freed at 15: 15-20; compute1 15-25; compute2 25-35. Total 5 + 3*10 = 35.
    log: list = []
    t = run_tiles(tiles([10, 10, 10], [20, 20, 20]), dram(4), in_slots=2, log=log)
    ev = timeline(log)
    assert ev[(1, "load_start")] == 5
    assert ev[(1, "load_start")] < ev[(0, "compute_end")] == 15
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
    #   load0 0-15, compute0 15-25; load1 15-30, compute1 waits for it: 30-40 (5-cycle stall);
    #   load2 30-45, compute2 45-55. Total 3*15 + 10 = 55.
    log: list = []
    t = run_tiles(tiles([10, 10, 10], [60, 60, 60]), dram(4), log=log)
    ev = timeline(log)
    for i in (1, 2):
        assert ev[(i, "compute_start")] == ev[(i, "load_end")]
        assert ev[(i, "compute_start")] > ev[(i - 1, "compute_end")]
    assert ev[(1, "compute_start")] == 30
    assert t.total_cycles == 55


def test_unlimited_bandwidth_no_latency_is_sum_of_busy():
    busy = [7, 1, 13, 4]
    t = run_tiles(tiles(busy, [10**9] * 4, [10**9] * 4, filters=[5, 0, 5, 0], psums=[0, 3, 0, 3]),
                  dram(math.inf))
    assert t.total_cycles == sum(busy) == 25


def test_latency_with_infinite_bandwidth_adds_first_load_only():
    # Every load costs L = 5 cycles, every busy >= L, drains are free: only the first load is
    # exposed. load0 0-5, compute0 5-12; load1 5-10; load2 after tile 0 frees its slot at 12:
    # 12-17, exactly when compute1 (12-17) ends; compute2 17-26. Total 5 + (7+5+9) = 26.
    busy = [7, 5, 9]
    log: list = []
    t = run_tiles(tiles(busy, [1, 1, 1], [1, 1, 1]), dram(math.inf, latency=5), log=log)
    assert t.total_cycles == 5 + sum(busy) == 26
    assert timeline(log)[(2, "compute_start")] == 17


def test_latency_longer_than_busy_exposes_every_load():
    # L = 5 > busy = 3: loads are back to back (0-5, 5-10, 10-15) and each compute waits for
    # its load: computes 5-8, 10-13, 15-18. Total 3*5 + 3 = 18 (not 5 + 9).
    t = run_tiles(tiles([3, 3, 3], [1, 1, 1]), dram(math.inf, latency=5))
    assert t.total_cycles == 18


def test_drain_contends_with_load_on_one_channel():
    # 1 B/cycle on 1 channel; two tiles: busy 2, loads 4 bytes (4 cycles), stores 4 bytes.
    #   load0 0-4; compute0 4-6; load1 holds the channel 4-8; drain0 starts at 6 but waits for
    #   the channel: 8-12; compute1 8-10; drain1 queues behind drain0: 12-16. Total 16.
    log: list = []
    t = run_tiles(tiles([2, 2], [4, 4], [4, 4]), dram(1, channels=1), log=log)
    ev = timeline(log)
    assert ev[(0, "drain_start")] == 6
    assert ev[(0, "drain_end")] == 12  # 2 cycles queued behind load1
    assert ev[(1, "drain_end")] == 16
    assert t.total_cycles == 16
    assert t.dram_busy_cycles == 16  # four 4-cycle transfers


def test_two_channels_remove_the_contention():
    # Same per-channel rate (2 B/cycle over 2 channels = 1 B/cycle each): drain0 takes the free
    # channel at 6: 6-10; compute1 8-10; drain1 10-14. Total 14.
    log: list = []
    t = run_tiles(tiles([2, 2], [4, 4], [4, 4]), dram(2, channels=2), log=log)
    ev = timeline(log)
    assert ev[(0, "drain_end")] == 10
    assert t.total_cycles == 14


def test_two_channels_same_total_bandwidth_are_slower_per_transfer():
    # 1 B/cycle split over 2 channels: 0.5 B/cycle each, every 4-byte transfer takes 8 cycles.
    #   load0 0-8; compute0 8-10; load1 8-16; drain0 10-18 (other channel); compute1 16-18;
    #   drain1 18-26. Total 26.
    t = run_tiles(tiles([2, 2], [4, 4], [4, 4]), dram(1, channels=2))
    assert t.total_cycles == 26


def test_single_output_slot_waits_for_drain():
    # As the one-channel case but one ofmap slot: compute1 (ready at 8) waits until drain0
    # frees the slot at 12: 12-14; drain1 14-18. Total 18.
    log: list = []
    t = run_tiles(tiles([2, 2], [4, 4], [4, 4]), dram(1), out_slots=1, log=log)
    ev = timeline(log)
    assert ev[(1, "compute_start")] == ev[(0, "drain_end")] == 12
    assert t.total_cycles == 18


def test_load_of_one_tile_moves_ifmap_filter_and_psums():
    # 3 + 5 + 2 = 10 bytes at 2 B/cycle plus 1 cycle latency: 1 + 5 = 6 cycles; compute 4;
    # drain 6 bytes at 2 B/cycle = 3. Total 6 + 4 + 3 = 13.
    t = run_tiles(tiles([4], [3], [6], filters=[5], psums=[2]), dram(2, latency=1))
    assert t.total_cycles == 13
    assert t.dram_busy_cycles == 6 + 3


def test_event_order_per_tile():
    log: list = []
    run_tiles(tiles([3, 1, 4, 1, 5], [9, 2, 6, 5, 3], [5, 8, 9, 7, 9]), dram(3, latency=2),
              log=log)
    ev = timeline(log)
    order = ["load_start", "load_end", "compute_start", "compute_end", "drain_start",
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
        assert ev[(i, "compute_start")] >= ev[(i, "load_end")]
