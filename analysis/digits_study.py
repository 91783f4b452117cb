"""Digits LeNet: every bundled recipe -> accuracy (measured) and cycles on a bundled array.

Run: ``.venv/bin/python analysis/digits_study.py`` (writes analysis/digits_study.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from simulator import load_arch, simulate
from simulator.frontend import compress, load_model
from simulator.frontend.trace_builder import weight_kib

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "arch_configs" / "edge_8x8.yaml"


def main() -> None:
    t0 = time.perf_counter()
    model, data, name = load_model("digits-lenet")
    train_s = time.perf_counter() - t0
    arch = load_arch(ARCH)
    rows = []
    for path in sorted((ROOT / "workloads" / "recipes").glob("*.yaml")):
        t = time.perf_counter()
        res = compress(model, path, data, name=name)
        secs = time.perf_counter() - t
        acc = res.trace.accuracy
        assert acc is not None
        rep = simulate(arch, res.trace.workload)
        table = res.table()
        rows.append({"recipe": path.stem, "baseline_acc": acc.baseline,
                     "compressed_acc": acc.compressed,
                     "weight_kib": table["w_kib_after"].sum(),
                     "weight_kib_fp32": sum(weight_kib(la.weight, la.filter_elements)
                                            for la in res.baseline.workload.layers
                                            if la.kind == "gemm"),
                     "total_cycles": int(rep.totals["total_cycles"]),
                     "compress_s": round(secs, 2)})
    df = pd.DataFrame(rows)
    text = (f"# Digits LeNet: recipes vs accuracy and cycles\n\nModel load/train "
            f"{train_s:.1f} s; held-out {acc.samples} samples; cycles on `{ARCH.name}` "
            f"(dense array: sparsity changes cycles only where the architecture skips).\n\n"
            + df.to_markdown(index=False, floatfmt=".4f") + "\n")
    (ROOT / "analysis" / "digits_study.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
