"""Build component instances from a validated :class:`~simulator.config.ArchConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simulator.components.memory import Dram, Sram
from simulator.components.pe_array import SystolicArray
from simulator.components.registries import BUFFERS, DRAMS, PE_ARRAYS, VECTOR_UNITS
from simulator.components.sparse_arrays import EieArray, ScnnArray
from simulator.components.vector import Simd
from simulator.config import ArchConfig
from simulator.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Accelerator:
    """The instantiated hardware of one architecture."""

    arch: ArchConfig
    pe_array: SystolicArray | EieArray | ScnnArray
    buffers: Mapping[str, Sram]
    dram: Dram
    vector_unit: Simd


def build(arch: ArchConfig) -> Accelerator:
    """Instantiate every component of ``arch`` from its registry.

    Without a ``vector_unit`` in the file, a SIMD unit with as many lanes as the PE array has
    columns is assumed (the array's output row feeds it), as in SCALE-Sim-style designs that
    leave pooling to a post-processing unit beside the array.
    """
    pe = PE_ARRAYS.build("pe_array", arch.pe_array)
    buffers = {name: BUFFERS.build(name, spec) for name, spec in arch.buffers.items()}
    dram = DRAMS.build("dram", arch.dram, clock_mhz=arch.clock_mhz)
    if arch.vector_unit is not None:
        vec = VECTOR_UNITS.build("vector_unit", arch.vector_unit)
    elif isinstance(pe, SystolicArray):
        vec = Simd("vector_unit", Simd.Params(lanes=pe.cols))
    else:
        raise ConfigError(arch.source, [("vector_unit", f"required with pe_array impl "
                                                        f"{arch.pe_array.impl!r}")])
    return Accelerator(arch, pe, buffers, dram, vec)
