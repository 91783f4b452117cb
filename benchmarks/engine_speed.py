"""Simulation cost that grows with distinct work (issue 12): every case of the issue's table,
re-measured, with its target; then the cost growth vs layers, tokens and array size.

Run by hand (``make bench``); the figures are **machine-dependent** wall times of
``simulate()`` (workload lowering excluded) and the peak resident memory of a fresh process
per case (``ru_maxrss``, the whole Python process incl. its imports). Quoted in the README's
"Speed" section.

Cases: ResNet-50 (``workloads/networks/resnet50.yaml``) on the 512 KB-SRAM, 25.6 GB/s array of
``benchmarks/speed.py``; LLaMA-2-7B-shaped decoder blocks (``workloads/llm/llama2_7b.yaml``
with ``layers`` blocks: embedding, the blocks, final norm and lm_head of the last position,
every layer written out: ``simulator.llm.expanded``) on ``arch_configs/llm_128x128_ws.yaml``
resized to R x R PEs (16 MiB SRAM, 460 GB/s HBM); a decode step = one token at context
2048; a 10,000-layer synthetic chain of linear layers and adds of 48 distinct shapes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def resnet_arch(rows: int, dataflow: str) -> Any:
    from simulator import parse_arch

    return parse_arch({
        "name": f"bench_{rows}x{rows}_{dataflow}", "clock_mhz": 1000,
        "pe_array": {"impl": "systolic", "rows": rows, "cols": rows, "dataflow": dataflow},
        "buffers": {b: {"impl": "sram", "size_kb": 512, "word_bits": 8 if b != "ofmap" else 32,
                        "bandwidth_words": 4 * rows} for b in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": 25.6, "latency_ns": 100,
                 "energy_pj_per_bit": 8.0}})


def llm_arch(rows: int) -> Any:
    from simulator import parse_arch
    from simulator.files import read_yaml

    d = read_yaml(ROOT / "arch_configs" / "llm_128x128_ws.yaml")
    d["pe_array"] = {**d["pe_array"], "rows": rows, "cols": rows}
    d["name"] = f"llm_{rows}x{rows}_ws"
    return parse_arch(d)


def llama(layers: int, phase: str = "prefill", tokens: int = 2048, context: int = 2048) -> Any:
    from simulator.files import read_yaml
    from simulator.llm import expanded
    from simulator.workload.llm import parse_llm, phases

    d = read_yaml(ROOT / "workloads" / "llm" / "llama2_7b.yaml")
    d["layers"] = layers
    d["phases"] = {"prefill": {"tokens": tokens}, "decode": {"steps": 1, "context": context}}
    return expanded({p.name: p for p in phases(parse_llm(d))}[phase])


def synthetic(n: int = 10_000) -> Any:
    """A chain of ``n`` layers: linear layers of 48 distinct shapes, every fourth an add."""
    from simulator.workload.layer import Layer, Workload

    dims, toks = (256, 512, 1024, 2048), (16, 64, 256)
    layers = []
    for i in range(n):
        if i % 4 == 3:
            m = toks[i % 3] * dims[i % 4]
            layers.append(Layer(f"add{i}", "add", "vector", ifmap_elements=2 * m,
                                ofmap_elements=m, vector_ops=m))
            continue
        M, K, N = toks[i % 3], dims[(i // 3) % 4], dims[(i // 12) % 4]
        layers.append(Layer(f"fc{i}", "linear", "gemm", M=M, K=K, N=N, ifmap_elements=M * K,
                            filter_elements=K * N, ofmap_elements=M * N))
    return Workload("synthetic", tuple(layers))


CASES: dict[str, tuple[str, Any, Any, float | None]] = {
    # key: (label, arch factory, workload factory, target wall s)
    "resnet_os": ("ResNet-50, 32x32 os, 512 KB SRAMs", lambda: resnet_arch(32, "os"),
                  lambda: _resnet(), 0.05),
    "resnet_ws": ("ResNet-50, 32x32 ws, 512 KB SRAMs", lambda: resnet_arch(32, "ws"),
                  lambda: _resnet(), 0.05),
    "resnet_is": ("ResNet-50, 32x32 is, 512 KB SRAMs", lambda: resnet_arch(32, "is"),
                  lambda: _resnet(), 0.05),
    "layer32": ("1 LLaMA-7B-shaped block, prefill 2048, 32x32 ws", lambda: llm_arch(32),
                lambda: llama(1), None),
    "layer8": ("1 LLaMA-7B-shaped block, prefill 2048, 8x8 ws", lambda: llm_arch(8),
               lambda: llama(1), None),
    "prefill128": ("32 blocks, prefill 2048, 128x128 ws", lambda: llm_arch(128),
                   lambda: llama(32), 1.0),
    "prefill8": ("32 blocks, prefill 2048, 8x8 ws", lambda: llm_arch(8), lambda: llama(32), 2.0),
    "decode8": ("32 blocks, one decode token at context 2048, 8x8 ws", lambda: llm_arch(8),
                lambda: llama(32, "decode"), 0.3),
    "synthetic": ("10,000-layer synthetic network, 32x32 ws", lambda: resnet_arch(32, "ws"),
                  lambda: synthetic(), 3.0),
}


def sparse_vgg() -> Any:
    """VGG-16 with 50 % weight and 0.5 activation density (seeded masks drawn per layer)."""
    import dataclasses

    from simulator import load_workload

    wl = load_workload(ROOT / "workloads" / "networks" / "vgg16.yaml")
    half = {"weight", "activation"}
    return dataclasses.replace(wl, layers=tuple(
        dataclasses.replace(la, **{op: dataclasses.replace(getattr(la, op), density=0.5)
                                   for op in half}) if la.kind == "gemm" else la
        for la in wl.layers))


SPARSE = {
    "eie_vgg": ("VGG-16, 50 % weights, 0.5 activations, EIE-like (arch_configs/eie_like.yaml)",
                lambda: _bundled("eie_like"), sparse_vgg, None),
    "scnn_vgg": ("VGG-16, 50 % weights, 0.5 activations, SCNN-like (arch_configs/"
                 "scnn_like.yaml)", lambda: _bundled("scnn_like"), sparse_vgg, None),
}


def _bundled(name: str) -> Any:
    from simulator import load_arch

    return load_arch(ROOT / "arch_configs" / f"{name}.yaml")


def _resnet() -> Any:
    from simulator import load_workload

    return load_workload(ROOT / "workloads" / "networks" / "resnet50.yaml")


def _case(key: str, memo: bool, queue: Any) -> None:
    from simulator import simulate

    _, arch_f, wl_f, _ = {**CASES, **SPARSE}[key]
    arch, wl = arch_f(), wl_f()
    t0 = time.perf_counter()
    rep = simulate(arch, wl, memo=memo)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lay = rep.layers
    queue.put((wall, peak, len(lay), int(lay["folds"].sum()), int(lay["tiles"].sum()),
               wl.macs / wall))


def fresh(key: str, memo: bool = True) -> tuple[float, float, int, int, int, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_case, args=(key, memo, q))
    proc.start()
    out = q.get()
    proc.join()
    return out  # type: ignore[no-any-return]


def import_time() -> float:
    """Wall seconds of ``import simulator`` in a fresh interpreter, minus a bare start."""
    def run(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - t0

    bare = min(run("pass") for _ in range(3))
    return min(run("import simulator") for _ in range(3)) - bare


def table(memo_off: bool, sparse: bool) -> None:
    print("| case | layers | folds | tiles | wall | peak memory | simulated MACs/s | target |")
    print("|---|---|---|---|---|---|---|---|")
    for key, (label, _, _, target) in {**CASES, **(SPARSE if sparse else {})}.items():
        wall, peak, n, folds, tiles, rate = fresh(key)
        ok = "" if target is None else (f"< {target:g} s: " +
                                        ("met" if wall < target and peak < 300 else "missed"))
        print(f"| {label} | {n:,} | {folds:,} | {tiles:,} | {wall:.3f} s | {peak:.0f} MB | "
              f"{rate:.2e} | {ok} |", flush=True)
    if memo_off:
        wall, peak, *_ = fresh("prefill128", memo=False)
        print(f"| 32 blocks, prefill 2048, 128x128 ws, memo off (every layer) | | | | "
              f"{wall:.3f} s | {peak:.0f} MB | | |")
    t = import_time()
    print(f"| `import simulator` (fresh interpreter, minus a bare start) | | | | {t:.3f} s | | "
          f"| < 0.3 s: {'met' if t < 0.3 else 'missed'} |")


def engines() -> None:
    """Per-tile cost of the engine: SimPy itself vs its replay (simulator/timeline.py), tile
    by tile and with tile runs, on the tile schedules of ResNet-18 on 8x8 and 32x32 ws
    arrays with 32 KB buffers (many tiles per layer, as in the sweep benchmark's small
    points); every schedule's timing is checked equal between the three."""
    import simulator.simulation as simulation
    from simulator import load_workload, parse_arch, simulate
    from simulator.engine import run_tiles

    wl = load_workload(ROOT / "workloads" / "networks" / "resnet18.yaml")
    print("\n| engine on ResNet-18's tiles | array | layers | tiles | SimPy | replay | "
          "replay + tile runs | per tile (SimPy / replay) |")
    print("|---|---|---|---|---|---|---|---|")
    for rows in (8, 32):
        arch = parse_arch({
            "name": f"bench_{rows}_small", "clock_mhz": 1000,
            "pe_array": {"impl": "systolic", "rows": rows, "cols": rows, "dataflow": "ws"},
            "buffers": {b: {"impl": "sram", "size_kb": 32, "word_bits": 8,
                            "bandwidth_words": 4 * rows} for b in ("ifmap", "filter", "ofmap")},
            "dram": {"impl": "dram", "bandwidth_gb_per_s": 12.8, "latency_ns": 50,
                     "channels": 2, "energy_pj_per_bit": 8.0}})
        seen: list[tuple[Any, Any, dict[str, int]]] = []
        real = simulation.run_tiles

        def keep(tiles: Any, dram: Any, _seen: list[Any] = seen, _real: Any = real,
                 **kw: int) -> Any:
            _seen.append((tiles, dram, kw))
            return _real(tiles, dram, **kw)

        simulation.run_tiles = keep  # type: ignore[assignment]
        try:
            simulate(arch, wl, memo=False)
        finally:
            simulation.run_tiles = real
        walls = []
        for opts in ({"reference": True, "runs": False}, {"runs": False}, {}):
            t0 = time.perf_counter()
            out = [run_tiles(t, d, **kw, **opts) for t, d, kw in seen]  # type: ignore[arg-type]
            walls.append(time.perf_counter() - t0)
            if len(walls) == 1:
                ref = out
            elif out != ref:
                raise SystemExit("engines disagree")
        n = sum(t.n_tiles for t, _, _ in seen)
        print(f"| | {rows}x{rows} ws, 32 KB | {len(seen)} | {n:,} | {walls[0]:.3f} s | "
              f"{walls[1]:.3f} s | {walls[2]:.3f} s | {walls[0] / n * 1e6:.1f} / "
              f"{walls[1] / n * 1e6:.1f} us |", flush=True)


def growth() -> None:
    """Time vs layers, tokens and array size, in this process (second run of each: warm)."""
    from simulator import simulate

    def measure(arch: Any, wl: Any) -> tuple[float, int, int]:
        simulate(arch, wl)
        t0 = time.perf_counter()
        rep = simulate(arch, wl)
        return (time.perf_counter() - t0, int(rep.layers["folds"].sum()),
                int(rep.layers["tiles"].sum()))

    print("\n| growth | value | folds | tiles | wall |")
    print("|---|---|---|---|---|")
    for layers in (1, 4, 16, 32):
        wall, f, t = measure(llm_arch(128), llama(layers))
        print(f"| blocks (prefill 2048, 128x128) | {layers} | {f:,} | {t:,} | {wall:.3f} s |",
              flush=True)
    for tokens in (256, 512, 1024, 2048):
        wall, f, t = measure(llm_arch(32), llama(1, tokens=tokens))
        print(f"| prefill tokens (1 block, 32x32) | {tokens} | {f:,} | {t:,} | {wall:.3f} s |",
              flush=True)
    for ctx in (512, 2048, 8192):
        wall, f, t = measure(llm_arch(8), llama(1, "decode", context=ctx))
        print(f"| decode context (1 block, 8x8) | {ctx} | {f:,} | {t:,} | {wall:.3f} s |",
              flush=True)
    for rows in (8, 16, 32, 64, 128):
        wall, f, t = measure(llm_arch(rows), llama(1, "decode"))
        print(f"| array side (1 block, decode at 2048) | {rows} | {f:,} | {t:,} | "
              f"{wall:.3f} s |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-growth", action="store_true", help="skip the cost-growth table")
    ap.add_argument("--memo-off", action="store_true",
                    help="also time the 32-block prefill with the layer memo off")
    ap.add_argument("--sparse-engines", action="store_true",
                    help="also time sparse VGG-16 on the EIE- and SCNN-like engines (minutes)")
    args = ap.parse_args()
    table(args.memo_off, args.sparse_engines)
    engines()
    if not args.no_growth:
        growth()


if __name__ == "__main__":
    main()
