"""The registries of component kinds (one :class:`~simulator.registry.Registry` each)."""

from __future__ import annotations

from typing import Any

from simulator.registry import Registry

PE_ARRAYS: Registry[Any] = Registry("pe_array")
BUFFERS: Registry[Any] = Registry("buffer")
DRAMS: Registry[Any] = Registry("dram")
VECTOR_UNITS: Registry[Any] = Registry("vector_unit")
