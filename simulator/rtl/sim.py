"""Run a GEMM through the generated RTL array in Amaranth's simulator, cycle by cycle.

The testbench plays the on-chip buffers: each cycle it presents one unskewed row of operand
tokens on the array's edge ports, in SCALE-Sim's fold order (``os``: M chunks outer, N inner;
``ws``/``is``: K chunks inner, so partial sums of one output leave back to back), and
collects the results leaving ``out[c]``. Partial sums of the K folds of ``ws``/``is`` are
added here, as the ofmap buffer does. Operands are the quantised integers of
:mod:`simulator.validation.operands` (the same encoding the numpy reference uses), coded into
the RTL's lane bits.

**Cycle numbering** (as :mod:`simulator.validation.reference`): cycle 0 is the first on which
a port presents an operand; an output *leaves* on cycle ``t`` when it is captured in the
array's output register at the end of cycle ``t``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from amaranth.sim import Simulator

from simulator.hardware.pe_kinds import pe_kind
from simulator.rtl.array import SystolicArrayRTL, fold_gap, fold_length
from simulator.rtl.pe import PESpec, pe_spec
from simulator.validation.operands import encode


@dataclass(frozen=True, slots=True)
class RtlResult:
    """What the simulated RTL produced (``output``, ``leave_cycle``: M x N) and its timeline:
    ``last_leave_cycle`` (the last result on any output port, padding lanes included),
    ``last_busy_cycle`` (the last cycle on which a PE held a valid operand or the preload
    shifted: what SCALE-Sim's compute cycles count),
    ``folds``, ``fold_cycles`` (busy cycles of one fold) and ``fold_gap`` (idle cycles the
    sequencer left between folds)."""

    output: np.ndarray
    leave_cycle: np.ndarray
    last_leave_cycle: int
    last_busy_cycle: int
    folds: int
    fold_cycles: int
    fold_gap: int


def _lane_code(values: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement ``bits``-bit codes of integer lanes (last axis), packed low lane first."""
    codes = np.asarray(values, dtype=object) % (1 << bits)
    shifts = np.array([1 << (bits * i) for i in range(codes.shape[-1])], dtype=object)
    return (codes * shifts).sum(axis=-1)


def _tokens(spec: PESpec, kind_name: str, ops: object) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray | None]:
    """Per-token data codes: activations (M, K', planes), weights (K', N) and, for bit-serial,
    whole stationary activations (M, K')."""
    a, w = ops.a, ops.w  # type: ignore[attr-defined]
    planes = spec.planes
    if kind_name == "xnor":
        pack = spec.pack
        lane = np.arange(pack, dtype=np.uint64)
        bits = (a[..., 0:1] >> lane) & np.uint64(1)
        valid = (a[..., 1:2] >> lane) & np.uint64(1)
        a_code = _lane_code(bits.astype(np.int64) + 2 * valid.astype(np.int64), 2)
        w_code = _lane_code(((w[..., 0:1] >> lane) & np.uint64(1)).astype(np.int64), 1)
        return a_code[..., None], w_code, None
    if kind_name == "shift":
        sign = (w < 0).astype(np.int64)
        w = np.abs(w) + (sign << (spec.weight_bits - 1))
        return _lane_code(a, spec.act_bits)[..., None], _lane_code(w, spec.weight_bits), None
    if kind_name == "bitserial":
        plane_bits = np.stack([(a >> p) & 1 for p in range(planes)], axis=-2)  # M, K', P, L
        return (_lane_code(plane_bits, 1), _lane_code(w, spec.weight_bits),
                _lane_code(a, spec.act_bits))
    return _lane_code(a, spec.act_bits)[..., None], _lane_code(w, spec.w_lane_bits), None


def simulate_rtl(A: np.ndarray, W: np.ndarray, *, rows: int, cols: int, dataflow: str,
                 pe: str = "mac", weight_bits: int = 8, act_bits: int = 8, acc_bits: int = 32,
                 fold_gap_cycles: int | None = None, **pe_params: int) -> RtlResult:
    """Simulate ``A @ W`` (M x K activations, K x N weights) on the generated RTL array.

    Operands must be quantised for the PE kind as for
    :func:`simulator.validation.reference.simulate_gemm`. ``fold_gap_cycles`` overrides the
    sequencer's idle cycles between folds (:func:`~simulator.rtl.array.fold_gap`; tests show
    what happens without them). Small sizes only: Amaranth's
    simulator runs in pure Python.
    """
    kind = pe_kind(pe, **pe_params)
    spec = pe_spec(pe, weight_bits, act_bits, acc_bits, **pe_params)
    A, W = np.asarray(A), np.asarray(W)
    ops = encode(kind, A, W, weight_bits, act_bits)
    a_tok, w_tok, a_full = _tokens(spec, pe, ops)
    dut = SystolicArrayRTL(rows, cols, dataflow, spec)
    M, N, Kp = A.shape[0], W.shape[1], ops.a.shape[1]
    planes = spec.planes
    events: list[list[tuple[int, int]]] = [[] for _ in range(cols)]
    if dataflow == "os":
        fr, fc, slots = -(-M // rows), -(-N // cols), Kp * planes
        schedule = _os_schedule(a_tok, w_tok, rows, cols, fr, fc, Kp, planes)
    else:
        ws = dataflow == "ws"
        V, J = (M, N) if ws else (N, M)
        fk, fj, slots = -(-Kp // rows), -(-J // cols), V * planes
        schedule = _stationary_schedule(a_tok, w_tok, a_full, ws, rows, cols, fk, fj, V,
                                        planes)
    folds = (fr * fc) if dataflow == "os" else (fk * fj)
    period = fold_length(rows, cols, dataflow, slots)
    gap = fold_gap(rows, cols, dataflow, slots) if fold_gap_cycles is None else fold_gap_cycles
    end = folds * (period + gap) + rows + 2
    overrun = []
    busy = []

    async def bench(ctx: object) -> None:
        for t in range(end):
            for port, fields in schedule(t, period + gap, dut):
                for name, value in fields.items():
                    ctx.set(getattr(port, name), value)  # type: ignore[attr-defined]
            if ctx.get(dut.active):  # type: ignore[attr-defined]
                busy.append(t)
            await ctx.tick()  # type: ignore[attr-defined]
            for c in range(cols):
                if ctx.get(dut.out_valid[c]):  # type: ignore[attr-defined]
                    events[c].append((t, int(ctx.get(dut.out[c]))))  # type: ignore[attr-defined]
            if dataflow == "os":
                overrun.append(ctx.get(dut.overrun))  # type: ignore[attr-defined]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    if any(overrun):
        raise RuntimeError("os drain overrun: two results met in a drain register")
    # Where each result must leave (fold f, lane i of column c): os PE (i, c) finishes on
    # f P' + T0 + i + c and climbs i drain registers; ws/is values leave the bottom row after
    # preload, slot and descent. Every result is looked up on exactly that cycle, and no other
    # result may appear: the timeline is checked, not assumed.
    step = period + gap
    lanes = rows if dataflow == "os" else V
    f, i, c = np.meshgrid(np.arange(folds), np.arange(lanes), np.arange(cols), indexing="ij")
    if dataflow == "os":
        when = f * step + slots - 1 + 2 * i + c
    else:
        when = f * step + rows + (i + 1) * planes - 1 + rows - 1 + c
    got = [dict(ev) for ev in events]
    for col in range(cols):
        expect = set(when[:, :, col].ravel().tolist())
        if len(expect) != when[:, :, col].size:
            raise RuntimeError(f"column {col}: two results are due on one cycle")
        if set(got[col]) != expect or len(got[col]) != len(events[col]):
            raise RuntimeError(f"column {col}: results left on cycles "
                               f"{sorted(got[col])}, expected {sorted(expect)}")
    value = np.vectorize(lambda t, col: got[col][t])(when, c)
    last = int(when.max())
    if dataflow == "os":
        fi, fj = f // fc, f % fc
        m_, n_ = fi * rows + i, fj * cols + c
        keep = (m_ < M) & (n_ < N)
        out = np.zeros((M, N), dtype=np.int64)
        leave = np.full((M, N), -1, dtype=np.int64)
        out[m_[keep], n_[keep]] = value[keep]
        leave[m_[keep], n_[keep]] = when[keep]
    else:
        j = (f // fk) * cols + c
        keep = j < J
        part = np.zeros((V, J), dtype=np.int64)
        done = np.full((V, J), -1, dtype=np.int64)
        np.add.at(part, (i[keep], j[keep]), value[keep])  # the ofmap buffer adds K folds
        np.maximum.at(done, (i[keep], j[keep]), when[keep])
        out, leave = (part, done) if ws else (part.T, done.T)
    return RtlResult(out, leave, last, busy[-1] if busy else -1, folds, period, gap)


def _idle(layout_fields: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(layout_fields, 0)


FIELDS = ("data", "valid", "last", "plane")
#: what the testbench presents on cycle t (fold period, array): ``(port, {field: value})``
Schedule = Callable[[int, int, SystolicArrayRTL], Iterator[tuple[Any, dict[str, int]]]]


def _os_schedule(a_tok: np.ndarray, w_tok: np.ndarray, R: int, C: int, fr: int, fc: int,
                 Kp: int, planes: int) -> Schedule:
    M, N = a_tok.shape[0], w_tok.shape[1]
    S = Kp * planes

    def at(t: int, period: int, dut: SystolicArrayRTL) -> Iterator[tuple[Any, dict[str, int]]]:
        f, s = divmod(t, period)
        active = f < fr * fc and s < S
        k, p = divmod(s, planes)
        fi, fj = divmod(f, fc)
        for r in range(R):
            m_ = fi * R + r
            tok = _idle(FIELDS)
            if active:
                tok.update(valid=1, last=int(s == S - 1), plane=p,
                           data=int(a_tok[m_, k, p]) if m_ < M else 0)
            yield dut.left[r], tok
        for c in range(C):
            n_ = fj * C + c
            tok = _idle(FIELDS)
            if active:
                tok.update(valid=1, last=int(s == S - 1), plane=p,
                           data=int(w_tok[k, n_]) if n_ < N else 0)
            yield dut.top[c], tok

    return at


def _stationary_schedule(a_tok: np.ndarray, w_tok: np.ndarray, a_full: np.ndarray | None,
                         ws: bool, R: int, C: int, fk: int, fj: int, V: int,
                         planes: int) -> Schedule:
    Kp = w_tok.shape[0]
    J = w_tok.shape[1] if ws else a_tok.shape[0]
    S = V * planes

    def stationary(k: int, j: int) -> int:
        if k >= Kp or j >= J:
            return 0
        if ws:
            return int(w_tok[k, j])
        return int(a_full[j, k]) if a_full is not None else int(a_tok[j, k, 0])

    def streamed(v: int, k: int, p: int) -> int:
        if k >= Kp:
            return 0
        return int(a_tok[v, k, p]) if ws else int(w_tok[k, v])

    def at(t: int, period: int, dut: SystolicArrayRTL) -> Iterator[tuple[Any, dict[str, int]]]:
        f, s = divmod(t, period)
        live = f < fk * fj
        jf, kf = divmod(f, fk)
        pre = live and s < R
        yield dut, {"preload_en": int(pre)}
        for c in range(C):
            tok = _idle(FIELDS)
            if pre:
                tok.update(valid=1, data=stationary(kf * R + R - 1 - s, jf * C + c))
            yield dut.preload[c], tok
        s -= R
        for r in range(R):
            tok = _idle(FIELDS)
            if live and 0 <= s < S:
                v, p = divmod(s, planes)
                tok.update(valid=1, plane=p, data=streamed(v, kf * R + r, p))
            yield dut.left[r], tok

    return at


__all__ = ["RtlResult", "simulate_rtl"]
