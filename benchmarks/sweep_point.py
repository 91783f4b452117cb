"""Cost of one sweep point in-process, split into the SimPy engine and everything else.

The 10,000-point ResNet-18 sweep (``workloads/sweeps/resnet18_arch_10k.yaml``,
``benchmarks/sweep.py``) must finish in 10 minutes on 2 workers: ~110 ms a point. This runs
its first ``--points`` points as a worker does (:func:`simulator.sweep.evaluate.run_point`,
chunks of 16 sharing one :class:`~simulator.memo.LayerCache`) and reports per point the
**CPU time** (``time.process_time``: steadier than wall time on a shared machine) of the whole
point, of the engine (:func:`simulator.engine.run_tiles`, timed around each call) and of the
rest (mapping, energy, report, the sweep's row); the minimum over ``--repeats`` runs.
**Machine-dependent.** ``--profile`` adds a cProfile of one run, without the engine's own
functions, sorted by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SWEEP = ROOT / "workloads" / "sweeps" / "resnet18_arch_10k.yaml"
CHUNK = 16


def points(n: int) -> tuple[list[Any], dict[str, Any]]:
    """The sweep's first ``n`` tasks (in the runner's order) and its loaded workloads."""
    from simulator.files import read_yaml
    from simulator.sweep.expand import expand
    from simulator.sweep.hashing import code_version
    from simulator.sweep.runner import _tasks
    from simulator.sweep.sources import Sources
    from simulator.sweep.spec import parse_sweep

    spec = parse_sweep(read_yaml(SWEEP), source=str(SWEEP), base_dir=SWEEP.parent)
    src = Sources(spec.seed, Path(tempfile.mkdtemp()), None, lambda *a: None)
    tasks = _tasks(expand(spec, src, code_version())[:n], spec)
    return tasks, {w.label: src.load(w) for w in spec.workloads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    import simulator.simulation as simulation
    from simulator.memo import LayerCache
    from simulator.sweep.evaluate import run_point

    tasks, loaded = points(args.points)
    engine = [0.0]
    run_tiles = simulation.run_tiles

    def timed(*a: Any, **k: Any) -> Any:
        t0 = time.process_time()
        try:
            return run_tiles(*a, **k)
        finally:
            engine[0] += time.process_time() - t0

    def go() -> None:
        for i in range(0, len(tasks), CHUNK):
            cache = LayerCache()
            for t in tasks[i:i + CHUNK]:
                row = run_point(t, loaded[t.workload], cache).row
                if row["error"] is not None:
                    raise SystemExit(f"point {t.hash[:12]}: {row['error']}")

    simulation.run_tiles = timed  # type: ignore[assignment]
    runs = []
    for _ in range(args.repeats):
        engine[0] = 0.0
        t0 = time.process_time()
        go()
        runs.append((time.process_time() - t0, engine[0]))
    simulation.run_tiles = run_tiles  # type: ignore[assignment]
    n = len(tasks)
    total, eng = min(runs, key=lambda r: r[0] - r[1])
    print(f"| {n} points of resnet18_arch_10k, CPU ms per point (min of {args.repeats}) "
          f"| whole | engine | outside the engine |")
    print("|---|---|---|---|")
    print(f"| this checkout | {total / n * 1e3:.1f} | {eng / n * 1e3:.1f} | "
          f"{(total - eng) / n * 1e3:.1f} |")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        go()
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(
            r"^(?!.*(simpy|engine\.py|tile_runs))", 40)


if __name__ == "__main__":
    main()
