"""The one interface of every compute unit: it maps a layer onto itself.

A compute unit (a systolic array with its PE kind, an EIE- or SCNN-like sparse engine, a SIMD
vector unit) is a class registered by name (:mod:`simulator.hardware.registries`) that
declares its ``Params`` and implements :class:`ComputeUnit`: ``map_layer`` turns a layer into
a :class:`~simulator.mapping.schedule.LayerMapping` (the tiles the SimPy engine runs, the
layer's closed-form cycles and its counts). Its ``ctx``
(:class:`~simulator.mapping.options.MappingContext`) says which operands are already on chip
(preloaded weights, an input kept by its producer: no loads), whether the output stays on
chip (no stores) and how much of each buffer is left for the layer; a unit must honour it.
The simulator never asks which class a unit is, so a new accelerator is one module here plus
its registration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from simulator.mapping.options import MappingContext
from simulator.mapping.schedule import Buffer, LayerMapping
from simulator.mapping.systolic import ArithmeticKind
from simulator.workload.layer import Layer


class ComputeUnit(Protocol):
    """Maps layers to tiles and counts (every unit: PE arrays and vector units)."""

    @property
    def name(self) -> str: ...

    @property
    def n_pes(self) -> int: ...

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int,
                  ctx: MappingContext = ...) -> LayerMapping: ...


class PEArray(ComputeUnit, Protocol):
    """A unit that runs the GEMM layers: its operand widths (for energy and area), its PE's
    arithmetic kind, and the width of the vector unit assumed beside it when an architecture
    names none (``None``: the architecture must name one)."""

    @property
    def weight_bits(self) -> int: ...

    @property
    def act_bits(self) -> int: ...

    @property
    def acc_bits(self) -> int: ...

    @property
    def kind(self) -> ArithmeticKind: ...

    @property
    def vector_lanes(self) -> int | None: ...

    def check_workload(self, layers: Iterable[Layer]) -> None:
        """Raise a :class:`~simulator.errors.MappingError` if the layers cannot all run on
        this unit together (an FPGA part whose units are all resident); most units accept
        any set of mappable layers."""


class ParamWidths:
    """Operand widths read from a unit's own validated ``params`` (a mixin for PE arrays)."""

    params: Any

    @property
    def weight_bits(self) -> int:
        return int(self.params.weight_bits)

    @property
    def act_bits(self) -> int:
        return int(self.params.act_bits)

    @property
    def acc_bits(self) -> int:
        return int(self.params.acc_bits)

    def check_workload(self, layers: Iterable[Layer]) -> None:
        """Layers are mapped one at a time: any set of mappable layers runs."""


class ArithOps(NamedTuple):
    """An arithmetic action (or a unit's datapath) as real multiplies, adds and register bits:
    a unit that declares ``arith_ops() -> {action: ArithOps}`` has each action priced by the
    energy model's multiplier (at ``weight_bits x act_bits``) and adder (at ``acc_bits``)
    curves, and one that declares ``datapath() -> ArithOps`` is sized by the area model from
    them (:mod:`simulator.cost.models`, :mod:`simulator.cost.area`)."""

    multiplies: int
    adds: int
    register_bits: int = 0
