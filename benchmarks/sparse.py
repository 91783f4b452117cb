"""Sparse benchmark (run by hand; figures quoted in the README).

ResNet-50 with 50 % unstructured weight sparsity and 0.5 activation density
(workloads/profiles/resnet50_sparse50.yaml, seeded random masks drawn at run time) on a 32x32
array that skips zeros in both operands, in each dataflow, each in a fresh process: wall time
(masks included), peak resident memory and simulated MACs per wall second. Target: under 2 s
and 1 GB.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _case(dataflow: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from simulator import load_workload, parse_arch, simulate

    arch = parse_arch({
        "name": f"skip_32x32_{dataflow}", "clock_mhz": 1000,
        "pe_array": {"impl": "systolic", "rows": 32, "cols": 32, "dataflow": dataflow,
                     "sparsity": {"weights": "skip", "activations": "skip",
                                  "weight_format": "bitmask"}},
        "buffers": {b: {"impl": "sram", "size_kb": 512, "word_bits": 8 if b != "ofmap" else 32,
                        "bandwidth_words": 128} for b in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": 25.6, "latency_ns": 100,
                 "energy_pj_per_bit": 8.0},
    })
    t0 = time.perf_counter()
    wl = load_workload(ROOT / "workloads" / "profiles" / "resnet50_sparse50.yaml")
    report = simulate(arch, wl)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = report.totals
    queue.put((wall, peak_mb, wl.macs / wall, t["total_cycles"], t["effectual_macs"] / wl.macs,
               float(report.layers["load_imbalance"].max())))


def main() -> None:
    ctx = mp.get_context("spawn")
    print("ResNet-50, 50 % weights / 0.5 activations, 32x32 skipping both operands")
    print(f"{'df':>3} {'wall_s':>7} {'peak_MB':>8} {'sim_MACs/s':>11} {'total_cycles':>13} "
          f"{'effectual':>9} {'max_imbalance':>13}")
    for df in ("os", "ws", "is"):
        q = ctx.Queue()
        proc = ctx.Process(target=_case, args=(df, q))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"benchmark case {df} failed (exit {proc.exitcode})")
        wall, peak, rate, cycles, eff, imb = q.get()
        print(f"{df:>3} {wall:7.2f} {peak:8.0f} {rate:11.2e} {cycles:13,d} {eff:9.3f} {imb:13.2f}")


if __name__ == "__main__":
    main()
