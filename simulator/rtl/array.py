"""A parameterised systolic array in Amaranth HDL: rows x cols PEs, one dataflow, with the
edge feeders and the output drain that SCALE-Sim's timing assumes.

**Ports** (all *unskewed*: a memory presents one row of values per cycle, as SCALE-Sim's
operand matrices are laid out; the array skews them itself):

* ``os`` (rows take M, columns take N, K streams): ``left[r]`` activation tokens, ``top[c]``
  weight tokens. Each PE multiplies the tokens passing through it and accumulates in place.
* ``ws`` / ``is`` (rows take K; columns take N resp. M): ``preload[c]`` and ``preload_en``
  shift the stationary operand (weights resp. activations) down the columns, one row per
  cycle, bottom row first; then ``left[r]`` streams the other operand and partial sums move
  down one row per cycle.
* ``out[c]``, ``out_valid[c]``: one result per column and cycle leaves the array.
* ``active``: some PE holds a valid operand this cycle (or the preload shifts): the cycles
  SCALE-Sim counts as compute.

**Feeders.** Row ``r``'s edge input passes ``r`` registers (column ``c``'s top input ``c``)
before it reaches the array: a triangular delay line, so slot ``s`` meets PE ``(r, c)`` on
cycle ``s + r + c`` (Kung and Leiserson's skewed systolic schedule; SCALE-Sim's skewed operand
matrices, Samajdar et al., arXiv:1811.02883, section III).

**Drain.** ``ws``/``is``: the bottom PE's partial sum *is* the output; a column accumulator
beside it adds the bit planes of a bit-serial value (``planes`` consecutive slots) before it
leaves. ``os``: every PE keeps a second register beside its accumulator: on the slot marked
``last`` the final sum goes into that drain register and the accumulator restarts, so the next
fold computes while the outputs drain. Drain registers form one shift chain per column towards
the *top* edge: PE ``(r, c)`` finishes on cycle ``T0 + r + c`` and its result reaches the edge
``r`` cycles later, on ``T0 + 2r + c``, so results of one fold never meet. Results of two
folds meet only if the fold length ``P`` is even and ``P <= 2R - 2`` (``K' s + C <= R``); then
the sequencer leaves one idle cycle between folds (:func:`fold_gap`), and ``overrun`` reports
any collision, which a test asserts never happens.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from simulator.rtl.pe import PESpec, product

DATAFLOWS = ("os", "ws", "is")


def fold_length(rows: int, cols: int, dataflow: str, slots: int) -> int:
    """Busy cycles of one fold streaming ``slots`` (SCALE-Sim 3.0.0's closed form)."""
    return slots + rows + cols - 2 + (rows if dataflow != "os" else 0)


def fold_gap(rows: int, cols: int, dataflow: str, slots: int) -> int:
    """Idle cycles the sequencer leaves between folds so drained results never collide."""
    period = fold_length(rows, cols, dataflow, slots)
    return int(dataflow == "os" and period % 2 == 0 and period <= 2 * rows - 2)


def _skew(m: Module, token: Value, layout: data.StructLayout, depth: int, name: str) -> Value:
    """``token`` delayed by ``depth`` registers (the triangular feeder of one row/column)."""
    for i in range(depth):
        reg = Signal(layout, name=f"{name}_d{i}")
        m.d.sync += reg.eq(token)
        token = reg
    return token


def _any(bits: list[Value]) -> Value:
    out: Value = bits[0]
    for b in bits[1:]:
        out = out | b
    return out


class SystolicArrayRTL(wiring.Component):
    """The generated array (module docstring). ``spec`` fixes the PE variant and widths."""

    def __init__(self, rows: int, cols: int, dataflow: str, spec: PESpec) -> None:
        if dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be one of {list(DATAFLOWS)} (got {dataflow!r})")
        if rows < 1 or cols < 1:
            raise ValueError(f"rows and cols must be >= 1 (got {rows} x {cols})")
        self.rows, self.cols, self.dataflow, self.spec = rows, cols, dataflow, spec
        ports: dict[str, wiring.Member] = {}
        if dataflow == "os":
            ports["left"] = In(spec.a_token).array(rows)
            ports["top"] = In(spec.w_token).array(cols)
            ports["overrun"] = Out(1)
        else:
            ws = dataflow == "ws"
            ports["preload"] = In(spec.w_token if ws else spec.stationary_a_token).array(cols)
            ports["preload_en"] = In(1)
            ports["left"] = In(spec.a_token if ws else spec.w_token).array(rows)
        ports["out"] = Out(signed(spec.acc_bits)).array(cols)
        ports["out_valid"] = Out(1).array(cols)
        ports["active"] = Out(1)
        super().__init__(ports)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        if self.dataflow == "os":
            self._output_stationary(m)
        else:
            self._stationary(m)
        return m

    def _output_stationary(self, m: Module) -> None:
        R, C, spec = self.rows, self.cols, self.spec
        acc_shape = signed(spec.acc_bits)
        a_in = [[_skew(m, self.left[r], spec.a_token, r, f"left{r}")] for r in range(R)]
        w_in = [_skew(m, self.top[c], spec.w_token, c, f"top{c}") for c in range(C)]
        w_rows = [w_in]
        drain = [[Signal(acc_shape, name=f"drain_{r}_{c}") for c in range(C)] for r in range(R)]
        dvalid = [[Signal(name=f"dvalid_{r}_{c}") for c in range(C)] for r in range(R)]
        overrun = Signal()
        busy: list[Value] = []
        clashes: list[Value] = [overrun]
        for r in range(R):
            w_next = []
            for c in range(C):
                a, w = a_in[r][c], w_rows[r][c]
                a_reg = Signal(spec.a_token, name=f"a_{r}_{c}")
                w_reg = Signal(spec.w_token, name=f"w_{r}_{c}")
                acc = Signal(acc_shape, name=f"acc_{r}_{c}")
                m.d.sync += [a_reg.eq(a), w_reg.eq(w)]
                a_in[r].append(a_reg)
                w_next.append(w_reg)
                total = acc + product(spec, a.data, w.data, a.plane)
                done = a.valid & a.last
                busy.append(a.valid)
                with m.If(a.valid):
                    m.d.sync += acc.eq(Mux(a.last, 0, total))
                below = (drain[r + 1][c], dvalid[r + 1][c]) if r + 1 < R else (0, 0)
                m.d.sync += [drain[r][c].eq(Mux(done, total, below[0])),
                             dvalid[r][c].eq(done | below[1])]
                if r + 1 < R:
                    clashes.append(done & dvalid[r + 1][c])
            w_rows.append(w_next)
        m.d.sync += overrun.eq(_any(clashes))
        m.d.comb += [self.overrun.eq(overrun), self.active.eq(_any(busy))]
        for c in range(C):
            m.d.comb += [self.out[c].eq(drain[0][c]), self.out_valid[c].eq(dvalid[0][c])]

    def _stationary(self, m: Module) -> None:
        R, C, spec = self.rows, self.cols, self.spec
        ws = self.dataflow == "ws"
        st_layout = spec.w_token if ws else spec.stationary_a_token
        x_layout = spec.a_token if ws else spec.w_token
        acc_shape = signed(spec.acc_bits)
        st = [[Signal(st_layout, name=f"st_{r}_{c}") for c in range(C)] for r in range(R)]
        with m.If(self.preload_en):
            for c in range(C):
                m.d.sync += st[0][c].eq(self.preload[c])
                for r in range(1, R):
                    m.d.sync += st[r][c].eq(st[r - 1][c])
        psum_above: list[Value] = [Const(0)] * C
        busy: list[Value] = [self.preload_en]
        for r in range(R):
            x: Value = _skew(m, self.left[r], x_layout, r, f"left{r}")
            for c in range(C):
                busy.append(x.valid)
                x_reg = Signal(x_layout, name=f"x_{r}_{c}")
                m.d.sync += x_reg.eq(x)
                a, w = (x, st[r][c]) if ws else (st[r][c], x)
                psum_next = psum_above[c] + product(spec, a.data, w.data, x.plane,
                                                    act_stationary=not ws)
                if r + 1 < R:
                    psum = Signal(acc_shape, name=f"psum_{r}_{c}")
                    m.d.sync += psum.eq(Mux(x.valid, psum_next, 0))
                    psum_above[c] = psum
                else:
                    self._column_drain(m, c, psum_next, x)
                x = x_reg
        m.d.comb += self.active.eq(_any(busy))

    def _column_drain(self, m: Module, c: int, psum_next: Value, x: Value) -> None:
        """Bottom edge of column ``c``: add the bit planes of a value, then let it leave."""
        spec = self.spec
        out = Signal(signed(spec.acc_bits), name=f"out_{c}")
        valid = Signal(name=f"out_valid_{c}")
        planes = Signal(signed(spec.acc_bits), name=f"planes_{c}")
        final = x.valid & (x.plane == spec.planes - 1)
        m.d.sync += [valid.eq(final), out.eq(Mux(final, planes + psum_next, out))]
        with m.If(x.valid):
            m.d.sync += planes.eq(Mux(final, 0, planes + psum_next))
        m.d.comb += [self.out[c].eq(out), self.out_valid[c].eq(valid)]


__all__ = ["DATAFLOWS", "SystolicArrayRTL", "fold_gap", "fold_length"]
