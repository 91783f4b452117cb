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
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from simulator.hardware.memory import Dram
from simulator.mapping.schedule import TileSchedule

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
              log: list[Event] | None = None) -> Timing:
    """Simulate one layer's tiles through load -> compute -> drain; return its timing.

    ``log``, when given, receives ``(tile, event, cycle)`` tuples: ``load_start``
    (reads issued), ``head_end``, ``load_end``, ``compute_start``, ``compute_end``,
    ``drain_end``.
    """
    env = simpy.Environment()
    dma = Channels(env, dram.channels, dram.bytes_per_cycle, dram.latency_cycles)
    in_free = simpy.Container(env, capacity=in_slots, init=in_slots)
    out_free = simpy.Container(env, capacity=out_slots, init=out_slots)
    n = tiles.n_tiles
    busy = tiles.busy_cycles.tolist()
    tail = tiles.tail_cycles.tolist()
    total_load = tiles.load_bytes.tolist()
    head = tiles.head_load_bytes.tolist()
    store = tiles.store_bytes.tolist()
    store_tail = tiles.store_tail_bytes.tolist()
    after = tiles.psum_after.tolist()
    issued = [env.event() for _ in range(n)]
    done = [env.event() for _ in range(n)]
    drained = [env.event() for _ in range(n)]
    head_at = [0.0] * n
    rest_at = [0.0] * n
    body_at = [0.0] * n
    tail_at = [0.0] * n
    note = log.append if log is not None else None

    def wait_until(at: float) -> simpy.Event | None:
        return env.timeout(at - env.now) if at > env.now else None

    def load() -> Generator[Any, Any, None]:
        for t in range(n):
            yield in_free.get(1)
            if after[t] >= 0 and not drained[after[t]].processed:
                yield drained[after[t]]
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
            if note:
                note((t, "compute_start", env.now))
            body_at[t] = dma.book(store[t] - min(store_tail[t], store[t]), read=False)
            end = max(env.now + busy[t] - tail[t], rest_at[t]) + tail[t]
            ev = wait_until(end)
            if ev is not None:
                yield ev
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
            if note:
                note((t, "drain_end", env.now))
            drained[t].succeed()
            yield out_free.put(1)

    env.process(load())
    env.process(compute())
    finished = env.process(drain())
    env.run(until=finished)
    return Timing(total_cycles=max(0, math.ceil(env.now - _EPS - 1e-12 * env.now)),
                  busy_cycles=int(sum(busy)),
                  dram_busy_cycles=math.ceil(dma.busy / dram.channels - _EPS))
