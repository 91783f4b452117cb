"""LLaMA-2-7B prefill 2048 + 128 decode steps on the LLM array (the README's LLM row).

Prints the wall time of ``simulate_llm`` (machine-dependent), its peak resident memory and the
LLM figures. Each distinct layer is simulated once (``simulator/llm.py``): 2 phases, 32 blocks,
128 decode steps whose attention layers differ by their context length.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator import load_arch, parse_arch  # noqa: E402
from simulator.files import read_yaml  # noqa: E402
from simulator.frontend.llm_recipe import apply_recipe  # noqa: E402
from simulator.frontend.recipe import load_recipe  # noqa: E402
from simulator.llm import simulate_llm  # noqa: E402
from simulator.workload.llm import parse_llm  # noqa: E402


def main() -> None:
    ws = load_arch(ROOT / "arch_configs" / "llm_128x128_ws.yaml")
    os_ = parse_arch({**read_yaml(ROOT / "arch_configs" / "llm_128x128_ws.yaml"),
                      "name": "llm_128x128_os"} | {"pe_array": {
                          **read_yaml(ROOT / "arch_configs" / "llm_128x128_ws.yaml")["pe_array"],
                          "dataflow": "os"}})
    spec = parse_llm(read_yaml(ROOT / "workloads" / "llm" / "llama2_7b.yaml"))
    w4 = apply_recipe(spec, load_recipe(ROOT / "workloads" / "recipes" / "llm" /
                                        "w4a16-kv4.yaml"))
    for label, arch, s in ((f"fp16 on {ws.name}", ws, spec), (f"w4a16-kv4 on {ws.name}", ws, w4),
                           (f"fp16 on {os_.name}", os_, spec),
                           (f"w4a16-kv4 on {os_.name}", os_, w4)):
        t0 = time.perf_counter()
        rep = simulate_llm(arch, s)
        wall = time.perf_counter() - t0
        m = rep.metrics
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label}: simulate_llm {wall:.1f} s wall, peak RSS {peak:.0f} MB, "
              f"{len(rep.layers)} layer rows; TTFT {m['ttft_ms']:.1f} ms, TPOT "
              f"{m['tpot_ms']:.2f} ms, {m['tokens_per_s']:.1f} tokens/s, "
              f"{m['energy_per_token_uj'] / 1e3:.2f} mJ/token, KV cache "
              f"{m['kv_cache_bytes'] / 2**20:.0f} MiB, weights {m['weight_bytes'] / 2**30:.2f} GiB,"
              f" decode weight-traffic share {m['decode_weight_traffic_share']:.2f}")


if __name__ == "__main__":
    main()
