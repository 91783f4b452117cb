"""The PE kinds (interface and closed forms: :mod:`simulator.hardware.pe`).

``mac`` (int/fp multiply-accumulate), ``shift`` (power-of-two weights), ``xnor`` (binary
XNOR-popcount words), ``ternary`` (add/sub), ``bitserial`` (Stripes), ``bitfusion`` (Bit
Fusion bricks) and ``bfp`` (block floating point), each citing its paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.errors import ConfigError
from simulator.hardware.pe import INTEGER_SCHEMES, PE_KINDS, PEKind, register_kind


@register_kind("mac")
class MacPE(PEKind):
    """Integer or floating-point multiply-accumulate, one per cycle (the SCALE-Sim PE).

    ``number_format``: ``int`` (default; operands up to 32 bits) or ``fp`` (8, 16 or 32 bits;
    the accumulator is an ``acc_bits`` floating-point adder). A layer with floating-point
    values (scheme ``fp``) needs an ``fp`` PE; an ``fp`` PE also runs integer layers. Energy
    and area by format and width: Horowitz, ISSCC 2014 (reference/energy.md).
    """

    citation = "Horowitz, 'Computing's energy problem', ISSCC 2014"
    weight_schemes = INTEGER_SCHEMES | {"fp"}
    act_schemes = frozenset({"int", "binary", "fp"})

    class Params(BaseModel):
        model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
        number_format: Literal["int", "fp"] = "int"

    @property
    def number_format(self) -> str:
        return str(self.params.number_format)  # type: ignore[attr-defined]

    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        out = []
        for what, bits, scheme in (("weight_bits", weight_bits, weight_scheme),
                                   ("act_bits", act_bits, act_scheme)):
            if scheme == "fp" and self.number_format != "fp":
                out.append(f"its {what[:-5]} values are floating point but the PE has "
                           "number_format 'int' (use pe: {impl: mac, number_format: fp})")
            elif scheme == "fp" and bits not in (8, 16, 32):
                out.append(f"floating-point {what} must be 8, 16 or 32 (got {bits})")
            elif bits > 32:
                out.append(f"{what} must be at most 32 (got {bits})")
        return list(dict.fromkeys(out))


@register_kind("shift")
class ShiftPE(PEKind):
    """Power-of-two weights: a barrel shift of the activation by the weight's exponent, an add.

    A weight is ``0`` or ``sign * 2**e``; it is stored in ``weight_bits`` = 1 sign bit plus an
    exponent field of ``weight_bits - 1`` bits with one code reserved for zero, so
    ``0 <= e <= 2**(weight_bits - 1) - 2`` (scale factors are applied outside the array, as
    Miyashita et al. apply their full-scale range). One shift-add per cycle: cycles as ``mac``.
    Miyashita, Lee, Murmann, arXiv:1603.01025 (2016); INQ: Zhou et al., ICLR 2017.
    """

    arith_action_names = frozenset({"shift_add"})

    citation = "Miyashita et al. arXiv:1603.01025 (2016); Zhou et al. (INQ), ICLR 2017"
    weight_schemes = frozenset({"pow2", "binary", "ternary"})

    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        out = []
        if weight_scheme == "pow2" and not 2 <= weight_bits <= 8:
            out.append(f"pow2 weight_bits (sign + exponent) must be 2..8 (got {weight_bits})")
        if act_bits > 32:
            out.append(f"act_bits must be at most 32 (got {act_bits})")
        return out

    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        return {"shift_add": M * K * N}


@register_kind("xnor")
class XnorPE(PEKind):
    """Binary weights and activations: XNOR and popcount over a word of operands per cycle.

    ``+1``/``-1`` are coded as bits ``1``/``0``; a PE reduces ``word_bits`` pairs per cycle as
    ``2 * popcount(xnor(a, w) & valid) - popcount(valid)`` (the last word of a row is masked).
    So K shrinks to ``ceil(K / word_bits)`` words. Rastegari et al., XNOR-Net, ECCV 2016;
    Umuroglu et al., FINN, FPGA 2017 (SIMD lanes of XNOR-popcount per PE).
    """

    arith_action_names = frozenset({"xnor_popcount"})

    citation = "Rastegari et al. (XNOR-Net), ECCV 2016; Umuroglu et al. (FINN), FPGA 2017"

    class Params(BaseModel):
        model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
        word_bits: int = Field(default=64, ge=1, le=64, strict=True)

    weight_schemes = frozenset({"binary", "int"})
    must_declare = frozenset({"weight", "activation"})

    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        if weight_bits != 1 or act_bits != 1:
            return [f"it needs 1-bit (+-1) weights and activations "
                    f"(got weight_bits={weight_bits}, act_bits={act_bits})"]
        return []

    def pack(self, weight_bits: int, act_bits: int) -> int:
        return int(self.params.word_bits)  # type: ignore[attr-defined]

    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        return {"xnor_popcount": M * N * -(-K // self.pack(weight_bits, act_bits))}


@register_kind("ternary")
class TernaryPE(PEKind):
    """Ternary weights {-1, 0, +1} (times a per-layer scale applied outside): add, sub or skip.

    One add/subtract per cycle, so cycles as ``mac``; a zero weight gates the adder (the
    sparsity model prices it). Li, Zhang, Liu, "Ternary Weight Networks", arXiv:1605.04711.
    """

    arith_action_names = frozenset({"add_sub"})

    citation = "Li et al. (TWN), arXiv:1605.04711 (2016)"
    weight_schemes = frozenset({"ternary", "binary"})

    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        out = []
        if weight_bits > 2:
            out.append(f"ternary weights take at most 2 bits (got weight_bits={weight_bits})")
        if act_bits > 32:
            out.append(f"act_bits must be at most 32 (got {act_bits})")
        return out

    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        return {"add_sub": M * K * N}


@register_kind("bitserial")
class BitSerialPE(PEKind):
    """Bit-serial activations (Stripes): one activation bit plane per cycle, ``lanes`` wide.

    Each PE holds ``lanes`` serial lanes along K; per cycle each lane ANDs one activation bit
    with its bit-parallel weight and an adder tree sums the lanes, shifted by the bit position
    (two's complement: the top plane is subtracted). A value thus occupies ``act_bits`` cycles:
    ``s = act_bits``, ``K' = ceil(K / lanes)``. Stripes' serial inner-product unit is
    ``lanes = 16`` against a 16-bit baseline; ``lanes = b`` matches a b-bit ``mac`` array at
    b-bit activations and runs ``b / act_bits`` times faster below. Judd et al., "Stripes:
    Bit-Serial Deep Neural Network Computing", MICRO 2016.

    ``serial: weights`` streams the *weight* bits instead (activations bit-parallel):
    ``s = weight_bits``, so a layer runs at its own weight precision and a layer whose bits
    differ per output filter at each filter's (the mapping takes, per fold, the widest filter
    the fold's columns hold; :mod:`simulator.mapping.precision`). Lee et al., "UNPU: a 50.6
    TOPS/W unified deep neural network accelerator with 1b-to-16b fully-variable weight
    bit-precision", ISSCC 2018 (bit-serial weights).
    """

    arith_action_names = frozenset({"bit_serial_step"})

    citation = "Judd et al. (Stripes), MICRO 2016; Lee et al. (UNPU), ISSCC 2018"

    class Params(BaseModel):
        model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
        lanes: int = Field(default=1, ge=1, le=64, strict=True)
        max_weight_bits: int = Field(default=16, ge=1, le=32, strict=True)
        max_act_bits: int = Field(default=16, ge=1, le=32, strict=True)
        serial: Literal["activations", "weights"] = "activations"

    act_schemes = frozenset({"int", "binary"})

    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        p: Any = self.params
        out = []
        if weight_bits > p.max_weight_bits:
            out.append(f"weight_bits must be at most {p.max_weight_bits} (got {weight_bits})")
        if act_bits > p.max_act_bits:
            out.append(f"act_bits must be at most {p.max_act_bits} (got {act_bits})")
        return out

    def pack(self, weight_bits: int, act_bits: int) -> int:
        return int(self.params.lanes)  # type: ignore[attr-defined]

    @property
    def serial_weights(self) -> bool:
        return self.params.serial == "weights"  # type: ignore[attr-defined]

    def stream_cycles_per_value(self, weight_bits: int, act_bits: int) -> int:
        return weight_bits if self.serial_weights else act_bits

    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        return {"bit_serial_step": M * K * N * self.stream_cycles_per_value(weight_bits,
                                                                           act_bits)}


BRICK_WIDTHS = (2, 4, 8)


def brick_width(bits: int) -> int:
    """Operand width a Bit Fusion unit fuses for ``bits`` (1-bit operands use 2-bit bricks)."""
    return next(w for w in BRICK_WIDTHS if bits <= w)


@register_kind("bitfusion")
class BitFusionPE(PEKind):
    """Bit Fusion: 16 2-bit BitBricks per PE fuse into ``F = 64 / (w̄ * ā)`` multipliers.

    A Fusion Unit holds 16 BitBricks (2b x 2b signed/unsigned multipliers); a ``w̄ x ā``
    product takes ``(w̄/2)(ā/2)`` bricks, so 1 (8x8), 2 (8x4), 4 (4x4, 8x2), 8 (4x2) or 16
    (2x2) fused multipliers run per cycle; widths round up to 2, 4 or 8 (16-bit needs temporal
    fusion, not modelled). We model the fused multipliers of one unit as reducing consecutive
    K through the unit's shift-add tree into one partial sum (our reading of the Fusion Unit's
    adder tree), so ``K' = ceil(K / F)``. Sharma et al., "Bit Fusion", ISCA 2018.
    """

    arith_action_names = frozenset({"bitbrick"})

    citation = "Sharma et al. (Bit Fusion), ISCA 2018"

    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        if weight_bits > 8 or act_bits > 8:
            return [f"operands must be at most 8 bits (fused as 2, 4 or 8; got "
                    f"weight_bits={weight_bits}, act_bits={act_bits})"]
        return []

    def pack(self, weight_bits: int, act_bits: int) -> int:
        return 64 // (brick_width(weight_bits) * brick_width(act_bits))

    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        bricks = brick_width(weight_bits) * brick_width(act_bits) // 4
        return {"bitbrick": M * K * N * bricks}


@register_kind("bfp")
class BfpPE(PEKind):
    """Block floating point: integer mantissa MACs, one exponent alignment per block of K.

    Each block of ``block`` consecutive values along K shares one ``exp_bits`` exponent;
    ``weight_bits``/``act_bits`` are the sign-magnitude mantissa widths (2..16). A PE does one
    mantissa MAC per cycle into a block accumulator; at the end of each block the block sum is
    shifted by ``e_a + e_w`` and added to a wide accumulator, pipelined with the next block's
    MACs, so cycles are those of ``mac`` and the alignment is an action
    (``exponent_align`` per output per block). Drumond et al., "Training DNNs with Hybrid
    Block Floating Point", NeurIPS 2018; Darvish Rouhani et al., "Pushing the Limits of Narrow
    Precision Inferencing at Cloud Scale with Microsoft Floating Point" (MSFP), NeurIPS 2020.
    """

    arith_action_names = frozenset({"mantissa_mac", "exponent_align"})

    citation = "Drumond et al. NeurIPS 2018; Darvish Rouhani et al. (MSFP), NeurIPS 2020"

    class Params(BaseModel):
        model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
        block: int = Field(default=16, ge=1, le=1024, strict=True)
        exp_bits: int = Field(default=8, ge=1, le=16, strict=True)

    weight_schemes = frozenset({"bfp", "int", "fp"})
    act_schemes = frozenset({"bfp", "int", "fp"})

    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        if not (2 <= weight_bits <= 16 and 2 <= act_bits <= 16):
            return [f"mantissas (with sign) must be 2..16 bits (got weight_bits={weight_bits}, "
                    f"act_bits={act_bits})"]
        return []

    @property
    def number_format(self) -> str:
        return "bfp"

    def weight_storage_bits(self, weight_bits: int) -> float:
        p: Any = self.params
        return weight_bits + p.exp_bits / p.block

    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        blocks = -(-K // int(self.params.block))  # type: ignore[attr-defined]
        return {"mantissa_mac": M * K * N, "exponent_align": M * N * blocks}


def pe_kind(impl: str | Mapping[str, Any], **params: Any) -> PEKind:
    """Build a PE kind from its name and params (``pe_kind("xnor", word_bits=32)``) or from a
    YAML-shaped mapping (``{"impl": "xnor", "word_bits": 32}``); bad input is a ConfigError."""
    raw = dict(impl) if isinstance(impl, Mapping) else {"impl": impl, **params}
    spec, errors = PE_KINDS.validate(raw, "pe")
    if spec is None:
        raise ConfigError("<pe>", errors)
    return PE_KINDS.build(str(raw["impl"]), spec)


__all__ = ["BRICK_WIDTHS", "BfpPE", "BitFusionPE", "BitSerialPE", "MacPE", "ShiftPE",
           "TernaryPE", "XnorPE", "brick_width", "pe_kind"]
