"""Start-up cost (issue 12, items 5 and 6): ``import simulator``, the public API's names, and
``approxsim run`` of LeNet-5, each in a fresh interpreter, beside the libraries every run needs.

Run by hand (``make bench``); **machine-dependent**. Each row is the minimum over ``--runs``
fresh processes of their wall time and of their CPU time (user + system, from
``RUSAGE_CHILDREN``: steadier than wall time on a loaded machine). Two columns of each:
with the package's bytecode caches (``__pycache__``, as every run after the first on a user's
machine) and without them (``PYTHONDONTWRITEBYTECODE=1`` and no caches: every module compiled
from source, as in an environment that forbids writing them). Installed libraries keep their
caches in both. ``import pydantic`` alone defers most of pydantic; the floor row loads what
defining a model needs. Target (issue 12): ``import simulator`` under 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LENET = ["-m", "simulator", "run", "arch_configs/scalesim_32x32_os.yaml",
         "workloads/networks/lenet5.yaml"]
CASES = {
    "bare interpreter (`python -c pass`)": ["-c", "pass"],
    "`import numpy, pydantic, yaml, simpy`": ["-c", "import numpy, pydantic, yaml, simpy"],
    "numpy + yaml + pydantic's `BaseModel` + simpy (the floor of a simulation)":
        ["-c", "import numpy, yaml, simpy\nfrom pydantic import BaseModel"],
    "`import simulator`": ["-c", "import simulator"],
    "`from simulator import simulate, load_arch, load_workload`":
        ["-c", "from simulator import simulate, load_arch, load_workload"],
    "`approxsim run` scalesim_32x32_os.yaml lenet5.yaml": LENET,
}


def _clear_caches() -> None:
    for d in (ROOT / "simulator").rglob("__pycache__"):
        shutil.rmtree(d, ignore_errors=True)


def once(args: list[str], cached: bool) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh interpreter running ``args``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if cached:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        _clear_caches()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per row (minimum)")
    args = ap.parse_args()
    once(["-c", "import simulator.cli"], cached=True)  # write the bytecode caches
    print("| start-up (fresh interpreter) | wall, cached | CPU, cached | wall, no caches | "
          "CPU, no caches |")
    print("|---|---|---|---|---|")
    for label, argv in CASES.items():
        cols = []
        for cached in (True, False):
            runs = [once(argv, cached) for _ in range(args.runs)]
            cols += [min(r[0] for r in runs), min(r[1] for r in runs)]
        print(f"| {label} | " + " | ".join(f"{v:.3f} s" for v in cols) + " |", flush=True)
    once(["-c", "import simulator.cli"], cached=True)  # leave the caches in place


if __name__ == "__main__":
    main()
