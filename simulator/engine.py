"""The discrete-event memory model: SimPy processes over tiles (never cycles or PEs).

Three processes share one :class:`simpy.Environment` per layer (time unit: one clock cycle):

* ``load``: for each tile, wait for a free input-buffer slot (2 when double buffered), then
  move the tile's ifmap, filter and spilled-partial-sum bytes from DRAM as one DMA transfer
  holding one DRAM channel (a :class:`simpy.Resource` of ``channels``, each with an equal share
  of the bandwidth) for ``latency + ceil(bytes / bytes_per_cycle_per_channel)`` cycles;
* ``compute``: wait for a loaded tile and a free ofmap slot, run for the tile's closed-form busy
  cycles, then free its input slot;
* ``drain``: write the tile's outputs to DRAM (posted writes: bandwidth term only, sharing the
  same channels), then free the ofmap slot.

So load of tile i+1 overlaps compute of tile i, and the array stalls when data is late.
With unlimited bandwidth and no latency, total cycles equal the sum of compute cycles (tested).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from simulator.hardware.memory import Dram
from simulator.mapping.schedule import TileSchedule

Event = tuple[int, str, int]  # (tile, event name, cycle)


@dataclass(frozen=True, slots=True)
class Timing:
    """Outcome of one layer's SimPy run, in cycles."""

    total_cycles: int
    busy_cycles: int
    dram_busy_cycles: int


def _transfer_cycles(nbytes: int, bytes_per_cycle: float, latency: int) -> int:
    if nbytes <= 0:
        return 0
    if math.isinf(bytes_per_cycle):
        return latency
    return latency + math.ceil(nbytes / bytes_per_cycle)


def run_tiles(tiles: TileSchedule, dram: Dram, *, in_slots: int = 2, out_slots: int = 2,
              log: list[Event] | None = None) -> Timing:
    """Simulate one layer's tiles through load -> compute -> drain; return its timing.

    ``log``, when given, receives ``(tile, event, cycle)`` tuples: ``load_start``, ``load_end``,
    ``compute_start``, ``compute_end``, ``drain_start``, ``drain_end``.
    """
    env = simpy.Environment()
    channels = simpy.Resource(env, capacity=dram.channels)
    per_channel = dram.bytes_per_cycle / dram.channels
    latency = dram.latency_cycles
    in_free = simpy.Container(env, capacity=in_slots, init=in_slots)
    out_free = simpy.Container(env, capacity=out_slots, init=out_slots)
    ready: simpy.Store = simpy.Store(env)
    done: simpy.Store = simpy.Store(env)
    n = tiles.n_tiles
    busy = tiles.busy_cycles.tolist()
    reads = [tiles.ifmap_load_bytes.tolist(), tiles.filter_load_bytes.tolist(),
             tiles.psum_load_bytes.tolist()]
    stores = tiles.store_bytes.tolist()
    dram_busy = [0]
    note = log.append if log is not None else None
    loads = [_transfer_cycles(a + b + c, per_channel, latency)
             for a, b, c in zip(*reads, strict=True)]
    drains = [_transfer_cycles(b, per_channel, 0) for b in stores]

    def load() -> Generator[Any, Any, None]:
        for t in range(n):
            yield in_free.get(1)
            if note:
                note((t, "load_start", int(env.now)))
            if loads[t]:
                with channels.request() as req:
                    yield req
                    yield env.timeout(loads[t])
                dram_busy[0] += loads[t]
            if note:
                note((t, "load_end", int(env.now)))
            yield ready.put(t)

    def compute() -> Generator[Any, Any, None]:
        for t in range(n):
            yield ready.get()
            yield out_free.get(1)
            if note:
                note((t, "compute_start", int(env.now)))
            yield env.timeout(busy[t])
            if note:
                note((t, "compute_end", int(env.now)))
            yield in_free.put(1)
            yield done.put(t)

    def drain() -> Generator[Any, Any, None]:
        for t in range(n):
            yield done.get()
            if note:
                note((t, "drain_start", int(env.now)))
            if drains[t]:
                with channels.request() as req:
                    yield req
                    yield env.timeout(drains[t])
                dram_busy[0] += drains[t]
            if note:
                note((t, "drain_end", int(env.now)))
            yield out_free.put(1)

    env.process(load())
    env.process(compute())
    finished = env.process(drain())
    env.run(until=finished)
    return Timing(total_cycles=int(env.now), busy_cycles=int(sum(busy)),
                  dram_busy_cycles=dram_busy[0])
