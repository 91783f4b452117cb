"""Workloads: what runs. Layers and operands (:mod:`.layer`), network specs (:mod:`.spec`),
SCALE-Sim topologies (:mod:`.topology`), compressed traces (:mod:`.trace`,
:mod:`.trace_reader`) and :func:`load_workload` (:mod:`.loader`)."""

from simulator.workload.layer import Layer, Operand, Workload
from simulator.workload.loader import load_workload

__all__ = ["Layer", "Operand", "Workload", "load_workload"]
