"""The PE variants of the generated systolic array, in Amaranth HDL.

One PE kind of :mod:`simulator.hardware.pe_kinds` per variant, with the arithmetic of
:mod:`simulator.validation.operands` in gates: ``mac`` (``a * w``), ``shift`` (``+-(a <<
e)`` on weights coded as a sign bit and an exponent code ``e + 1``, code 0 = zero), ``ternary``
(``+a``, ``-a`` or nothing on a 2-bit two's-complement weight), ``xnor`` (``2 popcount(xnor(a,
w) & valid) - popcount(valid)`` over a word of ``pack`` +-1 values coded as bits) and
``bitserial`` (Stripes: ``lanes`` activation bits of plane ``p`` AND their bit-parallel
weights, an adder tree, shifted by ``p``; the top plane is subtracted, two's complement).

A *token* is what moves between PEs in one cycle: ``data`` (``pack`` lanes), ``valid``,
``last`` (the last slot of an output's accumulation, output stationary) and ``plane`` (the
activation bit plane, bit-serial). :class:`PESpec` fixes the widths; :func:`product` builds the
combinational datapath that the array instantiates in every PE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

KINDS = ("mac", "shift", "ternary", "xnor", "bitserial")


@dataclass(frozen=True, slots=True)
class PESpec:
    """Widths of one PE variant.

    ``pack``: operand pairs per token (``xnor``: the word; ``bitserial``: its lanes; else 1);
    ``planes``: stream slots per value (``bitserial``: ``act_bits``; else 1).
    """

    kind: str
    weight_bits: int
    act_bits: int
    acc_bits: int = 32
    pack: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"RTL PE kind must be one of {list(KINDS)} (got {self.kind!r})")
        if self.kind in ("mac", "shift", "ternary") and self.pack != 1:
            raise ValueError(f"{self.kind} PEs take one operand pair per cycle (pack=1)")

    @property
    def planes(self) -> int:
        return self.act_bits if self.kind == "bitserial" else 1

    @property
    def plane_bits(self) -> int:
        return max(1, (self.planes - 1).bit_length())

    @property
    def a_lane_bits(self) -> int:
        """Bits per activation lane as it *streams* (bit-serial: one bit; xnor: bit + valid)."""
        if self.kind == "xnor":
            return 2
        return 1 if self.kind == "bitserial" else self.act_bits

    @property
    def w_lane_bits(self) -> int:
        return {"xnor": 1, "ternary": 2}.get(self.kind, self.weight_bits)

    def token(self, lane_bits: int) -> data.StructLayout:
        return data.StructLayout({"data": unsigned(self.pack * lane_bits), "valid": 1,
                                  "last": 1, "plane": self.plane_bits})

    @property
    def a_token(self) -> data.StructLayout:
        return self.token(self.a_lane_bits)

    @property
    def w_token(self) -> data.StructLayout:
        return self.token(self.w_lane_bits)

    @property
    def stationary_a_token(self) -> data.StructLayout:
        """A stationary activation keeps every bit (input stationary: bit-serial selects one)."""
        return self.token(self.act_bits if self.kind == "bitserial" else self.a_lane_bits)


def _lanes(word: Value, n: int, bits: int) -> list[Value]:
    return [word[i * bits:(i + 1) * bits] for i in range(n)]


def _popcount(bits: list[Value]) -> Value:
    total: Value = Const(0, 1)
    for b in bits:
        total = total + b
    return total


def product(spec: PESpec, a: Value, w: Value, plane: Value, *,
            act_stationary: bool = False) -> Value:
    """The signed result one PE adds to its partial sum for tokens ``a`` and ``w`` (data).

    ``act_stationary`` (bit-serial, input stationary): ``a`` holds whole activations and the
    PE selects bit ``plane`` of each; otherwise a streamed bit-serial ``a`` is one bit a lane.
    """
    k = spec.kind
    if k == "mac":
        return a.as_signed() * w.as_signed()
    if k == "ternary":
        ws = w.as_signed()
        return Mux(ws == 1, a.as_signed(), Mux(ws == -1, -a.as_signed(), 0))
    if k == "shift":
        sign, code = w[-1], w[:-1]
        mag = a.as_signed() << (code - 1)[:len(code)]
        return Mux(code == 0, 0, Mux(sign, -mag, mag))
    if k == "xnor":
        lanes = _lanes(a, spec.pack, 2)
        bits, valid = [x[0] for x in lanes], [x[1] for x in lanes]
        match = [~(b ^ w[i]) & v for i, (b, v) in enumerate(zip(bits, valid, strict=True))]
        return (_popcount(match) << 1).as_signed() - _popcount(valid).as_signed()
    # bitserial
    weights = _lanes(w, spec.pack, spec.weight_bits)
    if act_stationary:
        bits = [x.bit_select(plane, 1) for x in _lanes(a, spec.pack, spec.act_bits)]
    else:
        bits = list(a[:spec.pack])
    terms = [Mux(b, wl.as_signed(), 0) for b, wl in zip(bits, weights, strict=True)]
    tree: Value = Const(0, signed(1))
    for t in terms:
        tree = tree + t
    shifted = tree << plane
    return Mux(plane == spec.planes - 1, -shifted, shifted)


def pe_spec(kind: str, weight_bits: int, act_bits: int, acc_bits: int = 32,
            **params: Any) -> PESpec:
    """A :class:`PESpec` from PE-kind params as in an architecture file (``word_bits``,
    ``lanes``)."""
    pack = int(params.get("word_bits", params.get("lanes", 1)))
    return PESpec(kind, weight_bits, act_bits, acc_bits, pack if kind in ("xnor",
                                                                          "bitserial") else 1)




class PEUnit(wiring.Component):
    """One PE on its own, as the array instantiates it, for synthesis: operand registers in
    front of the datapath (``a``, ``w``, and the bit plane of a bit-serial PE) and the
    accumulator register after it (``acc <= acc + product``): the datapath, the accumulator
    adder and the weight + activation + accumulator flip-flops the area model counts."""

    def __init__(self, spec: PESpec) -> None:
        self.spec = spec
        super().__init__({"a": In(spec.pack * spec.a_lane_bits),
                          "w": In(spec.pack * spec.w_lane_bits),
                          "plane": In(spec.plane_bits), "acc": Out(signed(spec.acc_bits))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        spec = self.spec
        a = Signal(len(self.a), name="a_reg")
        w = Signal(len(self.w), name="w_reg")
        acc = Signal(signed(spec.acc_bits), name="acc_reg")
        m.d.sync += [a.eq(self.a), w.eq(self.w), acc.eq(acc + product(spec, a, w, self._plane(m)))]
        m.d.comb += self.acc.eq(acc)
        return m

    def _plane(self, m: Module) -> Value:
        if self.spec.planes == 1:
            return Const(0, 1)
        plane = Signal(self.spec.plane_bits, name="plane_reg")
        m.d.sync += plane.eq(self.plane)
        return plane


__all__ = ["KINDS", "PESpec", "PEUnit", "pe_spec", "product"]
