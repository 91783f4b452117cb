"""Cross-check against the real SCALE-Sim 3.0.0, run as a subprocess in its own environment.

SCALE-Sim 3.0.0 needs numpy < 2 and pandas 2.2, which cannot share an environment with the
project, so ``make scalesim-env`` builds ``.venv-scalesim`` and :func:`run_scalesim` calls
``tools/scalesim_driver.py`` (a script of the repository, not of the package) with that
interpreter and reads its JSON. It needs a source checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from simulator.arch.loader import load_arch
from simulator.errors import SimulatorError
from simulator.simulation import simulate
from simulator.workload.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tools" / "scalesim_driver.py"


def scalesim_python() -> Path:
    """The SCALE-Sim interpreter: ``$APPROXSIM_SCALESIM_PYTHON`` or ``.venv-scalesim``."""
    env = os.environ.get("APPROXSIM_SCALESIM_PYTHON")
    return Path(env) if env else REPO / ".venv-scalesim" / "bin" / "python"


def is_gemm_topology(topology: Path) -> bool:
    first = topology.read_text(encoding="utf-8").splitlines()[0]
    return first.replace(" ", "").lower().startswith("layer,m,n,k")


def run_scalesim(config: Path, topology: Path, python: Path | None = None) -> dict[str, object]:
    """Run the real SCALE-Sim on ``config`` and ``topology``; return its parsed reports."""
    py = python or scalesim_python()
    if not DRIVER.is_file():
        raise SimulatorError(f"the SCALE-Sim driver {DRIVER} is missing: the cross-check needs "
                             "a source checkout of approxsim")
    if not py.exists():
        raise SimulatorError(f"SCALE-Sim environment not found at {py}; run `make scalesim-env` "
                             "or set APPROXSIM_SCALESIM_PYTHON")
    with tempfile.TemporaryDirectory(prefix="approxsim-scalesim-") as logdir:
        cmd = [str(py), str(DRIVER), str(config), str(topology), logdir]
        if is_gemm_topology(topology):
            cmd.append("--gemm")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SimulatorError(f"SCALE-Sim failed on {config.name} / {topology.name}: "
                             f"{proc.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(proc.stdout))


def compare(config: Path, topology: Path, scalesim: dict[str, object]) -> pd.DataFrame:
    """Per-layer compute and total cycles of SCALE-Sim next to approxsim's on the same inputs."""
    report = simulate(load_arch(config), load_topology(topology))
    ours = report.layers.set_index("layer")
    rows = []
    for ref in scalesim["layers"]:  # type: ignore[attr-defined]
        mine = ours.loc[ref["layer"]]
        rows.append({
            "config": config.stem, "layer": ref["layer"],
            "scalesim_compute_cycles": int(ref["compute_cycles"]),
            "approxsim_compute_cycles": int(mine["compute_cycles"]),
            "compute_diff": int(mine["compute_cycles"]) - int(ref["compute_cycles"]),
            "scalesim_total_cycles": int(ref["total_cycles"]),
            "approxsim_total_cycles": int(mine["total_cycles"]),
            "scalesim_dram_read_words": int(ref["dram_ifmap_reads"])
            + int(ref["dram_filter_reads"]),
            "approxsim_dram_read_bytes": int(mine["dram_read_bytes"]),
        })
    return pd.DataFrame(rows)
