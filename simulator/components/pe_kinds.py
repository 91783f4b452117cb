"""PE kinds: what one processing element of the systolic array computes, and at what rate.

A PE kind is selected per architecture (``pe: mac | shift | xnor | ternary | bitserial |
bitfusion | bfp``) and checked against each layer's operand precision. Every kind answers the
same four questions (:class:`PEKind`):

* ``check(layer, weight_bits, act_bits, weight_scheme, act_scheme)``: can this layer run here?
  Raises :class:`~simulator.errors.MappingError` naming the layer and the PE kind if not.
* ``gemm_view(M, K, N, weight_bits, act_bits) -> GemmView(M, K, N, stream_cycles_per_value)``:
  the GEMM the *array* sees. Kinds that reduce ``pack`` operands per PE per cycle shrink K to
  ``ceil(K / pack)``; kinds that spend ``s`` cycles per streamed value stretch the stream.
* ``actions(M, K, N, weight_bits, act_bits)``: arithmetic action counts of one GEMM, named so an
  energy table can price them (``pe_array.<action>``).
* ``macs_per_pe_per_cycle(weight_bits, act_bits) = pack / s``.

**Closed form** (the integration into :mod:`simulator.mapping` is mechanical). With
``(M', K', N', s) = gemm_view(M, K, N, wb, ab)`` on an ``R x C`` array:

======  ==========================  ==========================
df      folds                       cycles per fold
======  ==========================  ==========================
``os``  ceil(M'/R) * ceil(N'/C)     K' * s + R + C - 2
``ws``  ceil(K'/R) * ceil(N'/C)     2R + C + M' * s - 2
``is``  ceil(K'/R) * ceil(M'/C)     2R + C + N' * s - 2
======  ==========================  ==========================

and ``compute_cycles = folds * per_fold - 1`` (SCALE-Sim's zero-based count). In mapping.py:
fold on ``{"M": M', "K": K', "N": N'}`` and call ``fold_cycles(size[stream] * s)``. Only the
stream is stretched: fill and drain stay ``R + C - 2`` (plus ``R`` of preload) because bit
planes and packed words move one PE per cycle like any other value. Per kind:

=============  ==============  =====  ==================  ==================================
kind           K'              s      MACs / PE / cycle   actions (one GEMM)
=============  ==============  =====  ==================  ==================================
``mac``        K               1      1                   ``mac = MKN``
``shift``      K               1      1                   ``shift_add = MKN``
``ternary``    K               1      1                   ``add_sub = MKN``
``xnor``       ceil(K/word)    1      word                ``xnor_popcount = M N K'``
``bitserial``  ceil(K/lanes)   ab     lanes / ab          ``bit_serial_step = MKN ab``
``bitfusion``  ceil(K/F)       1      F = 64/(w̄ ā)       ``bitbrick = MKN w̄ ā / 4``
``bfp``        K               1      1                   ``mantissa_mac = MKN``,
                                                          ``exponent_align = MN ceil(K/block)``
=============  ==============  =====  ==================  ==================================

(``w̄``, ``ā``: the operand widths rounded up to a Bit Fusion brick width 2, 4 or 8.) Every kind
adds ``codebook_read = MKN`` when the weights are shared through a codebook (Deep Compression,
Han et al. ICLR 2016; EIE, ISCA 2016). Zero operands are *not* removed here: gating and skipping
are the sparsity model's business, applied on top of these dense counts.

:mod:`simulator.reference` moves real operands through a cycle-stepped array built from these
kinds and checks both the arithmetic and these closed forms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from simulator.errors import ConfigError, MappingError
from simulator.registry import Registry

PE_KINDS: Registry[PEKind] = Registry("pe_kind")

SCHEMES = frozenset({"int", "fp", "pow2", "binary", "ternary", "bfp"})
#: Schemes whose values are plain integers, which any integer datapath can consume.
INTEGER_SCHEMES = frozenset({"int", "pow2", "binary", "ternary"})


class GemmView(NamedTuple):
    """The GEMM as the array sees it, and the cycles each streamed value occupies a PE."""

    M: int
    K: int
    N: int
    stream_cycles_per_value: int


def _register(name: str) -> Callable[[type[PEKind]], type[PEKind]]:
    def deco(cls: type[PEKind]) -> type[PEKind]:
        cls.kind = name
        return PE_KINDS.register(name)(cls)

    return deco


class _NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PEKind:
    """Base of every PE kind: one multiply-accumulate-like operation per PE per cycle.

    Subclasses override ``weight_schemes``/``act_schemes``, ``_problems`` (precision limits),
    ``pack``/``stream_cycles_per_value`` (rate) and ``_arith_actions`` (what one MAC costs).
    """

    kind: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    weight_schemes: ClassVar[frozenset[str]] = INTEGER_SCHEMES
    act_schemes: ClassVar[frozenset[str]] = frozenset({"int", "binary"})
    Params: ClassVar[type[BaseModel]] = _NoParams

    def __init__(self, name: str, params: BaseModel, **_: object) -> None:
        self.name = name
        self.params = params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    # -- precision -------------------------------------------------------------------------
    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        """Precision limits of the datapath beyond the scheme sets (override per kind)."""
        return []

    def check(self, layer: str, weight_bits: int, act_bits: int, weight_scheme: str = "int",
              act_scheme: str = "int") -> None:
        """Raise :class:`MappingError` if layer ``layer``'s operands cannot run on this PE."""
        problems = []
        for what, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
            if not (isinstance(bits, int) and bits >= 1):
                problems.append(f"{what} must be a positive integer (got {bits!r})")
        for what, scheme, ok in (("weight", weight_scheme, self.weight_schemes),
                                 ("activation", act_scheme, self.act_schemes)):
            if scheme not in ok:
                problems.append(f"{what} scheme must be one of {sorted(ok)} (got {scheme!r})")
        if not problems:
            problems = self._problems(weight_bits, act_bits, weight_scheme, act_scheme)
        if problems:
            raise MappingError(f"layer {layer!r} cannot run on pe {self.kind!r}: "
                               + "; ".join(problems))

    # -- rate ------------------------------------------------------------------------------
    def pack(self, weight_bits: int, act_bits: int) -> int:
        """Operand pairs along K that one PE reduces per cycle."""
        return 1

    def stream_cycles_per_value(self, weight_bits: int, act_bits: int) -> int:
        """Cycles a PE spends on each streamed value (or word of ``pack`` values)."""
        return 1

    def gemm_view(self, M: int, K: int, N: int, weight_bits: int, act_bits: int) -> GemmView:
        """The array's view of an ``M x K @ K x N`` GEMM (module docstring, closed form)."""
        return GemmView(M, -(-K // self.pack(weight_bits, act_bits)), N,
                        self.stream_cycles_per_value(weight_bits, act_bits))

    def macs_per_pe_per_cycle(self, weight_bits: int, act_bits: int) -> float:
        return self.pack(weight_bits, act_bits) / self.stream_cycles_per_value(weight_bits,
                                                                               act_bits)

    def weight_storage_bits(self, weight_bits: int) -> float:
        """Bits a weight occupies in memory (``bfp`` adds its share of the block exponent)."""
        return float(weight_bits)

    # -- actions ---------------------------------------------------------------------------
    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        return {"mac": M * K * N}

    def actions(self, M: int, K: int, N: int, weight_bits: int, act_bits: int,
                codebook_size: int | None = None) -> dict[str, int]:
        """Dense arithmetic action counts of one ``M x K @ K x N`` GEMM on this PE kind."""
        out = self._arith_actions(M, K, N, weight_bits, act_bits)
        if codebook_size is not None:
            out["codebook_read"] = M * K * N
        return out


@_register("mac")
class MacPE(PEKind):
    """Integer or floating-point multiply-accumulate, one per cycle (the SCALE-Sim PE).

    Integer operands up to 32 bits; floating point at 8, 16 or 32 bits. Energy by width:
    Horowitz, ISSCC 2014 (../shared/reference/energy.md).
    """

    citation = "Horowitz, 'Computing's energy problem', ISSCC 2014"
    weight_schemes = INTEGER_SCHEMES | {"fp"}
    act_schemes = frozenset({"int", "binary", "fp"})

    def _problems(self, weight_bits: int, act_bits: int, weight_scheme: str,
                  act_scheme: str) -> list[str]:
        out = []
        for what, bits, scheme in (("weight_bits", weight_bits, weight_scheme),
                                   ("act_bits", act_bits, act_scheme)):
            if scheme == "fp" and bits not in (8, 16, 32):
                out.append(f"floating-point {what} must be 8, 16 or 32 (got {bits})")
            elif bits > 32:
                out.append(f"{what} must be at most 32 (got {bits})")
        return out


@_register("shift")
class ShiftPE(PEKind):
    """Power-of-two weights: a barrel shift of the activation by the weight's exponent, an add.

    A weight is ``0`` or ``sign * 2**e``; it is stored in ``weight_bits`` = 1 sign bit plus an
    exponent field of ``weight_bits - 1`` bits with one code reserved for zero, so
    ``0 <= e <= 2**(weight_bits - 1) - 2`` (scale factors are applied outside the array, as
    Miyashita et al. apply their full-scale range). One shift-add per cycle: cycles as ``mac``.
    Miyashita, Lee, Murmann, arXiv:1603.01025 (2016); INQ: Zhou et al., ICLR 2017.
    """

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


@_register("xnor")
class XnorPE(PEKind):
    """Binary weights and activations: XNOR and popcount over a word of operands per cycle.

    ``+1``/``-1`` are coded as bits ``1``/``0``; a PE reduces ``word_bits`` pairs per cycle as
    ``2 * popcount(xnor(a, w) & valid) - popcount(valid)`` (the last word of a row is masked).
    So K shrinks to ``ceil(K / word_bits)`` words. Rastegari et al., XNOR-Net, ECCV 2016;
    Umuroglu et al., FINN, FPGA 2017 (SIMD lanes of XNOR-popcount per PE).
    """

    citation = "Rastegari et al. (XNOR-Net), ECCV 2016; Umuroglu et al. (FINN), FPGA 2017"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        word_bits: int = Field(default=64, ge=1, le=64, strict=True)

    weight_schemes = frozenset({"binary", "int"})

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


@_register("ternary")
class TernaryPE(PEKind):
    """Ternary weights {-1, 0, +1} (times a per-layer scale applied outside): add, sub or skip.

    One add/subtract per cycle, so cycles as ``mac``; a zero weight gates the adder (the
    sparsity model prices it). Li, Zhang, Liu, "Ternary Weight Networks", arXiv:1605.04711.
    """

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


@_register("bitserial")
class BitSerialPE(PEKind):
    """Bit-serial activations (Stripes): one activation bit plane per cycle, ``lanes`` wide.

    Each PE holds ``lanes`` serial lanes along K; per cycle each lane ANDs one activation bit
    with its bit-parallel weight and an adder tree sums the lanes, shifted by the bit position
    (two's complement: the top plane is subtracted). A value thus occupies ``act_bits`` cycles:
    ``s = act_bits``, ``K' = ceil(K / lanes)``. Stripes' serial inner-product unit is
    ``lanes = 16`` against a 16-bit baseline; ``lanes = b`` matches a b-bit ``mac`` array at
    b-bit activations and runs ``b / act_bits`` times faster below. Judd et al., "Stripes:
    Bit-Serial Deep Neural Network Computing", MICRO 2016.
    """

    citation = "Judd et al. (Stripes), MICRO 2016"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        lanes: int = Field(default=1, ge=1, le=64, strict=True)
        max_weight_bits: int = Field(default=16, ge=1, le=32, strict=True)
        max_act_bits: int = Field(default=16, ge=1, le=32, strict=True)

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

    def stream_cycles_per_value(self, weight_bits: int, act_bits: int) -> int:
        return act_bits

    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        return {"bit_serial_step": M * K * N * act_bits}


BRICK_WIDTHS = (2, 4, 8)


def brick_width(bits: int) -> int:
    """Operand width a Bit Fusion unit fuses for ``bits`` (1-bit operands use 2-bit bricks)."""
    return next(w for w in BRICK_WIDTHS if bits <= w)


@_register("bitfusion")
class BitFusionPE(PEKind):
    """Bit Fusion: 16 2-bit BitBricks per PE fuse into ``F = 64 / (w̄ * ā)`` multipliers.

    A Fusion Unit holds 16 BitBricks (2b x 2b signed/unsigned multipliers); a ``w̄ x ā``
    product takes ``(w̄/2)(ā/2)`` bricks, so 1 (8x8), 2 (8x4), 4 (4x4, 8x2), 8 (4x2) or 16
    (2x2) fused multipliers run per cycle; widths round up to 2, 4 or 8 (16-bit needs temporal
    fusion, not modelled). We model the fused multipliers of one unit as reducing consecutive
    K through the unit's shift-add tree into one partial sum (our reading of the Fusion Unit's
    adder tree), so ``K' = ceil(K / F)``. Sharma et al., "Bit Fusion", ISCA 2018.
    """

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


@_register("bfp")
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

    citation = "Drumond et al. NeurIPS 2018; Darvish Rouhani et al. (MSFP), NeurIPS 2020"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
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


__all__ = ["BRICK_WIDTHS", "PE_KINDS", "SCHEMES", "GemmView", "PEKind", "brick_width",
           "pe_kind"]
