"""PE kinds: what one processing element of the systolic array computes, and at what rate.

The interface and its registry live here; the kinds themselves in
:mod:`simulator.hardware.pe_kinds`.

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

**Closed form** (the integration into :mod:`simulator.mapping.systolic` is mechanical). With
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
Han et al. ICLR 2016; EIE, ISCA 2016). A kind reduces ``pack`` operand pairs per PE-step (a
packed word): its accumulator is read and written, and its partial sum moves, once per word
(:mod:`simulator.cost.actions`). ``number_format`` (``int``, ``fp``, ``bfp``) is the datapath's
arithmetic; a layer whose values are floating point needs an ``fp`` PE. Zero operands are
*not* removed here: gating and skipping are the sparsity model's business, applied on top of
these dense counts.

:mod:`simulator.validation.reference` moves real operands through a cycle-stepped array built
from these kinds and checks both the arithmetic and these closed forms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from simulator.errors import MappingError
from simulator.mapping.operands import GemmView
from simulator.registry import Registry

PE_KINDS: Registry[type[PEKind]] = Registry("pe_kind")

SCHEMES = frozenset({"int", "fp", "pow2", "binary", "ternary", "bfp"})
#: Schemes whose values are plain integers, which any integer datapath can consume.
INTEGER_SCHEMES = frozenset({"int", "pow2", "binary", "ternary"})


def register_kind(name: str) -> Callable[[type[PEKind]], type[PEKind]]:
    """Class decorator: register a PE kind under ``name`` (its ``kind``)."""
    def deco(cls: type[PEKind]) -> type[PEKind]:
        cls.kind = name
        return PE_KINDS.register(name)(cls)

    return deco


class _NoParams(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class PEKind:
    """Base of every PE kind: one multiply-accumulate-like operation per PE per cycle.

    Subclasses override ``weight_schemes``/``act_schemes``, ``_problems`` (precision limits),
    ``pack``/``stream_cycles_per_value`` (rate) and ``_arith_actions`` (what one MAC costs).
    """

    kind: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    weight_schemes: ClassVar[frozenset[str]] = INTEGER_SCHEMES
    act_schemes: ClassVar[frozenset[str]] = frozenset({"int", "binary"})
    #: operands whose precision a layer must declare on this kind: a layer without bits runs
    #: at the array's widths, which on a general datapath is a precision choice but on a
    #: datapath that computes only a few values (XNOR: +-1) would silently turn an
    #: unquantised layer into a different function
    must_declare: ClassVar[frozenset[str]] = frozenset()
    Params: ClassVar[type[BaseModel]] = _NoParams
    #: the actions ``_arith_actions`` counts (known without building the kind: the energy
    #: table's check reads them for every kind; tested equal to what each kind counts)
    arith_action_names: ClassVar[frozenset[str]] = frozenset({"mac"})

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
              act_scheme: str = "int", undeclared: frozenset[str] = frozenset()) -> None:
        """Raise :class:`MappingError` if layer ``layer``'s operands cannot run on this PE.

        ``undeclared``: the operands (``weight``, ``activation``) whose bits the layer did not
        give and that took the array's widths; those in :attr:`must_declare` are errors."""
        missing = sorted(undeclared & self.must_declare)
        if missing:
            raise MappingError(
                f"layer {layer!r} cannot run on pe {self.kind!r}: it declares no "
                f"{' or '.join(missing)} bits, and running it at the array's "
                f"{weight_bits}/{act_bits} bits would be a different network: quantise it "
                "(a recipe) or declare its bits and scheme")
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

    @property
    def number_format(self) -> str:
        """The arithmetic of the datapath: ``int``, ``fp`` or ``bfp`` (energy and area curves
        follow it, :mod:`simulator.cost.models`)."""
        return "int"

    @property
    def serial_weights(self) -> bool:
        """True when the PE streams weight bits one per cycle, so that each layer's (and each
        filter's) weight precision sets its cycles natively; other kinds compute narrower
        weights padded to their datapath."""
        return False

    def weight_storage_bits(self, weight_bits: int) -> float:
        """Bits a weight occupies in memory (``bfp`` adds its share of the block exponent)."""
        return float(weight_bits)

    # -- actions ---------------------------------------------------------------------------
    def _arith_actions(self, M: int, K: int, N: int, weight_bits: int,
                       act_bits: int) -> dict[str, int]:
        return {"mac": M * K * N}

    @classmethod
    def action_names(cls) -> frozenset[str]:
        """Every action :meth:`actions` may count on this kind."""
        return cls.arith_action_names | {"codebook_read"}

    def actions(self, M: int, K: int, N: int, weight_bits: int, act_bits: int,
                codebook_size: int | None = None) -> dict[str, int]:
        """Dense arithmetic action counts of one ``M x K @ K x N`` GEMM on this PE kind."""
        out = self._arith_actions(M, K, N, weight_bits, act_bits)
        if codebook_size is not None:
            out["codebook_read"] = M * K * N
        return out
