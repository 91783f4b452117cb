"""Workloads: what runs. Layers and operands (:mod:`.layer`), network specs (:mod:`.spec`),
SCALE-Sim topologies (:mod:`.topology`), compressed traces (:mod:`.trace`,
:mod:`.trace_reader`) and :func:`load_workload` (:mod:`.loader`).

``load_workload`` is imported on first use: the simulation itself needs only the layers, so
importing :mod:`.layer` does not build the network-spec models (``import simulator`` start-up).
"""

from typing import TYPE_CHECKING

from simulator.workload.layer import Layer, Operand, Workload

if TYPE_CHECKING:
    from simulator.workload.loader import load_workload

__all__ = ["Layer", "Operand", "Workload", "load_workload"]


def __getattr__(name: str) -> object:
    if name == "load_workload":
        from simulator.workload.loader import load_workload

        return load_workload
    raise AttributeError(f"module 'simulator.workload' has no attribute {name!r}")
