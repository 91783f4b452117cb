"""The discrete-event memory model: SimPy processes over tiles (never cycles or PEs).

One :class:`simpy.Environment` per layer (time unit: one clock cycle; DRAM transfers take
fractional cycles, the layer's total is rounded up once). The DRAM has ``channels`` parallel
channels with ``1/channels`` of the bandwidth each. Addresses are interleaved over the
channels at a fine grain, so every transfer is split into one stripe per channel; each
channel serves its stripes in the order they are issued (an in-order memory controller per
channel: a stripe starts when its channel is free and, for a read, its request's
``latency`` has passed, which does not hold the channel, so many requests are in flight at
once) and holds the channel for ``bytes / channel bandwidth``; writes are posted (no
latency). A transfer is done when its last stripe is. With even stripes every channel sees
the same queue, so at equal total bandwidth any number of channels gives the timing of one
channel (tested): channels are parallel, never a bandwidth divider for a single transfer.
Channel occupancy is booked when a transfer is issued (:class:`Channels`), so a transfer
costs one SimPy event.

Three processes (:class:`~simulator.mapping.schedule.TileSchedule` fields in brackets):

* ``load``: for each tile, wait for a free input-buffer slot (2 when double buffered) and,
  if its partial-sum loads read back what an earlier tile spilled [``psum_after``], for that
  tile's drain (read after write); then issue the tile's reads as two transfers: its head
  [``head_load_bytes``, what its first fold needs to start] and the rest;
* ``compute``: wait for a free ofmap slot and the tile's head, work ``busy - tail`` cycles,
  wait for the rest of its data, work the last ``tail`` cycles [``tail_cycles``]: data
  streams in while the tile computes, so the first compute waits for the first fold's
  operands only. The tile's stores except its last [``store_tail_bytes``] are issued when it
  starts (the array writes outputs as it goes); then free the input slot;
* ``drain``: the tile's last stores are issued when its compute ends (before the input slot
  it frees lets the next prefetch in); wait for all of its stores, then free the ofmap slot.

With unlimited bandwidth and no latency, total cycles equal the sum of busy cycles (tested).

SimPy is the model; by default its run is *replayed* without SimPy
(:func:`simulator.timeline.replay`: the same events in SimPy's order, every time identical,
several times cheaper per tile; tested event for event), and ``reference=True`` (or a
``log``) runs the SimPy processes themselves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.hardware.memory import Dram
from simulator.mapping.schedule import TileSchedule
from simulator.mapping.tile_runs import CYCLICITY, Run, find_runs, fit, shorten
from simulator.timeline import columns, replay

if TYPE_CHECKING:
    import simpy

Event = tuple[int, str, float]  # (tile, event name, cycle)
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Timing:
    """Outcome of one layer's SimPy run, in cycles."""

    total_cycles: int
    busy_cycles: int
    dram_busy_cycles: int


class Channels:
    """``n`` DRAM channels of ``bytes_per_cycle / n`` each, every transfer striped over all,
    each channel in issue order (module docstring)."""

    def __init__(self, env: simpy.Environment, n: int, bytes_per_cycle: float,
                 latency: int) -> None:
        self.env = env
        self.free = [0.0] * n
        self.rate = bytes_per_cycle / n
        self.latency = latency
        self.busy = 0.0  # channel-cycles of data transfer, summed over channels

    def book(self, nbytes: float, read: bool) -> float:
        """Issue a transfer now; return the time its last stripe ends."""
        now = self.env.now
        if nbytes <= 0:
            return now
        ready = now + (self.latency if read else 0)
        hold = 0.0 if math.isinf(self.rate) else nbytes / len(self.free) / self.rate
        end = ready
        for c, free in enumerate(self.free):
            self.free[c] = max(free, ready) + hold
            end = max(end, self.free[c])
        self.busy += hold * len(self.free)
        return end


def run_tiles(tiles: TileSchedule, dram: Dram, *, in_slots: int = 2, out_slots: int = 2,
              log: list[Event] | None = None, runs: bool = True,
              reference: bool = False) -> Timing:
    """Simulate one layer's tiles through load -> compute -> drain; return its timing.

    ``log``, when given, receives ``(tile, event, cycle)`` tuples: ``load_start``
    (reads issued), ``head_end``, ``load_end``, ``compute_start``, ``compute_end``,
    ``drain_end`` (of every tile: the long way). ``runs``: shorten runs of repeated tiles
    (:func:`run_runs`, exact); ``False`` steps through every tile, the long way.
    """
    busy = int(tiles.busy_cycles.sum())
    moved = int(tiles.load_bytes.sum() + tiles.store_bytes.sum())
    rate = dram.bytes_per_cycle
    dram_busy = 0 if math.isinf(rate) else math.ceil(moved / rate - _EPS)
    if log is None and runs:
        end = run_runs(tiles, dram, in_slots, out_slots, reference)
    else:
        end = _simulate(tiles, dram, in_slots, out_slots, log, reference=reference)[0]
    return Timing(total_cycles=max(0, math.ceil(end - _EPS - 1e-12 * end)), busy_cycles=busy,
                  dram_busy_cycles=dram_busy)


def _simulate(tiles: TileSchedule, dram: Dram, in_slots: int, out_slots: int,
              log: list[Event] | None, record: bool = False, reference: bool = False
              ) -> tuple[float, dict[str, list[float]]]:
    """The SimPy run: its end time and, if ``record``, every tile's event times; without a
    log and unless ``reference``, replayed exactly without SimPy (:mod:`simulator.timeline`).
    """
    if log is None and not reference:
        if tiles.n_tiles == 0:
            return 0.0, {}
        return replay(tiles, dram.channels, dram.bytes_per_cycle, dram.latency_cycles,
                      in_slots, out_slots, record)
    import simpy  # only the reference run needs it (start-up: ~35 ms saved otherwise)

    env = simpy.Environment()
    dma = Channels(env, dram.channels, dram.bytes_per_cycle, dram.latency_cycles)
    in_free = simpy.Container(env, capacity=in_slots, init=in_slots)
    out_free = simpy.Container(env, capacity=out_slots, init=out_slots)
    n = tiles.n_tiles
    busy, tail, total_load, head, store, store_tail, after = columns(tiles)
    issued = [env.event() for _ in range(n)]
    done = [env.event() for _ in range(n)]
    drained = [env.event() for _ in range(n)]
    head_at = [0.0] * n
    rest_at = [0.0] * n
    body_at = [0.0] * n
    tail_at = [0.0] * n
    note = log.append if log is not None else None
    marks: dict[str, list[float]] = {k: [0.0] * n for k in ("load", "start", "end", "drain")}
    mark_load, mark_start, mark_end, mark_drain = (marks[k] for k in ("load", "start", "end",
                                                                      "drain"))

    def wait_until(at: float) -> simpy.Event | None:
        return env.timeout(at - env.now) if at > env.now else None

    def load() -> Generator[Any, Any, None]:
        for t in range(n):
            yield in_free.get(1)
            if after[t] >= 0 and not drained[after[t]].processed:
                yield drained[after[t]]
            mark_load[t] = env.now
            h = min(head[t], total_load[t])
            head_at[t] = dma.book(h, read=True)
            rest_at[t] = max(head_at[t], dma.book(total_load[t] - h, read=True))
            if note:
                note((t, "load_start", env.now))
                note((t, "head_end", head_at[t]))
                note((t, "load_end", rest_at[t]))
            issued[t].succeed()

    def compute() -> Generator[Any, Any, None]:
        for t in range(n):
            if not issued[t].processed:
                yield issued[t]
            yield out_free.get(1)
            ev = wait_until(head_at[t])
            if ev is not None:
                yield ev
            mark_start[t] = env.now
            if note:
                note((t, "compute_start", env.now))
            body_at[t] = dma.book(store[t] - min(store_tail[t], store[t]), read=False)
            end = max(env.now + busy[t] - tail[t], rest_at[t]) + tail[t]
            ev = wait_until(end)
            if ev is not None:
                yield ev
            mark_end[t] = env.now
            if note:
                note((t, "compute_end", env.now))
            # its last stores are issued before the input slot frees for the next prefetch
            tail_at[t] = max(dma.book(min(store_tail[t], store[t]), read=False), body_at[t])
            yield in_free.put(1)
            done[t].succeed()

    def drain() -> Generator[Any, Any, None]:
        for t in range(n):
            if not done[t].processed:
                yield done[t]
            ev = wait_until(tail_at[t])
            if ev is not None:
                yield ev
            mark_drain[t] = env.now
            if note:
                note((t, "drain_end", env.now))
            drained[t].succeed()
            yield out_free.put(1)

    env.process(load())
    env.process(compute())
    finished = env.process(drain())
    env.run(until=finished)
    times: dict[str, list[float]] = {}
    if record:
        times = {"head": head_at, "rest": rest_at, "body": body_at, "tail": tail_at,
                 **{k: v for k, v in marks.items()}}
    return float(env.now), times


def run_runs(tiles: TileSchedule, dram: Dram, in_slots: int, out_slots: int,
             reference: bool = False) -> float:
    """The layer's end time, simulating each run of repeated tiles
    (:mod:`simulator.mapping.tile_runs`) only around its ends.

    A run of ``b`` blocks of ``q`` identical tiles keeps ``head`` blocks and ``tail`` blocks.
    The engine's state is the event times of the last few tiles (slots, channel queues and
    waits reach back at most ``in_slots + out_slots + 2`` tiles), so when every event of the
    kept blocks around the cut recurs exactly one period ``P`` later, the removed blocks
    would have repeated it and every later event is ``P`` per removed block later: the end is
    the short run's end plus the removed blocks times ``P``. A run whose events around the
    cut are not periodic keeps four times as many head blocks (a longer transient) or, when
    it has no more, is simulated whole. The steady state may repeat every ``c`` blocks
    (``c`` up to :data:`~simulator.mapping.tile_runs.CYCLICITY`: a latency-bound pipeline
    alternates between two timings); removed blocks are a multiple of every such ``c``.
    Tested equal to the tile-by-tile run on random schedules (``tests/test_tile_runs.py``).
    """
    window = in_slots + out_slots + 2
    found = find_runs(tiles, 3, 3, window)
    for _ in range(4):
        if not found:
            break
        short, idx = shorten(tiles, found)
        end, times = _simulate(short, dram, in_slots, out_slots, None, record=True,
                               reference=reference)
        arrays = {k: np.asarray(v) for k, v in times.items()}
        start_of = {int(i): j for j, i in enumerate(idx)}
        shift, retry, ok = 0.0, [], True
        for run in found:
            period = _period(arrays, start_of[run.start], run, window)
            if period is None:
                ok = False
                longer = fit(dataclasses.replace(run, head=4 * run.head))
                if longer is not None:
                    retry.append(longer)
                continue
            span, blocks = period
            shift += span * ((run.removed // run.period) // blocks)
            retry.append(run)
        if ok:
            return end + shift
        found = retry
    return _simulate(tiles, dram, in_slots, out_slots, None, reference=reference)[0]


def _period(times: dict[str, np.ndarray], start: int, run: Run,
            window: int) -> tuple[float, int] | None:
    """``(P, c)`` if every event around the run's cut recurs ``P`` cycles and ``c`` blocks
    later (the least such ``c`` up to the cyclicity bound), else None."""
    q = run.period
    cut = start + run.head * q
    ref = times["start"]
    for c in range(1, CYCLICITY + 1):
        span = c * q
        reach = (-(-window // span) + 1) * span
        lo, hi = cut - reach, cut + reach
        if lo < start or hi + span > start + (run.head + run.tail) * q:
            break
        period = float(ref[cut] - ref[cut - span])
        if all(np.all(np.abs(v[lo + span: hi + span] - v[lo: hi] - period)
                      <= 1e-9 * np.maximum(1.0, np.abs(v[lo + span: hi + span])))
               for v in times.values()):
            return period, c
    return None
