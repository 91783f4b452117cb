"""approxsim: a fast cycle-level simulator of DNN accelerators for approximated networks.

Public API::

    from simulator import load_arch, load_workload, simulate
    report = simulate(load_arch("arch_configs/scalesim_32x32_ws.yaml"),
                      load_workload("workloads/networks/resnet18.yaml"))
    report.layers      # pandas DataFrame, one row per layer
    report.totals      # whole-network totals
"""

from simulator.config import ArchConfig, load_arch, parse_arch
from simulator.errors import ConfigError, MappingError, SimulatorError, TraceError, WorkloadError
from simulator.report import LayerResult, Report
from simulator.simulation import simulate
from simulator.workload import Layer, Operand, Workload, load_workload, parse_network

__all__ = [
    "ArchConfig", "ConfigError", "Layer", "LayerResult", "MappingError", "Operand", "Report",
    "SimulatorError", "TraceError", "Workload", "WorkloadError", "load_arch", "load_workload",
    "parse_arch", "parse_network", "simulate",
]
__version__ = "0.1.0"
