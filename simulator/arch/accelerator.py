"""Build component instances from a validated :class:`~simulator.arch.config.ArchConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.arch.config import ArchConfig
from simulator.arch.placement import PLACEMENTS
from simulator.errors import ConfigError
from simulator.hardware.memory import Dram, Sram
from simulator.hardware.registries import BUFFERS, DRAMS, PE_ARRAYS, VECTOR_UNITS
from simulator.hardware.unit import ComputeUnit, PEArray
from simulator.hardware.vector import Simd


@dataclass(frozen=True, slots=True)
class Accelerator:
    """The instantiated hardware of one architecture: every unit behind its interface."""

    arch: ArchConfig
    pe_array: PEArray
    buffers: Mapping[str, Sram]
    dram: Dram
    vector_unit: ComputeUnit
    #: every PE array by its instance name (one, ``pe_array``, unless the architecture
    #: declares several); ``pe_array`` is the first
    units: Mapping[str, PEArray] = field(default_factory=dict)
    #: the placement rule of several arrays (:mod:`simulator.arch.placement`), else None
    placement: Any = None

    def __post_init__(self) -> None:
        if not self.units:
            object.__setattr__(self, "units", {"pe_array": self.pe_array})

    def unit(self, name: str) -> ComputeUnit:
        """A compute unit by instance name: a PE array or the vector unit."""
        return self.vector_unit if name == "vector_unit" else self.units[name]


def build(arch: ArchConfig) -> Accelerator:
    """Instantiate every component of ``arch`` from its registry.

    Without a ``vector_unit`` in the file, a SIMD unit as wide as the PE array's
    ``vector_lanes`` is assumed (a systolic array's output row feeds it, as in SCALE-Sim-style
    designs that leave pooling to a post-processing unit beside the array); units without a
    natural width need the file to name one.
    """
    units: dict[str, PEArray] = {name: PE_ARRAYS.build(name, spec)
                                 for name, spec in arch.units.items()}
    pe = next(iter(units.values()))
    buffers = {name: BUFFERS.build(name, spec) for name, spec in arch.buffers.items()}
    dram = DRAMS.build("dram", arch.dram, clock_mhz=arch.clock_mhz)
    vec: ComputeUnit
    if arch.vector_unit is not None:
        vec = VECTOR_UNITS.build("vector_unit", arch.vector_unit, act_bits=pe.act_bits)
    elif pe.vector_lanes is not None:
        vec = Simd("vector_unit", Simd.Params(lanes=pe.vector_lanes), act_bits=pe.act_bits)
    else:
        raise ConfigError(arch.source, [("vector_unit", f"required with pe_array impl "
                                                        f"{arch.pe_array.impl!r}")])
    placement = None if arch.placement is None else PLACEMENTS.build("placement",
                                                                     arch.placement)
    return Accelerator(arch, pe, buffers, dram, vec, units, placement)
