"""Hardware components, registered by name on import (no file scanning, no plug-in paths)."""

from simulator.components import memory, pe_array, pe_kinds, sparse_arrays, vector
from simulator.components.registries import BUFFERS, DRAMS, PE_ARRAYS, VECTOR_UNITS

__all__ = ["BUFFERS", "DRAMS", "PE_ARRAYS", "VECTOR_UNITS", "memory", "pe_array",
           "pe_kinds", "sparse_arrays", "vector"]
