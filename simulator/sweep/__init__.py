"""Design-space exploration: sweep files expanded into points, run locally or on Dask, results
in a resumable Parquet store (needs the ``sweep`` extra: dask[distributed], pyarrow).

::

    from simulator.sweep import sweep, load_sweep
    summary = sweep("workloads/sweeps/edge_dse.yaml", "results/edge", workers=2)
    ResultStore.open("results/edge").points()     # one row per point, every axis a column

Modules: sweep files (:mod:`~simulator.sweep.spec`), sampling and content hashes
(:mod:`~simulator.sweep.expand`, :mod:`~simulator.sweep.hashing`), workloads and the trace
cache (:mod:`~simulator.sweep.sources`), one point's rows (:mod:`~simulator.sweep.evaluate`,
:mod:`~simulator.sweep.breakdown`), the store (:mod:`~simulator.sweep.store`) and the runner
(:mod:`~simulator.sweep.runner`).
"""

import sys
import types
from typing import Any

from simulator.sweep.runner import ClusterError, SweepSummary
from simulator.sweep.runner import run_sweep as sweep
from simulator.sweep.spec import SweepError, SweepSpec, load_sweep, parse_sweep
from simulator.sweep.store import ResultStore, StoreError


class _CallableModule(types.ModuleType):
    """``simulator.sweep(...)`` is :func:`sweep`, while ``simulator.sweep`` stays this package
    (binding a function under the package's name would hide ``simulator.sweep.store`` & co.)."""

    def __call__(self, *args: Any, **kwargs: Any) -> SweepSummary:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["ClusterError", "ResultStore", "StoreError", "SweepError", "SweepSpec",
           "SweepSummary", "load_sweep", "parse_sweep", "sweep"]
