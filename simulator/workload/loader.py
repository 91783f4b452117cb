"""``load_workload(path)``: a workload from a file, by its kind."""

from __future__ import annotations

from pathlib import Path

from simulator.errors import WorkloadError
from simulator.files import read_yaml
from simulator.workload.layer import Workload
from simulator.workload.spec import parse_network
from simulator.workload.topology import load_topology
from simulator.workload.trace_reader import read_trace


def load_workload(path: str | Path, *, ofmap_rounding: str = "scalesim") -> Workload:
    """Load a network spec (``.yaml``), a SCALE-Sim topology (``.csv``) or a compressed
    workload trace (a directory or ``.zip``, :mod:`simulator.workload.trace`).

    ``ofmap_rounding`` applies to topology CSVs only: ``"scalesim"`` uses SCALE-Sim's
    ``ceil((H - F + S) / S)`` so cycle counts match it; ``"floor"`` uses the correct
    ``floor((H - F) / S) + 1`` (they differ when ``(H - F)`` is not a multiple of the stride).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() or suffix == ".zip":
        return read_trace(p).workload
    if suffix == ".csv":
        return load_topology(p, ofmap_rounding=ofmap_rounding)
    if suffix in (".yaml", ".yml"):
        data = read_yaml(p, WorkloadError)
        if isinstance(data, dict) and "pe_array" in data and "layers" not in data:
            raise WorkloadError(str(p), [("", "this looks like an architecture (it has "
                                              "`pe_array`), not a workload: the order is "
                                              "`approxsim run ARCH WORKLOAD` (arguments "
                                              "swapped?)")])
        return parse_network(data, source=str(p))
    if not p.exists():
        raise WorkloadError(str(p), [("", "file not found")])
    raise WorkloadError(str(p), [("", "unsupported workload: expected a network spec .yaml, "
                                      "a SCALE-Sim topology .csv or a trace dir/.zip")])
