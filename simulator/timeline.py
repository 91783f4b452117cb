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
processes (``now + (at - now)`` for a timeout to ``at``, ``max`` and ``min`` written out as the
builtins pick: ``max(a, b)`` is ``b if b > a else a``; the channel bookings of
:class:`simulator.engine.Channels`: equal stripes keep every channel's queue equal, so one
queue stands for all, with the same per-stripe hold).

Tested equal to the SimPy run (every event time, identical floats) on 1,000 random schedules
with ties on purpose (``tests/test_timeline.py``; a SimPy release that reordered events
would fail it); the engine runs SimPy itself when asked (``run_tiles(..., reference=True)``)
or when it logs events.
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
    now = 0.0
    free = 0.0  # when the channels' queue (equal on every channel) is free
    in_level, out_level = in_slots, out_slots
    in_wait = out_wait = False  # load waits for an input slot, compute for an output slot
    wait_issued = wait_done = wait_drained = -1  # the tile compute / drain / load waits on
    seq = 0  # timeouts scheduled so far (SimPy's event ids among timeouts)
    c_at: float | None = None  # compute's pending timeout: its time and sequence number
    c_seq = 0
    d_at: float | None = None  # drain's
    d_seq = 0

    def load() -> Generator[None, None, None]:
        nonlocal in_level, in_wait, wait_drained, free
        for t in range(n):
            if in_level >= 1:  # a get takes a free slot when issued
                in_level -= 1
                push(_GET_IN)
            else:
                in_wait = True
            yield
            a = after[t]
            if a >= 0 and not drained_done[a]:
                wait_drained = a
                yield
            mark_load[t] = now
            ready = now + latency
            h, ld = head[t], total_load[t]
            h = ld if ld < h else h  # min(head, load), as the builtin picks
            if h > 0:  # Channels.book(h, read=True)
                free = (ready if ready > free else free) + (0.0 if inf_rate
                                                             else h / channels / rate)
                head_at[t] = at = free if free > ready else ready
            else:
                head_at[t] = at = now
            rest = total_load[t] - h
            if rest > 0:
                free = (ready if ready > free else free) + (0.0 if inf_rate
                                                             else rest / channels / rate)
                m = ready if ready > at else at
                rest_at[t] = free if free > m else m
            else:
                rest_at[t] = now if now > at else at
            push(_ISSUED | t << 3)

    def compute() -> Generator[None, None, None]:
        nonlocal out_level, out_wait, wait_issued, in_level, free, seq, c_at, c_seq
        for t in range(n):
            if not issued_done[t]:
                wait_issued = t
                yield
            if out_level >= 1:
                out_level -= 1
                push(_GET_OUT)
            else:
                out_wait = True
            yield
            if head_at[t] > now:
                c_at, seq = now + (head_at[t] - now), seq + 1
                c_seq = seq
                yield
            mark_start[t] = now
            last, st = store_tail[t], store[t]
            last = st if st < last else last
            body = store[t] - last
            if body > 0:  # Channels.book(body, read=False)
                free = (now if now > free else free) + (0.0 if inf_rate
                                                         else body / channels / rate)
                body_at[t] = free if free > now else now
            else:
                body_at[t] = now
            tt = tail[t]
            x, r = now + busy[t] - tt, rest_at[t]
            end = (r if r > x else x) + tt
            if end > now:
                c_at, seq = now + (end - now), seq + 1
                c_seq = seq
                yield
            mark_end[t] = now
            if last > 0:
                free = (now if now > free else free) + (0.0 if inf_rate
                                                         else last / channels / rate)
                m, b = (free if free > now else now), body_at[t]
                tail_at[t] = b if b > m else m
            else:
                b = body_at[t]
                tail_at[t] = b if b > now else now
            in_level += 1  # the put raises the level when issued
            push(_PUT_IN)
            yield
            push(_DONE | t << 3)

    def drain() -> Generator[None, None, None]:
        nonlocal wait_done, out_level, seq, d_at, d_seq
        for t in range(n):
            if not done_done[t]:
                wait_done = t
                yield
            if tail_at[t] > now:
                d_at, seq = now + (tail_at[t] - now), seq + 1
                d_seq = seq
                yield
            mark_drain[t] = now
            push(_DRAINED | t << 3)
            out_level += 1
            push(_PUT_OUT)
            yield

    lp, cp, dp = load(), compute(), drain()
    for p in (lp, cp, dp):  # the processes' starts: URGENT events at 0, in creation order
        next(p, None)
    pop = fifo.popleft
    times = (head_at, rest_at, body_at, tail_at, mark_load, mark_start, mark_end, mark_drain)
    while True:
        while fifo:  # this cycle's zero-delay events, in the order they were scheduled
            item = pop()
            kind = item & 7
            if kind == _ISSUED:
                t = item >> 3
                issued_done[t] = True
                if wait_issued == t:
                    wait_issued = -1
                    next(cp, None)
            elif kind == _DONE:
                t = item >> 3
                done_done[t] = True
                if wait_done == t:
                    wait_done = -1
                    if next(dp, 0) == 0:
                        return _finish(now, record, times)
            elif kind == _DRAINED:
                t = item >> 3
                drained_done[t] = True
                if wait_drained == t:
                    wait_drained = -1
                    next(lp, None)
            elif kind == _GET_IN:
                next(lp, None)
            elif kind == _GET_OUT:
                next(cp, None)
            elif kind == _PUT_IN:
                if in_wait and in_level >= 1:  # a processed put serves the waiting get first
                    in_wait = False
                    in_level -= 1
                    push(_GET_IN)
                next(cp, None)
            else:  # _PUT_OUT
                if out_wait and out_level >= 1:
                    out_wait = False
                    out_level -= 1
                    push(_GET_OUT)
                if next(dp, 0) == 0:
                    return _finish(now, record, times)
        # nothing left now: advance to the earlier timeout (the earlier-scheduled on a tie);
        # a timeout due now precedes the zero-delay events its process then schedules, and
        # so does the other process's timeout if it is due now too (scheduled before now)
        if c_at is None and d_at is None:
            raise RuntimeError("timeline replay deadlocked")  # pragma: no cover
        c_first = d_at is None or (c_at is not None and (c_at, c_seq) < (d_at, d_seq))
        now = c_at if c_first else d_at  # type: ignore[assignment]
        for which in ((0, 1) if c_first else (1, 0)):
            if which == 0:
                if c_at is not None and c_at == now:
                    c_at = None
                    next(cp, None)
            elif d_at is not None and d_at == now:
                d_at = None
                if next(dp, 0) == 0:
                    return _finish(now, record, times)


def _finish(end: float, record: bool, times: tuple[list[float], ...]
            ) -> tuple[float, dict[str, list[float]]]:
    return float(end), dict(zip(_KEYS, times, strict=True)) if record else {}
