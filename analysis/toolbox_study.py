"""The approximation toolbox on the digits models: each method's measured top-1 accuracy next
to its weights, cycles and energy on the bundled edge architectures, baseline beside
compressed (simulator.frontend.compare), plus the tables behind them: activation-function
approximations by segments / entries, low rank's layers beside their dense originals, early
exits by threshold, the spread over input samples, and the units of a heterogeneous array.

Run: ``.venv/bin/python analysis/toolbox_study.py`` (writes analysis/toolbox_study.md;
``--check`` compares instead). The bundled models are trained from their seeds (deterministic
on the CPU) and their weights cached in ``$APPROXSIM_CACHE_DIR`` (default: the user cache
directory, as the CLI), so reruns skip the training; the figures do not depend on the cache.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.study_output import emit  # noqa: E402
from simulator import load_arch, simulate  # noqa: E402
from simulator.dynamic import exit_report, simulate_samples  # noqa: E402
from simulator.frontend import compress, load_model, load_recipe, parse_recipe  # noqa: E402
from simulator.frontend.compare import compare  # noqa: E402

CACHE = Path(os.environ.get("APPROXSIM_CACHE_DIR") or Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "approxsim")
ARCHS = {n: load_arch(ROOT / "arch_configs" / f"{n}.yaml")
         for n in ("edge_8x8", "edge_fft", "edge_xnor_int8", "edge_bitserial_w",
                   "cnvlutin_like_16x16_os")}
#: (method, recipe, model, architectures); a recipe given as a dict is written out here
METHODS: list[tuple[str, Any, str, tuple[str, ...]]] = [
    ("block-circulant b=4, dense blocks / FFT unit", "circulant4", "digits-lenet",
     ("edge_8x8", "edge_fft")),
    ("block-circulant b=16, FFT unit", {
        "name": "circulant16", "finetune": {"epochs": 10, "lr": 0.001},
        "steps": [{"method": "circulant", "block": 16,
                   "exclude": [{"position": "first"}, {"position": "last"}]}]},
     "digits-lenet", ("edge_fft",)),
    ("SVD rank by accuracy budget (1 point)", "lowrank-accuracy", "digits-lenet", ("edge_8x8",)),
    ("SVD rank by energy budget (50 %)", "lowrank-energy", "digits-lenet", ("edge_8x8",)),
    ("distillation, half-width student", "distill-half", "digits-lenet", ("edge_8x8",)),
    ("PWL 16 segments (tanh)", "pwl16", "digits-lenet-tanh", ("edge_8x8",)),
    ("PWL 16 segments (sigmoid)", "pwl16", "digits-lenet-sigmoid", ("edge_8x8",)),
    ("PWL 16 segments (SiLU)", "pwl16", "digits-lenet-silu", ("edge_8x8",)),
    ("PWL 16 segments (GELU, softmax, layernorm)", "pwl16", "digits-vit", ("edge_8x8",)),
    ("LUT 64 entries (GELU, softmax, layernorm)", "lut64", "digits-vit", ("edge_8x8",)),
    ("early exit, entropy < 0.4 (per inference)", "early-exit", "digits-lenet", ("edge_8x8",)),
    ("per-sample activation masks (mean of 16)", "sample-masks", "digits-lenet",
     ("cnvlutin_like_16x16_os",)),
    ("dynamic fixed point, 8 bits", "dynamic-fixed8", "digits-lenet", ("edge_8x8",)),
    ("adaptive per-filter bits: padded / bit-serial", "adaptive-precision", "digits-lenet",
     ("edge_8x8", "edge_bitserial_w")),
    ("fine-grained ternary (FGQ, groups of 4)", "ternary-fgq", "digits-lenet", ("edge_8x8",)),
    ("XNOR-Net, 8-bit first/last: one array / XNOR + int8", "xnor", "digits-lenet",
     ("edge_8x8", "edge_xnor_int8")),
]
APPROX = [("pwl", n) for n in (4, 8, 16)] + [("lut", n) for n in (16, 64, 256)]
FUNCTIONS = [("tanh", "digits-lenet-tanh"), ("sigmoid", "digits-lenet-sigmoid"),
             ("silu", "digits-lenet-silu"), ("gelu", "digits-vit"), ("softmax", "digits-vit"),
             ("layernorm", "digits-vit")]


def model(name: str, memo: dict[str, Any] = {}) -> tuple[Any, Any]:  # noqa: B006 (a memo)
    if name not in memo:
        net, data, _ = load_model(name, cache_dir=CACHE)
        memo[name] = (net, data)
    return memo[name]  # type: ignore[no-any-return]


def recipe(ref: Any) -> Any:
    return parse_recipe(ref) if isinstance(ref, dict) else load_recipe(ref)


def methods() -> tuple[pd.DataFrame, dict[str, Any]]:
    rows, kept = [], {}
    for label, ref, mname, archs in METHODS:
        net, data = model(mname)
        res = compress(net, recipe(ref), data, name=mname)
        kept[label] = res
        for a in archs:
            cmp = compare(ARCHS[a], res).model.set_index("figure")
            cyc, en = cmp.loc["cycles"], cmp.loc["energy uJ"]
            wl = res.trace.workload
            if wl.exits is not None:  # per inference, weighted by the measured exit rates
                cyc = cmp.iloc[-2]
                en = cmp.iloc[-1]
            if any(la.activation.mask_set is not None for la in wl.layers):
                net_s = simulate_samples(ARCHS[a], wl).network
                cyc = pd.Series({"baseline": cyc["baseline"],
                                 "compressed": float(net_s["total_cycles"].mean())})
            rows.append({
                "method": label, "recipe": res.trace.recipe["name"], "model": mname, "arch": a,
                "top1_baseline": cmp.at["top-1 accuracy", "baseline"],
                "top1_compressed": cmp.at["top-1 accuracy", "compressed"],
                "weight_kib": f"{cmp.at['weight KiB', 'baseline']:.1f} -> "
                              f"{cmp.at['weight KiB', 'compressed']:.1f}",
                "cycles": f"{cyc['baseline']:,.0f} -> {cyc['compressed']:,.0f}",
                "energy_uj": f"{en['baseline']:.3f} -> {en['compressed']:.3f}",
                "dram_kb": f"{cmp.at['DRAM bytes', 'baseline'] / 1e3:.1f} -> "
                           f"{cmp.at['DRAM bytes', 'compressed'] / 1e3:.1f}"})
    return pd.DataFrame(rows), kept


def approximations() -> pd.DataFrame:
    rows = []
    arch = ARCHS["edge_8x8"]
    for fn, mname in FUNCTIONS:
        net, data = model(mname)
        for scheme, n in APPROX:
            key = "segments" if scheme == "pwl" else "entries"
            res = compress(net, parse_recipe({"name": f"{scheme}{n}", "steps": [
                {"method": scheme, key: n, "bits": 8, "layers": {"type": fn}}]}), data,
                name=mname)
            vec = [la for la in res.trace.workload.layers if la.approx is not None]
            names = {la.name for la in vec}
            layers = simulate(arch, res.trace.workload).layers
            base = simulate(arch, res.baseline.workload).layers
            sel, bsel = layers[layers["layer"].isin(names)], base[base["layer"].isin(names)]
            rows.append({"function": fn, "model": mname, "scheme": scheme, "entries": n,
                         "bits": 8, "table_bits": vec[0].approx.table_bits,  # type: ignore[union-attr]
                         "top1_exact": res.trace.accuracy.baseline,  # type: ignore[union-attr]
                         "top1_approx": res.trace.accuracy.compressed,  # type: ignore[union-attr]
                         "vector_cycles": f"{int(bsel['compute_cycles'].sum()):,} -> "
                                          f"{int(sel['compute_cycles'].sum()):,}",
                         "energy_nj": f"{bsel['energy_pj'].sum() / 1e3:.1f} -> "
                                      f"{sel['energy_pj'].sum() / 1e3:.1f}"})
    return pd.DataFrame(rows)


def main() -> None:
    table, kept = methods()
    approx = approximations()
    lowrank = compare(ARCHS["edge_8x8"], kept["SVD rank by energy budget (50 %)"]).layers
    exits = kept["early exit, entropy < 0.4 (per inference)"]
    er = exit_report(simulate(ARCHS["edge_8x8"], exits.trace.workload), exits.trace.workload)
    by_t = er.thresholds.merge(er.exits[er.exits["exit"] == 0][["threshold", "rate"]]
                               .rename(columns={"rate": "exit0_rate"}), on="threshold")
    by_t = by_t[["threshold", "accuracy", "exit0_rate", "mean_cycles", "std_cycles",
                 "p50_cycles", "p90_cycles", "max_cycles", "cycles_vs_full", "energy_vs_full"]]
    masks = kept["per-sample activation masks (mean of 16)"]
    sr = simulate_samples(ARCHS["cnvlutin_like_16x16_os"], masks.trace.workload)
    spread = sr.summary[["layer", "act_density_mean", "act_density_std", "load_imbalance_mean",
                         "load_imbalance_std", "load_imbalance_min", "load_imbalance_max",
                         "total_cycles_mean", "total_cycles_std", "total_cycles_min",
                         "total_cycles_max"]]
    xnor = kept["XNOR-Net, 8-bit first/last: one array / XNOR + int8"]
    units = simulate(ARCHS["edge_xnor_int8"], xnor.trace.workload).units
    fmt = ".4f"
    text = "\n\n".join([
        "# The approximation toolbox on digits: accuracy and cost",
        "Generated by `analysis/toolbox_study.py` (the models trained from their seeds, "
        "deterministic on the CPU); top-1 on the 540 held-out digits; cycles and energy of "
        "one inference, baseline -> compressed on the same architecture (energy on chip "
        "plus DRAM). Early exits: per inference, weighted by the measured exit rates at the "
        "operating threshold; per-sample masks: the mean over 16 calibration inputs.",
        table.to_markdown(index=False, floatfmt=fmt),
        "## Activation functions by segments or a table (8-bit entries, edge_8x8)\n\n"
        "Vector-unit cycles and energy of the approximated layers only (exact -> "
        "approximated): the exact function is the flat op count of "
        "`simulator/workload/spec.py`; the approximation costs one lane-cycle per "
        "evaluation plus the ops it keeps, and loads its table.",
        approx.to_markdown(index=False, floatfmt=fmt),
        "## Low rank under a 50 % energy budget: each split beside its dense original "
        "(edge_8x8)",
        lowrank.to_markdown(index=False, floatfmt=".4g"),
        "## Early exits by entropy threshold (edge_8x8, 540 held-out samples)",
        by_t.to_markdown(index=False, floatfmt=fmt),
        "## Spread over 16 input samples (cnvlutin_like_16x16_os skips zero activations)",
        spread.to_markdown(index=False, floatfmt=fmt),
        "## XNOR-Net on edge_xnor_int8: the units (placement by precision)",
        units.to_markdown(index=False, floatfmt=fmt),
    ]) + "\n"
    emit(ROOT / "analysis" / "toolbox_study.md", text)
    print(text)


if __name__ == "__main__":
    main()
