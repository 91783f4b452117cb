"""Functional, cycle-stepped reference of the systolic array (numpy; small arrays only).

It moves real operand values through an ``R x C`` grid of PEs, cycle by cycle, and returns the
GEMM result, the cycle on which each output leaves the array and the total cycles. Its purpose
is to prove the fast closed forms (:mod:`simulator.mapping.dataflows`,
:mod:`simulator.hardware.pe`) and the PE arithmetic right; it is far too slow for real
layers. Within a cycle all PEs (and all folds, see below) are updated at once with numpy; the
only Python loop is over cycles.

**The array.** Operands are encoded per PE kind into *tokens*: a token carries ``pack`` values
along K (an XNOR word, Bit Fusion's fused multipliers, bit-serial lanes) and fills ``planes``
consecutive stream slots, one cycle each (the activation bit planes of a bit-serial PE), so the
stream of one row holds ``S = values * planes`` slots. Edge feeders inject skewed slots: row
``r`` starts one cycle after row ``r - 1`` (and column ``c`` one after ``c - 1``), every
register shifts to its nearest neighbour each cycle, and a PE operates on the slot it holds.

* ``os`` (rows take M, columns take N, K streams): activations enter at the left edge and move
  right, weights enter at the top and move down; every PE accumulates its own output in place.
  An output is final on the cycle of its last slot and is read out by a drain that overlaps the
  next fold (SCALE-Sim charges no drain cycles in ``os``); that cycle is its *leave* cycle.
* ``ws`` / ``is`` (rows take K; columns take N resp. M): the stationary operand (weights resp.
  activations) is first shifted down into the array, one row per cycle, from a preload feeder;
  then the other operand streams in from the left and partial sums move down the columns, one
  row per cycle, leaving at the bottom edge. An output leaves on the cycle its partial sum of
  the last reduction fold passes the bottom row; bit-plane partial sums are combined by the
  column's output accumulator.

Unused rows and columns of a partial fold are fed zeros on the same schedule, as SCALE-Sim pads
its operand matrices, so every fold runs the same, data-independent timeline; folds are
therefore simulated side by side along a batch axis and laid end to end in time, fold ``f + 1``
starting on the cycle after fold ``f``'s last busy cycle (a cycle on which any register moved
a value). Folds run in the dataflow's default loop order
(:data:`simulator.mapping.dataflows.DATAFLOWS`; in ``ws``/``is`` K is the inner loop).

**Cycle numbering.** Cycles are numbered from 0. ``total_cycles`` is the number of the layer's
last busy cycle, which is how SCALE-Sim counts (its counter starts at zero), so for ``mac`` it
equals ``folds * per_fold - 1`` of its closed form: one fold is busy on ``per_fold`` cycles,
``0 .. per_fold - 1``.

Operands are encoded per kind by :mod:`simulator.validation.operands`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import pe_kind
from simulator.mapping.dataflows import DATAFLOWS
from simulator.validation.operands import I64, Operands, encode


@dataclass(frozen=True, slots=True)
class ReferenceResult:
    """What the cycle-stepped array produced.

    ``output``: the M x N result (int64; float64 for ``bfp``). ``leave_cycle``: M x N, the
    zero-based cycle on which each final output leaves the array. ``total_cycles``: number of
    the last busy cycle (SCALE-Sim's compute cycles). ``fold_cycles``: busy cycles per fold.
    """

    output: np.ndarray
    leave_cycle: np.ndarray
    total_cycles: int
    folds: int
    fold_cycles: int


def _pad(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    width = [(0, 0)] * x.ndim
    width[axis] = (0, size - x.shape[axis])
    return np.pad(x, width)


def _run_os(ops: Operands, R: int, C: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Output stationary; returns per-fold outputs (F, R, C), local leave cycles, busy cycles."""
    M, Kp, P = ops.a.shape
    N = ops.w.shape[1]
    fr, fc, S, planes = -(-M // R), -(-N // C), Kp * ops.planes, ops.planes
    fi, fj = np.repeat(np.arange(fr), fc), np.tile(np.arange(fc), fr)  # outer loop over M
    A = _pad(ops.a, 0, fr * R).reshape(fr, R, Kp, P)[fi]
    Ae = _pad(ops.a_exp, 0, fr * R).reshape(fr, R, Kp)[fi]
    W = _pad(ops.w, 1, fc * C).reshape(Kp, fc, C, P).transpose(1, 0, 2, 3)[fj]
    We = _pad(ops.w_exp, 1, fc * C).reshape(Kp, fc, C).transpose(1, 0, 2)[fj]
    F = fr * fc
    a, w = np.zeros((F, R, C, P), A.dtype), np.zeros((F, R, C, P), W.dtype)
    ae, we = np.zeros((F, R, C), I64), np.zeros((F, R, C), I64)
    a_s, w_s = np.full((R, C), -1), np.full((R, C), -1)
    blk, acc = np.zeros((F, R, C), I64), np.zeros((F, R, C), I64)
    leave = np.full((R, C), -1)
    rows, cols = np.arange(R), np.arange(C)
    t, last = 0, -1
    while True:
        a[:, :, 1:], ae[:, :, 1:], a_s[:, 1:] = a[:, :, :-1], ae[:, :, :-1], a_s[:, :-1]
        w[:, 1:], we[:, 1:], w_s[1:] = w[:, :-1], we[:, :-1], w_s[:-1]  # weights move down
        s_r, s_c = t - rows, t - cols  # the slot each edge feeder injects now
        ok_r, ok_c = (s_r >= 0) & (s_r < S), (s_c >= 0) & (s_c < S)
        k_r, k_c = np.clip(s_r // planes, 0, Kp - 1), np.clip(s_c // planes, 0, Kp - 1)
        a[:, :, 0] = np.where(ok_r[None, :, None], A[:, rows, k_r], 0)
        ae[:, :, 0] = np.where(ok_r, Ae[:, rows, k_r], 0)
        a_s[:, 0] = np.where(ok_r, s_r, -1)
        w[:, 0] = np.where(ok_c[None, :, None], W[:, k_c, cols], 0)
        we[:, 0] = np.where(ok_c, We[:, k_c, cols], 0)
        w_s[0] = np.where(ok_c, s_c, -1)
        active = a_s >= 0
        if (active != (w_s >= 0)).any() or (active & (a_s != w_s)).any():
            raise RuntimeError("os: activation and weight slots met out of step")
        if not active.any() and (s_r >= S).all() and (s_c >= S).all():
            break  # nothing in flight and every feeder is empty
        if active.any():
            last = t
        p = np.where(active, a_s % planes, 0)
        k = np.clip(a_s // planes, 0, Kp - 1)
        blk += np.where(active, ops.op(a, w, p), 0)
        end = active & (p == planes - 1) & ops.block_end[k]
        shift = np.maximum(ae + we - ops.lsb_exp, 0)
        acc += np.where(end, blk << shift, 0)
        blk = np.where(end, 0, blk)
        leave[active & (a_s == S - 1)] = t
        t += 1
    return acc, leave, last + 1


def _run_stationary(ops: Operands, R: int, C: int,
                    weight_stationary: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """ws / is: K on rows; J (N for ws, M for is) on columns; V (M resp. N) streams.

    Returns per-fold outputs (F, V, C), local leave cycles (V, C) and the busy cycles.
    """
    if weight_stationary:
        stat, stat_e = ops.w, ops.w_exp  # (K', J, P): K' x N
        strm, strm_e = ops.a, ops.a_exp  # (V, K', P): M x K'
    else:
        stat, stat_e = ops.a.transpose(1, 0, 2), ops.a_exp.T  # K' x M
        strm, strm_e = ops.w.transpose(1, 0, 2), ops.w_exp.T  # N x K'
    Kp, J, P = stat.shape
    V, planes = strm.shape[0], ops.planes
    fk, fj, S = -(-Kp // R), -(-J // C), V * planes
    kf, jf = np.tile(np.arange(fk), fj), np.repeat(np.arange(fj), fk)  # K is the inner loop
    st_f = _pad(_pad(stat, 0, fk * R), 1, fj * C).reshape(fk, R, fj, C, P)[kf, :, jf]
    st_ef = _pad(_pad(stat_e, 0, fk * R), 1, fj * C).reshape(fk, R, fj, C)[kf, :, jf]
    x_f = _pad(strm, 1, fk * R).reshape(V, fk, R, P).transpose(1, 2, 0, 3)[kf]  # (F, R, V, P)
    x_ef = _pad(strm_e, 1, fk * R).reshape(V, fk, R).transpose(1, 2, 0)[kf]
    row_end = _pad(ops.block_end, 0, fk * R).reshape(fk, R)[kf]
    row_end[:, -1] = True  # partial sums are aligned before they leave the fold
    F = fk * fj
    st, st_e = np.zeros((F, R, C, P), stat.dtype), np.zeros((F, R, C), I64)
    x, x_e = np.zeros((F, R, C, P), strm.dtype), np.zeros((F, R, C), I64)
    x_s = np.full((R, C), -1)
    blk, al = np.zeros((F, R, C), I64), np.zeros((F, R, C), I64)
    out, leave = np.zeros((F, V, C), I64), np.full((V, C), -1)
    rows = np.arange(R)
    t, last, preloaded, t0 = 0, -1, 0, 0
    while True:
        if preloaded < R:  # preload: the stationary rows shift down, bottom row first
            st[:, 1:], st_e[:, 1:] = st[:, :-1], st_e[:, :-1]
            st[:, 0], st_e[:, 0] = st_f[:, R - 1 - preloaded], st_ef[:, R - 1 - preloaded]
            preloaded += 1
            last, t = t, t + 1
            t0 = t  # streaming starts on the cycle after the preload ends
            continue
        x[:, :, 1:], x_e[:, :, 1:], x_s[:, 1:] = x[:, :, :-1], x_e[:, :, :-1], x_s[:, :-1]
        s_r = t - t0 - rows
        ok = (s_r >= 0) & (s_r < S)
        v_r = np.clip(s_r // planes, 0, V - 1)
        x[:, :, 0] = np.where(ok[None, :, None], x_f[:, rows, v_r], 0)
        x_e[:, :, 0] = np.where(ok, x_ef[:, rows, v_r], 0)
        x_s[:, 0] = np.where(ok, s_r, -1)
        active = x_s >= 0
        if not active.any():
            if (s_r >= S).all():
                break
            t += 1
            continue
        last = t
        p = np.where(active, x_s % planes, 0)
        a_op, w_op = (x, st) if weight_stationary else (st, x)
        c = np.where(active, ops.op(a_op, w_op, p), 0)
        # Each PE adds its product to the partial sum the PE above made last cycle.
        blk = np.concatenate([np.zeros_like(blk[:, :1]), blk[:, :-1]], axis=1) + c
        al = np.concatenate([np.zeros_like(al[:, :1]), al[:, :-1]], axis=1)
        end = active & row_end[:, :, None]
        al = np.where(active, al + np.where(end, blk << np.maximum(x_e + st_e - ops.lsb_exp,
                                                                   0), 0), 0)
        blk = np.where(active & ~end, blk, 0)
        js = np.flatnonzero(active[R - 1])
        vs = x_s[R - 1, js] // planes
        out[:, vs, js] += al[:, R - 1, js]  # the column's output accumulator
        done = js[x_s[R - 1, js] % planes == planes - 1]
        leave[x_s[R - 1, done] // planes, done] = t
        t += 1
    return out, leave, last + 1


def simulate_gemm(A: np.ndarray, W: np.ndarray, *, rows: int, cols: int, dataflow: str,
                  pe: PEKind | str = "mac", weight_bits: int = 8,
                  act_bits: int = 8) -> ReferenceResult:
    """Run ``A @ W`` (A: M x K activations, W: K x N weights) through the cycle-stepped array.

    ``pe`` is a PE kind or its name; operands must already be quantised for it (integers in
    range, +-1 for ``xnor``, pow2 for ``shift``, {-1, 0, 1} for ``ternary``), except ``bfp``,
    which takes real values and quantises them with
    :func:`~simulator.validation.operands.bfp_quantise` along K. Small sizes only: the cost
    is about (M, K, N folds) x (cycles per fold) numpy steps.
    """
    kind = pe_kind(pe) if isinstance(pe, str) else pe
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {sorted(DATAFLOWS)} (got {dataflow!r})")
    A, W = np.asarray(A), np.asarray(W)
    if A.ndim != 2 or W.ndim != 2 or A.shape[1] != W.shape[0] or 0 in (*A.shape, W.shape[1]):
        raise ValueError(f"need non-empty A (M x K) and W (K x N) (got {A.shape}, {W.shape})")
    M, N = A.shape[0], W.shape[1]
    ops = encode(kind, A, W, weight_bits, act_bits)
    if dataflow == "os":
        acc, loc, busy = _run_os(ops, rows, cols)
        fr, fc = -(-M // rows), -(-N // cols)
        out = acc.reshape(fr, fc, rows, cols).transpose(0, 2, 1, 3).reshape(fr * rows,
                                                                          fc * cols)
        leave = np.tile(loc, (fr, fc)) + (np.arange(fr * fc) * busy).reshape(fr, fc).repeat(
            rows, axis=0).repeat(cols, axis=1)
        out, leave, folds = out[:M, :N], leave[:M, :N], fr * fc
    else:
        ws = dataflow == "ws"
        part, loc, busy = _run_stationary(ops, rows, cols, ws)
        J = N if ws else M
        fk, fj = -(-ops.a.shape[1] // rows), -(-J // cols)
        folds = fk * fj
        by_j = part.reshape(fj, fk, -1, cols).sum(axis=1)  # (fj, V, C): sum over K folds
        out = by_j.transpose(1, 0, 2).reshape(by_j.shape[1], fj * cols)[:, :J]
        last_k = (np.arange(fj) * fk + fk - 1) * busy  # start of each column group's last fold
        leave = (loc[:, None, :] + last_k[None, :, None]).reshape(loc.shape[0], -1)[:, :J]
        if not ws:
            out, leave = out.T, leave.T
    scaled = out * 2.0 ** ops.lsb_exp if kind.kind == "bfp" else out
    return ReferenceResult(scaled, leave, folds * busy - 1, folds, busy)
