"""The engine's SimPy model replayed without SimPy: the same event times, bit for bit, at a
fraction of the cost (:func:`replay`).

:mod:`simulator.engine` models a layer as three SimPy processes (load -> compute -> drain)
sharing two slot containers and the DRAM channels. Its results depend on the *order* in
which SimPy processes events that fall on the same cycle (who books a DRAM channel first),
so a faster engine is exact only if it processes events in SimPy's order. SimPy's order
(SimPy 4.1, ``Environment.step``) is by ``(time, priority, event id)``: every event is
``NORMAL`` but the three processes' start (``URGENT``, at time 0, in creation order), and
event ids grow as events are scheduled. In this model

* the only events scheduled into the future are the processes' timeouts (``wait_until``:
  compute waits for a tile's head and its end, drain for a tile's last store), at most one
  per process at a time, and a timeout's delay is never zero;
* every other event (a container get or put, a tile's ``issued``, ``done`` or ``drained``)
  is triggered at the current time.

So at time ``T`` the timeouts due at ``T`` (scheduled before ``T``: smaller ids) come first,
the earlier-scheduled first, and then the zero-delay events in the order they were
scheduled: a FIFO queue. :func:`replay` keeps exactly that: one pending timeout per process
and a FIFO of zero-delay events, each event doing what SimPy's callbacks do (a processed put
first serves the waiting get, then resumes its process). The container semantics are
SimPy's: a put succeeds at once (the slots it returns always fit) and raises the level when
it is issued, a get takes a slot when it is issued if one is free and otherwise when a put
is processed. Every time is computed by the same floating-point expressions as the SimPy
processes (``now + (at - now)`` for a timeout to ``at``, the channel bookings of
:class:`simulator.engine.Channels`: equal stripes keep every channel's queue equal, so one
queue stands for all, with the same per-stripe hold).

Tested equal to the SimPy run (every event time, identical floats) on thousands of random
schedules with ties on purpose (``tests/test_timeline.py``); the engine runs SimPy itself
when asked (``run_tiles(..., reference=True)``) or when it logs events.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator

from simulator.mapping.schedule import TileSchedule

# zero-delay event kinds (a FIFO entry is kind | tile << 3)
_GET_IN, _GET_OUT, _PUT_IN, _PUT_OUT, _ISSUED, _DONE, _DRAINED = range(7)
_KEYS = ("head", "rest", "body", "tail", "load", "start", "end", "drain")


def columns(tiles: TileSchedule) -> tuple[list[int], ...]:
    """The tile fields the engine reads, as lists: busy cycles, tail cycles, load bytes, head
    bytes, store bytes, store-tail bytes and the read-after-write tile."""
    return (tiles.busy_cycles.tolist(), tiles.tail_cycles.tolist(),
            tiles.load_bytes.tolist(), tiles.head_load_bytes.tolist(),
            tiles.store_bytes.tolist(), tiles.store_tail_bytes.tolist(),
            tiles.psum_after.tolist())


def replay(tiles: TileSchedule, channels: int, bytes_per_cycle: float, latency: int,
           in_slots: int, out_slots: int, record: bool = False
           ) -> tuple[float, dict[str, list[float]]]:
    """The end time of the engine's SimPy run of ``tiles`` and, if ``record``, every tile's
    event times (keys as :func:`simulator.engine._simulate`), computed as SimPy would
    (module docstring). ``bytes_per_cycle`` over ``channels`` channels, read ``latency``
    cycles; ``in_slots`` input and ``out_slots`` output buffer slots."""
    n = tiles.n_tiles
    busy, tail, total_load, head, store, store_tail, after = columns(tiles)
    rate = bytes_per_cycle / channels
    inf_rate = math.isinf(rate)
    head_at = [0.0] * n
    rest_at = [0.0] * n
    body_at = [0.0] * n
    tail_at = [0.0] * n
    mark_load = [0.0] * n
    mark_start = [0.0] * n
    mark_end = [0.0] * n
    mark_drain = [0.0] * n
    issued_done = [False] * n  # processed (SimPy's ``event.processed``)
    done_done = [False] * n
    drained_done = [False] * n
    fifo: deque[int] = deque()  # kind | tile << 3
    push = fifo.append
    # simulation state, in one list so the processes' closures can rebind it cheaply:
    # [now, channel free time, in level, out level, load waits for an in slot,
    #  compute waits for an out slot, timeout sequence number, the tile compute waits to
    #  be issued, drain to be done, load to be drained (-1: none)]
    st: list[float] = [0.0, 0.0, in_slots, out_slots, 0, 0, 0, -1, -1, -1]
    # a process's pending timeout: [time, sequence] (time None: none)
    c_timer: list[float | None] = [None, 0]
    d_timer: list[float | None] = [None, 0]

    def book(nbytes: float, read: bool) -> float:
        now = st[0]
        if nbytes <= 0:
            return now
        ready = now + (latency if read else 0)
        hold = 0.0 if inf_rate else nbytes / channels / rate
        free = max(st[1], ready) + hold
        st[1] = free
        return max(ready, free)

    def timer(slot: list[float | None], at: float) -> None:
        now = st[0]
        slot[0] = now + (at - now)
        st[6] += 1
        slot[1] = st[6]

    def load() -> Generator[None, None, None]:
        for t in range(n):
            if st[2] >= 1:  # a get takes a free slot when issued
                st[2] -= 1
                push(_GET_IN)
            else:
                st[4] = 1
            yield
            a = after[t]
            if a >= 0 and not drained_done[a]:
                st[9] = a
                yield
            mark_load[t] = st[0]
            h = min(head[t], total_load[t])
            head_at[t] = book(h, True)
            rest_at[t] = max(head_at[t], book(total_load[t] - h, True))
            push(_ISSUED | t << 3)

    def compute() -> Generator[None, None, None]:
        for t in range(n):
            if not issued_done[t]:
                st[7] = t
                yield
            if st[3] >= 1:
                st[3] -= 1
                push(_GET_OUT)
            else:
                st[5] = 1
            yield
            if head_at[t] > st[0]:
                timer(c_timer, head_at[t])
                yield
            now = st[0]
            mark_start[t] = now
            body_at[t] = book(store[t] - min(store_tail[t], store[t]), False)
            end = max(now + busy[t] - tail[t], rest_at[t]) + tail[t]
            if end > now:
                timer(c_timer, end)
                yield
            mark_end[t] = st[0]
            tail_at[t] = max(book(min(store_tail[t], store[t]), False), body_at[t])
            st[2] += 1  # the put raises the level when issued
            push(_PUT_IN)
            yield
            push(_DONE | t << 3)

    def drain() -> Generator[None, None, None]:
        for t in range(n):
            if not done_done[t]:
                st[8] = t
                yield
            if tail_at[t] > st[0]:
                timer(d_timer, tail_at[t])
                yield
            mark_drain[t] = st[0]
            push(_DRAINED | t << 3)
            st[3] += 1
            push(_PUT_OUT)
            yield

    procs = (load(), compute(), drain())
    lp, cp, dp = procs
    for p in procs:  # the processes' starts: URGENT events at 0, in creation order
        next(p, None)
    pop = fifo.popleft
    while True:
        while fifo:  # this cycle's zero-delay events, in the order they were scheduled
            item = pop()
            kind, t = item & 7, item >> 3
            if kind == _ISSUED:
                issued_done[t] = True
                if st[7] == t:
                    st[7] = -1
                    next(cp, None)
            elif kind == _DONE:
                done_done[t] = True
                if st[8] == t:
                    st[8] = -1
                    if next(dp, 0) == 0:
                        return _finish(st[0], record, head_at, rest_at, body_at, tail_at,
                                       mark_load, mark_start, mark_end, mark_drain)
            elif kind == _DRAINED:
                drained_done[t] = True
                if st[9] == t:
                    st[9] = -1
                    next(lp, None)
            elif kind == _GET_IN:
                next(lp, None)
            elif kind == _GET_OUT:
                next(cp, None)
            elif kind == _PUT_IN:
                if st[4] and st[2] >= 1:  # a processed put serves the waiting get first
                    st[4] = 0
                    st[2] -= 1
                    push(_GET_IN)
                next(cp, None)
            else:  # _PUT_OUT
                if st[5] and st[3] >= 1:
                    st[5] = 0
                    st[3] -= 1
                    push(_GET_OUT)
                if next(dp, 0) == 0:
                    return _finish(st[0], record, head_at, rest_at, body_at, tail_at,
                                   mark_load, mark_start, mark_end, mark_drain)
        # nothing left now: advance to the earlier timeout (the earlier-scheduled on a tie);
        # a timeout due now precedes the zero-delay events its process then schedules, and
        # so does the other process's timeout if it is due now too (scheduled before now)
        ct, dt = c_timer[0], d_timer[0]
        if ct is None and dt is None:
            raise RuntimeError("timeline replay deadlocked")  # pragma: no cover
        c_first = dt is None or (ct is not None and (ct, c_timer[1]) < (dt, d_timer[1]))
        st[0] = ct if c_first else dt  # type: ignore[assignment]
        for which in ((0, 1) if c_first else (1, 0)):
            if which == 0:
                if c_timer[0] is not None and c_timer[0] == st[0]:
                    c_timer[0] = None
                    next(cp, None)
            elif d_timer[0] is not None and d_timer[0] == st[0]:
                d_timer[0] = None
                if next(dp, 0) == 0:
                    return _finish(st[0], record, head_at, rest_at, body_at, tail_at,
                                   mark_load, mark_start, mark_end, mark_drain)


def _finish(end: float, record: bool, *times: list[float]
            ) -> tuple[float, dict[str, list[float]]]:
    return float(end), dict(zip(_KEYS, times, strict=True)) if record else {}
