"""Sweep benchmark (run by hand: ``make bench-sweep``; figures quoted in the README).

``workloads/sweeps/resnet18_arch_10k.yaml``: ResNet-18 on 10,000 architectures sampled from a
grid of array shape, dataflow, buffer sizes and DRAM bandwidth, on a Dask ``LocalCluster`` of
``--workers`` processes (default 2), into a fresh result store. Prints the wall time (cluster
start, expansion and store writes included), the simulation time and rate, the peak resident
memory of each worker and of the driving process, the store's size, and the time a rerun
takes to find every point done (the resume path). Target: under 10 minutes on 2 workers.

    .venv/bin/python benchmarks/sweep.py [--points 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "workloads" / "sweeps" / "resnet18_arch_10k.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)

    from simulator.files import read_yaml
    from simulator.sweep import ResultStore, parse_sweep, sweep

    data = read_yaml(SWEEP)
    data["sampling"]["random"]["n"] = args.points
    spec = parse_sweep(data, source=str(SWEEP), base_dir=SWEEP.parent)
    with tempfile.TemporaryDirectory(prefix="approxsim-bench-") as tmp:
        out = Path(tmp) / "store"
        t0 = time.perf_counter()
        s = sweep(spec, out, workers=args.workers)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = sweep(spec, out, workers=args.workers)
        resume = time.perf_counter() - t1
        pts = ResultStore.open(out).points()
        size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peaks = ", ".join(f"{v:.0f}" for v in s.worker_peak_rss_mb.values())
    per_point = pts["elapsed_s"]
    print(f"{s.points} points of ResNet-18 ({len(pts)} stored, {s.errors} with errors) on "
          f"{s.workers} local workers")
    print(f"wall {wall:.1f} s ({wall / 60:.2f} min) incl. cluster start and store writes; "
          f"simulating {s.simulate_s:.1f} s = {s.points_per_s:.1f} points/s")
    print(f"per point (in a worker): median {per_point.median() * 1e3:.0f} ms, "
          f"p95 {per_point.quantile(0.95) * 1e3:.0f} ms")
    print(f"peak memory per worker: {peaks} MB; driving process {main_mb:.0f} MB; "
          f"store {size_mb:.1f} MB")
    print(f"rerun (every point already done): {resume:.1f} s, {again.ran} run")


if __name__ == "__main__":
    main()
