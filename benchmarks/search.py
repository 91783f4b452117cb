"""The tiling search's cost per layer (run by hand: ``make bench``; figures quoted in the README).

ResNet-50 (workloads/networks/resnet50.yaml) on the benchmark's 32x32 array (512 KB SRAMs,
25.6 GB/s DRAM) in one dataflow: for every GEMM layer the candidates the search evaluates and
the wall time of mapping it with the search on (no memo) and off (the fixed order), the
difference being the search's cost; then the whole network with and without the memo that one
``simulate`` call shares between identical layers. Wall times are of this machine.

    .venv/bin/python benchmarks/search.py [--dataflow ws]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from simulator import load_workload, parse_arch, simulate
    from simulator.arch.accelerator import build
    from simulator.cost.table_file import table_for
    from simulator.mapping.options import MappingContext, MappingParams
    from simulator.simulation import map_layer, mapping_costs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataflow", default="ws", choices=["os", "ws", "is"])
    args = ap.parse_args()
    arch = parse_arch({
        "name": f"bench_32x32_{args.dataflow}", "clock_mhz": 1000,
        "pe_array": {"impl": "systolic", "rows": 32, "cols": 32, "dataflow": args.dataflow},
        "buffers": {b: {"impl": "sram", "size_kb": 512, "word_bits": 8 if b != "ofmap" else 32,
                        "bandwidth_words": 128} for b in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": 25.6, "latency_ns": 100,
                 "energy_pj_per_bit": 8.0}})
    acc = build(arch)
    costs = mapping_costs(table_for(arch, acc), acc)
    wl = load_workload(ROOT / "workloads" / "networks" / "resnet50.yaml")
    gemms = [layer for layer in wl.layers if layer.kind == "gemm"]
    print(f"ResNet-50 GEMM layers on 32x32 {args.dataflow} (search cost = mapping time with the "
          f"search minus without; no memo)")
    print(f"{'layer':28} {'M':>6} {'K':>5} {'N':>5} {'candidates':>10} {'search_ms':>9} "
          f"{'fixed_ms':>8}  mapping")
    total_search = total_fixed = 0.0
    for layer in gemms:
        times = {}
        for search in (True, False):
            ctx = MappingContext(params=MappingParams(search=search), costs=costs)
            t0 = time.perf_counter()
            m = map_layer(layer, acc, 0, ctx)
            times[search] = time.perf_counter() - t0
            if search:
                chosen = m
        total_search += times[True]
        total_fixed += times[False]
        tiles = "/".join(str(chosen.tile_dims[d]) for d in "MKN")
        print(f"{layer.name:28} {layer.M:6d} {layer.K:5d} {layer.N:5d} {chosen.candidates:10d} "
              f"{1e3 * (times[True] - times[False]):9.2f} {1e3 * times[False]:8.2f}  "
              f"{chosen.loop_order} {tiles}")
    print(f"sum over {len(gemms)} GEMM layers: {1e3 * (total_search - total_fixed):.0f} ms of "
          f"search, {1e3 * total_fixed:.0f} ms of mapping at the fixed order")
    simulate(arch, wl)  # warm-up
    t0 = time.perf_counter()
    simulate(arch, wl)
    print(f"whole simulate() of ResNet-50 (memo shares identical layers): "
          f"{time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
