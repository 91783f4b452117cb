"""approxsim: a fast cycle-level simulator of DNN accelerators for approximated networks.

Public API::

    from simulator import load_arch, load_workload, simulate
    report = simulate(load_arch("arch_configs/scalesim_32x32_ws.yaml"),
                      load_workload("workloads/networks/resnet18.yaml"))
    report.layers      # pandas DataFrame, one row per layer
    report.totals      # whole-network totals
    sweep("workloads/sweeps/edge_dse.yaml", "results/edge")   # design-space exploration
"""

from typing import TYPE_CHECKING

from simulator.errors import (
    ConfigError,
    EnergyError,
    MappingError,
    SimulatorError,
    TraceError,
    WorkloadError,
)

if TYPE_CHECKING:
    import simulator.sweep as sweep
    from simulator.arch.config import ArchConfig, parse_arch
    from simulator.arch.loader import load_arch
    from simulator.cost.table import EnergyTable
    from simulator.cost.table_file import load_energy_table
    from simulator.report import LayerResult, Report
    from simulator.simulation import simulate
    from simulator.workload.layer import Layer, Operand, Workload
    from simulator.workload.loader import load_workload
    from simulator.workload.spec import parse_network
    from simulator.workload.trace import Trace, write_trace
    from simulator.workload.trace_reader import read_trace

__all__ = [
    "ArchConfig", "ConfigError", "EnergyError", "EnergyTable", "Layer", "LayerResult",
    "MappingError", "Operand", "Report", "SimulatorError", "Trace", "TraceError", "Workload",
    "WorkloadError", "compress", "load_arch", "load_energy_table", "load_workload",
    "parse_arch", "parse_network", "read_trace", "simulate", "sweep", "write_trace",
]
__version__ = "0.1.0"


def compress(*args: object, **kwargs: object) -> object:
    """Compress a model into a trace: :func:`simulator.frontend.compress` (needs the
    ``torch`` extra; imported lazily so the core never imports torch)."""
    from simulator.frontend import compress as _compress

    return _compress(*args, **kwargs)  # type: ignore[arg-type]


#: Names imported on first use, from the module that defines each: ``import simulator`` loads
#: only the errors (no numpy, pydantic, SimPy or pandas: a few ms), and the first name a
#: program asks for loads what that name needs (``simulate``: the whole pipeline but pandas;
#: ``load_workload``: the network-spec and trace models too). Dask, pyarrow and the frontend
#: load only with ``simulator.sweep`` and ``compress``.
_LAZY = {"ArchConfig": "simulator.arch.config", "parse_arch": "simulator.arch.config",
         "load_arch": "simulator.arch.loader", "EnergyTable": "simulator.cost.table",
         "load_energy_table": "simulator.cost.table_file", "LayerResult": "simulator.report",
         "Report": "simulator.report", "simulate": "simulator.simulation",
         "Layer": "simulator.workload.layer", "Operand": "simulator.workload.layer",
         "Workload": "simulator.workload.layer", "load_workload": "simulator.workload.loader",
         "parse_network": "simulator.workload.spec", "Trace": "simulator.workload.trace",
         "write_trace": "simulator.workload.trace",
         "read_trace": "simulator.workload.trace_reader"}


def __getattr__(name: str) -> object:
    """The lazily imported names of :data:`_LAZY` (each kept in the package's namespace once
    loaded), and ``simulator.sweep`` (a package you can call: ``simulator.sweep(SWEEP,
    RESULTS)``)."""
    import importlib

    if name == "sweep":
        return importlib.import_module("simulator.sweep")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
