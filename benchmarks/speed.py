"""Speed and memory benchmark (run by hand: ``make bench``; figures quoted in the README).

1. ResNet-50 (workloads/networks/resnet50.yaml) on 8x8, 32x32 and 128x128 arrays in the os, ws
   and is dataflows, each in a fresh process: wall time of ``simulate`` (load excluded) and the
   peak resident memory of the process. Targets: 32x32 under 1 s, peak under 500 MB.
2. If the SCALE-Sim environment exists (``make scalesim-env``): SCALE-Sim 3.0.0 and approxsim
   on the same ResNet-18 topology and 32x32 ws config, the first ``--layers`` layers (default 3;
   ``--layers 0`` = all 21, which takes SCALE-Sim several minutes), and the speed ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _case(rows: int, dataflow: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from simulator import load_workload, parse_arch, simulate

    arch = parse_arch({
        "name": f"bench_{rows}x{rows}_{dataflow}", "clock_mhz": 1000,
        "pe_array": {"impl": "systolic", "rows": rows, "cols": rows, "dataflow": dataflow},
        "buffers": {b: {"impl": "sram", "size_kb": 512, "word_bits": 8 if b != "ofmap" else 32,
                        "bandwidth_words": 4 * rows} for b in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": 25.6, "latency_ns": 100,
                 "energy_pj_per_bit": 8.0},
    })
    wl = load_workload(ROOT / "workloads" / "networks" / "resnet50.yaml")
    t0 = time.perf_counter()
    report = simulate(arch, wl)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiles = int(report.layers["tiles"].sum())
    queue.put((wall, peak_mb, tiles, report.totals["total_cycles"], wl.macs / wall))


def resnet50_table() -> None:
    ctx = mp.get_context("spawn")
    print("ResNet-50 (72 layers incl. pooling and adds), 512 KB SRAMs, 25.6 GB/s DRAM")
    print(f"{'array':>8} {'df':>3} {'wall_s':>8} {'peak_MB':>8} {'tiles':>7} "
          f"{'total_cycles':>13} {'sim_MACs/s':>11}")
    for rows in (8, 32, 128):
        for df in ("os", "ws", "is"):
            q = ctx.Queue()
            proc = ctx.Process(target=_case, args=(rows, df, q))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                raise SystemExit(f"benchmark case {rows}x{rows} {df} failed")
            wall, peak, tiles, cycles, rate = q.get()
            print(f"{rows:>4}x{rows:<3} {df:>3} {wall:8.3f} {peak:8.0f} {tiles:7d} "
                  f"{cycles:13,d} {rate:11.2e}")


def scalesim_comparison(layers: int) -> None:
    from simulator import load_arch, simulate
    from simulator.validation.scalesim import run_scalesim, scalesim_python
    from simulator.workload.topology import load_topology

    if not scalesim_python().exists():
        print("\nSCALE-Sim environment not found (make scalesim-env): comparison skipped")
        return
    cfg = ROOT / "workloads" / "scalesim" / "scalesim_32x32_ws.cfg"
    full = ROOT / "workloads" / "scalesim" / "resnet18.csv"
    lines = full.read_text().splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        topo = Path(tmp) / "resnet18_subset.csv"
        keep = lines if layers <= 0 else lines[: layers + 1]
        topo.write_text("\n".join(keep) + "\n")
        n = len(keep) - 1
        t0 = time.perf_counter()
        ref = run_scalesim(cfg, topo)
        t_ref = time.perf_counter() - t0
        arch = load_arch(cfg)
        t0 = time.perf_counter()
        wl = load_topology(topo)
        report = simulate(arch, wl)
        t_ours = time.perf_counter() - t0
    same = sum(int(a["compute_cycles"]) == int(b) for a, b in
               zip(ref["layers"], report.layers["compute_cycles"], strict=True))  # type: ignore[arg-type]
    print(f"\nResNet-18 ({n} layers), SCALE-Sim default 32x32 ws config:")
    print(f"  SCALE-Sim 3.0.0: {t_ref:8.2f} s (subprocess, save_disk_space=True)")
    print(f"  approxsim:       {t_ours:8.4f} s (load + simulate)")
    print(f"  speed-up:        {t_ref / t_ours:8.0f}x; compute cycles equal on {same}/{n} layers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=3,
                        help="ResNet-18 layers for the SCALE-Sim comparison (0 = all)")
    args = parser.parse_args()
    resnet50_table()
    scalesim_comparison(args.layers)


if __name__ == "__main__":
    main()
