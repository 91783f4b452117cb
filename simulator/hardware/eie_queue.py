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
PEs or single activations.
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
