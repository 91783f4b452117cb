"""Running sweep points (in a Dask worker or in-process): one point -> its result rows.

A point that the simulator rejects (a :class:`~simulator.errors.SimulatorError`: a PE kind
that cannot run a layer's precision, an architecture that fails only in combination, an
unmappable layer) becomes a row with ``error`` and ``error_type`` and no results, never a
crash of the sweep. Any other exception is a bug in the simulator: it is recorded the same
way, with ``error_type = "internal"``, so one bad point cannot cost the other 9,999.

Point columns: the point's inputs (:meth:`Point.meta`, every axis a column), the accuracy
that goes with its workload, ``Report.totals`` (cycles, traffic, energy, TOPS/W, area, ...),
the energy categories of :mod:`simulator.sweep.breakdown` summed over layers, the
architecture's ``n_pes`` (of every PE array, summed), ``clock_mhz``, ``dram_bandwidth_gb_per_s``
and ``peak_tops`` (2 ops per MAC at the highest ``macs_per_pe_per_cycle`` of each PE array's
GEMM layers, summed over the arrays that ran one),
``notes`` (what the compute units said, e.g. per-filter bits padded to an array's width;
``None``: nothing), ``elapsed_s`` (wall time of the point, machine-dependent) and ``worker``
(the Dask worker that ran it, ``local`` in-process). Layer columns: the inputs again,
``Report.layers``, ``unit_n_pes`` (the PEs of the unit that ran the layer: with several PE
arrays, per-unit utilisation is ``sum(effectual_macs / macs_per_pe_per_cycle) /
(unit_n_pes x network cycles)``, as ``Report.units``) and the layer's energy categories.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.arch.config import parse_arch
from simulator.errors import SimulatorError
from simulator.memo import LayerCache
from simulator.report import LAYER_COLUMNS
from simulator.simulation import simulate
from simulator.sweep.breakdown import categories, total_categories
from simulator.sweep.sources import Loaded


@dataclass(frozen=True, slots=True)
class Task:
    """What a worker needs for one point: its architecture dict, workload key and inputs."""

    hash: str
    arch: Mapping[str, Any]
    workload: str
    meta: Mapping[str, Any]


@dataclass(slots=True)
class PointResult:
    """One point's row and its layers' rows (columns as lists)."""

    row: dict[str, Any]
    layers: dict[str, list[Any]] = field(default_factory=dict)


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = list(rows[0]) if rows else []
    return {k: [r[k] for r in rows] for k in keys}


def run_point(task: Task, loaded: Loaded, cache: LayerCache | None = None) -> PointResult:
    """Simulate one point; errors become the row's ``error`` (module docstring). ``cache``:
    layer results shared with other points (:mod:`simulator.memo`)."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {**task.meta, "accuracy": loaded.accuracy,
                           "baseline_accuracy": loaded.baseline_accuracy,
                           "accuracy_source": loaded.accuracy_source,
                           "error": None, "error_type": None}
    layers: dict[str, list[Any]] = {}
    try:
        arch = parse_arch(dict(task.arch), source=f"point {task.hash[:12]}")
        report = simulate(arch, loaded.workload, cache=cache)
        table = report.energy_table
        assert table is not None
        res = report.results
        cats = [categories(r, table) for r in res]
        rate: dict[str, float] = {}  # each PE array's highest rate over its GEMM layers
        for r in res:
            if r.unit != "vector_unit":
                rate[r.unit] = max(rate.get(r.unit, 0.0), r.macs_per_pe_per_cycle)
        arrays = {u: n for u, n in report.unit_pes.items() if u != "vector_unit"} \
            or {"pe_array": report.n_pes}
        peak_macs = sum(arrays.get(u, report.n_pes) * m for u, m in rate.items()) \
            or float(report.n_pes)
        dram = arch.dram.params
        totals = {("arch_name" if k == "arch" else k): v for k, v in report.totals.items()
                  if k != "workload"}
        row.update(totals, **total_categories(cats), n_pes=sum(arrays.values()),
                   clock_mhz=report.clock_mhz,
                   dram_bandwidth_gb_per_s=float(getattr(dram, "bandwidth_gb_per_s", math.nan)),
                   peak_tops=2.0 * peak_macs * report.clock_mhz * 1e6 / 1e12,
                   notes="; ".join(report.notes) or None)
        n = len(res)
        layers = {**{k: [v] * n for k, v in task.meta.items()},
                  "arch_name": [report.arch] * n,
                  **{c: [getattr(r, c) for r in res] for c in LAYER_COLUMNS if c != "energy_pj"},
                  "energy_pj": list(report.layer_energy_pj),
                  "unit_n_pes": [report.unit_pes.get(r.unit, report.n_pes) for r in res],
                  **_columns(cats)}
    except SimulatorError as exc:
        row.update(error=str(exc), error_type=type(exc).__name__)
    except Exception as exc:  # a bug: recorded (module docstring), never fatal to the sweep
        row.update(error=f"internal error: {type(exc).__name__}: {exc}", error_type="internal")
    row["elapsed_s"] = time.perf_counter() - t0
    return PointResult(row, layers)


def run_chunk(tasks: Sequence[Task], workloads: Mapping[str, Loaded]) -> list[PointResult]:
    """Run several points (one Dask task: fewer round trips than one task per point), sharing
    one layer memo: points that differ in a few axes reuse the layers those leave alike."""
    cache = LayerCache()
    return [run_point(t, workloads[t.workload], cache) for t in tasks]


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB (``ru_maxrss``: KiB on Linux)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1e6 if sys.platform == "darwin" else rss * 1024 / 1e6
