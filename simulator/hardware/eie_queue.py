"""EIE's activation queues: per-PE FIFOs of bounded depth between one broadcaster and the PEs.

Model (Han et al., "EIE", ISCA 2016, section IV "Activation Queue and Load Balancing" and
Fig. 8). The leading-nonzero-detection tree broadcasts the nonzero input activations of one
vector in order, at most one per cycle, into the activation queue of every PE. PE ``p``
spends ``w[j, p]`` cycles on activation ``j`` (its stored entries of that column, one MAC per
cycle; ``0`` when it holds none). A queue holds at most ``depth`` activations the PE has not
finished (the one in service included), so a full queue stalls the broadcast for *all* PEs.
In cycles, with ``t_j`` the broadcast of activation ``j`` (``t_1 = 0``) and ``f[j, p]`` the
cycle PE ``p`` finishes it:

    t_j     = max(t_{j-1} + 1, max_p f[j - depth, p])
    f[j, p] = max(f[j-1, p], t_j) + w[j, p]
    cycles  = max(t_B + 1, max_p f[B, p])

``depth = 1`` is lock-step (every activation waits for the slowest PE:
``sum_j max(1, max_p w[j, p])``); as ``depth`` grows the time falls towards the
infinite-queue limit (the same recurrence without the queue term), which is never below
``max(max_p sum_j w[j, p], B)``, the bound with perfect decoupling. EIE's actual times
(Table IV) sit 4-54 % above its theoretical ones for this reason.

Vectorised: the recurrence is solved ``depth`` activations at a time (``f`` of a block only
needs ``t`` of the same block and ``f`` of the block before), each block with cumulative
maxima over the PEs and, for a batch, over independent vectors at once; no loop over cycles,
PEs or single activations. :func:`masked_queue_cycles` runs a layer's vectors straight from
their nonzero mask (the engine's path): one step per broadcast slot, each vectorised over a
chunk of vectors and all PEs, in the narrowest integer type that holds the cycles, in bounded
memory; it equals :func:`queue_cycles` on the gathered work (tested).
"""

from __future__ import annotations

import numpy as np

_NEG = np.iinfo(np.int32).min // 4


def queue_cycles(work: np.ndarray, depth: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Cycles of each vector of a batch through the queues (module docstring).

    ``work``: ``(V, B, P)`` (or ``(B, P)`` for one vector) cycles of PE ``p`` on broadcast
    ``j`` of vector ``v``; ``valid``: ``(V, B)`` marks real broadcasts (vectors with fewer
    nonzeros are padded at the end; padding takes no cycle). Returns ``(V,)`` int64 cycles
    (a scalar array for one vector). A vector without any broadcast takes 0 cycles.
    """
    if depth < 1:
        raise ValueError(f"queue depth must be at least 1 (got {depth})")
    single = work.ndim == 2
    w = np.asarray(work)
    if single:
        w = w[None]
    n_vec, n_b, n_pe = w.shape
    ok = np.ones((n_vec, n_b), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if single and valid is not None:
        ok = ok.reshape(1, n_b)
    # int32 cycles (a vector of 2**31 cycles is far beyond any layer); broadcast-major layout:
    # each block is a contiguous (L, V, P) slab, scanned along axis 0
    wt = np.where(ok[:, :, None], w, 0).astype(np.int32).transpose(1, 0, 2).copy()
    okt = np.ascontiguousarray(ok.T)
    inc = okt.astype(np.int32)
    f_hist = np.full((depth, n_vec, n_pe), _NEG, dtype=np.int32)  # f[j - depth + i]
    f_prev = np.zeros((n_vec, n_pe), dtype=np.int32)              # f[j - 1], 0 before any
    t_prev = np.full(n_vec, -1, dtype=np.int32)                   # t_0 = -1: t_1 = 0
    t_last = np.full(n_vec, -1, dtype=np.int32)                   # t of the last real one
    for s in range(0, n_b, depth):
        e = min(s + depth, n_b)
        blk = wt[s:e]                                     # (L, V, P)
        g = f_hist[: e - s].max(axis=2)                   # max_p f[j - depth]: (L, V)
        # t_j = max(t_{j-1} + inc_j, g_j): with c_j = cumsum(inc), t_j - c_j is a running max
        c = np.cumsum(inc[s:e], axis=0, dtype=np.int32)
        t = np.maximum.accumulate(np.maximum(g - c, t_prev), axis=0) + c
        # f_j = W_j + max(f_{s-1}, max_{i<=j} (t_i - W_{i-1})), W = block cumsum of w,
        # W_{i-1} = W_i - w_i; in place on one temporary
        cw = np.cumsum(blk, axis=0, dtype=np.int32)
        f = np.subtract(t[:, :, None], cw)
        f += blk
        np.maximum.accumulate(f, axis=0, out=f)
        np.maximum(f, f_prev, out=f)
        f += cw
        f_prev, t_prev = f[-1], t[-1]
        t_last = np.where(okt[s:e].any(axis=0), np.where(okt[s:e], t, _NEG).max(axis=0),
                          t_last)
        f_hist = np.concatenate([f_hist[e - s:], f]) if e - s < depth else f
    out = np.maximum(t_last.astype(np.int64) + 1, f_prev.max(axis=1))
    out = np.where(ok.any(axis=1), out, 0).astype(np.int64)
    return out[0] if single else out


def infinite_queue_cycles(work: np.ndarray) -> int:
    """The same recurrence without the queue bound (``depth`` >= number of broadcasts), in
    closed form: ``f[B, p] = max_j (t_j + sum_{i >= j} w[i, p])`` with ``t_j = j - 1``."""
    w = np.asarray(work, dtype=np.int64)
    if w.shape[0] == 0:
        return 0
    tail = np.cumsum(w[::-1], axis=0)[::-1]               # sum_{i >= j} w[i, p]
    t = np.arange(w.shape[0], dtype=np.int64)[:, None]
    return int(max(w.shape[0], (t + tail).max()))


#: :func:`masked_queue_cycles`' memory bounds: elements of the ``(vectors, PEs)`` state of
#: one chunk of vectors, its broadcast slots (broadcasts x vectors, int32), and nonzeros
#: turned into slots at a time (int64 coordinates)
_SLAB = 1 << 17
_SLOTS = 1 << 19
_NONZEROS = 1 << 16
#: vectors x PEs of a chunk from which one step per broadcast slot beats blocks of ``depth``
_WIDE = 1 << 12


def _dtype(bound: int) -> type[np.signedinteger]:
    """The narrowest integer type holding every cycle value up to ``bound`` (with sentinel
    and in-block partial sums, which stay within the same range)."""
    if bound < 1 << 13:
        return np.int16
    return np.int32 if bound < 1 << 29 else np.int64


def masked_queue_cycles(table: np.ndarray, mask: np.ndarray, depth: int) -> np.ndarray:
    """:func:`queue_cycles` of every vector of a batch given by its nonzero mask, without
    materialising the ``(V, B, P)`` work.

    ``table``: ``(K, P)`` cycles of PE ``p`` on column ``k``; ``mask``: ``(V, K)`` bool, row
    ``v`` the nonzero columns of vector ``v``, broadcast in column order. Returns ``(V,)``
    int64 cycles, identical to ``queue_cycles(table[cols_v], depth)`` per vector (tested
    against it). Memory: ``O(nnz)`` of one chunk of vectors plus ``O(depth x vectors x P)``
    state, both bounded (:data:`_SLAB`, :data:`_SLOTS`, :data:`_NONZEROS`); time
    ``O(nnz x P)``: a chunk of many vectors steps through its broadcast slots, each step a
    few row-wise numpy passes over all its vectors and PEs (:func:`_slots`); a chunk of few
    vectors (a fully connected layer's one input) goes a block of ``depth`` slots at a time
    (:func:`_blocks`), as :func:`queue_cycles` does.
    """
    if depth < 1:
        raise ValueError(f"queue depth must be at least 1 (got {depth})")
    mask = np.asarray(mask, dtype=bool)
    n_vec, k = mask.shape
    p = table.shape[1]
    out = np.zeros(n_vec, dtype=np.int64)
    nnz = mask.sum(axis=1)
    width_all = int(nnz.max()) if n_vec else 0
    if width_all == 0:
        return out
    wmax = int(table.max()) if table.size else 0
    # a vector's cycles never exceed sum_j max(1, max_p w_j) <= B max(1, wmax); in-block
    # partial sums stay below (depth + 1) wmax
    dt = _dtype(width_all * max(1, wmax) + (depth + 1) * wmax + depth + 1)
    neg = np.iinfo(dt).min // 4
    ext = np.zeros((k + 1, p), dtype=dt)  # row k: the padding broadcast, no work
    ext[:k] = table
    per = max(1, min(_SLAB // p, _SLOTS // width_all))
    for v0 in range(0, n_vec, per):
        rows, cnt = mask[v0:v0 + per], nnz[v0:v0 + per]
        nv, width = rows.shape[0], int(cnt.max())
        if width == 0:
            continue
        run = _slots if nv * p >= _WIDE else _blocks
        out[v0:v0 + nv] = run(ext, _broadcast_major(rows, cnt, width), cnt, depth, dt, neg)
    return out


def _broadcast_major(rows: np.ndarray, cnt: np.ndarray, width: int) -> np.ndarray:
    """``(width, V)`` int32: slot ``(j, v)`` is vector ``v``'s ``j``-th nonzero column, else
    ``K`` (padding); filled from the nonzero coordinates of at most :data:`_NONZEROS`
    vectors' nonzeros at a time."""
    nv, k = rows.shape
    cols = np.full((width, nv), k, dtype=np.int32)
    sub = max(1, _NONZEROS // width)
    for v0 in range(0, nv, sub):
        r, c = np.nonzero(rows[v0:v0 + sub])
        part = cnt[v0:v0 + sub]
        starts = np.cumsum(part) - part
        cols[np.arange(len(r)) - starts[r], r + v0] = c
    return cols


def _slots(ext: np.ndarray, cols: np.ndarray, cnt: np.ndarray, depth: int,
           dt: type[np.signedinteger], neg: int) -> np.ndarray:
    """The recurrence of :func:`queue_cycles` over broadcast-major ``cols``: one step per
    broadcast slot, each vectorised over the chunk's vectors and all PEs (row-wise binary
    ufuncs: some 25x faster than ``accumulate`` along a slab's first axis)."""
    width, nv = cols.shape
    p, k = ext.shape[1], ext.shape[0] - 1
    ok = cols < k
    inc = ok.astype(dt)
    f = np.zeros((nv, p), dtype=dt)              # f[j - 1, p], 0 before any broadcast
    w = np.empty((nv, p), dtype=dt)
    ring = np.full((depth, nv), neg, dtype=dt)   # max_p f[j - depth], by j mod depth
    t = np.full(nv, -1, dtype=dt)                # t_0 = -1: t_1 = 0
    t_last = np.full(nv, -1, dtype=dt)
    for j in range(width):
        slot = j % depth
        t = np.maximum(t + inc[j], ring[slot])
        np.take(ext, cols[j], axis=0, out=w)
        np.maximum(f, t[:, None], out=f)
        f += w
        f.max(axis=1, out=ring[slot])
        t_last = np.where(ok[j], t, t_last)
    res = np.maximum(t_last.astype(np.int64) + 1, f.max(axis=1))
    return np.where(cnt > 0, res, 0)


def _blocks(ext: np.ndarray, cols: np.ndarray, cnt: np.ndarray, depth: int,
            dt: type[np.signedinteger], neg: int) -> np.ndarray:
    """The recurrence over broadcast-major ``cols`` a block of ``depth`` slots at a time (as
    :func:`queue_cycles`; in-block prefix sums from one zero-led slab, one running max led
    by ``f_prev``): for chunks of few vectors, where the per-slot steps of :func:`_slots`
    would each touch only a few PEs' worth of elements."""
    width, nv = cols.shape
    p, k = ext.shape[1], ext.shape[0] - 1
    ok = cols < k
    inc = ok.astype(dt)
    cw = np.empty((depth + 1, nv, p), dtype=dt)  # zero-led in-block prefix sums of w
    x = np.empty((depth + 1, nv, p), dtype=dt)   # f_prev, then t_i - (prefix before i)
    cw[0] = 0
    f_prev = np.zeros((nv, p), dtype=dt)
    gmax = np.full((depth, nv), neg, dtype=dt)   # max_p f[j - depth]
    t_prev = np.full(nv, -1, dtype=dt)
    t_last = np.full(nv, -1, dtype=dt)
    for s in range(0, width, depth):
        e = min(s + depth, width)
        n = e - s
        c_blk, x_blk = cw[: n + 1], x[: n + 1]
        np.take(ext, cols[s:e], axis=0, out=c_blk[1:])
        np.cumsum(c_blk, axis=0, dtype=dt, out=c_blk)
        c = np.cumsum(inc[s:e], axis=0, dtype=dt)
        t = np.maximum.accumulate(np.maximum(gmax[:n] - c, t_prev), axis=0) + c
        # f_i = W_i + max(f_prev, max_{l <= i} (t_l - W_{l-1}))
        x_blk[0] = f_prev
        np.subtract(t[:, :, None], c_blk[:-1], out=x_blk[1:])
        np.maximum.accumulate(x_blk, axis=0, out=x_blk)
        f = x_blk[1:]
        f += c_blk[1:]
        f_prev = f[-1].copy()
        gmax[:n] = f.max(axis=2)
        okb = ok[s:e]
        t_last = np.where(okb.any(axis=0), np.where(okb, t, neg).max(axis=0), t_last)
        t_prev = t[-1]
    res = np.maximum(t_last.astype(np.int64) + 1, f_prev.max(axis=1))
    return np.where(cnt > 0, res, 0)
