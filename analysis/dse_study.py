"""The accuracy-vs-cost study: which compression, on which array, buys what.

One command regenerates everything (figures in analysis/dse_study/, tables in
analysis/dse_study.md)::

    .venv/bin/python analysis/dse_study.py [--workers 2] [--keep DIR] [--check]

(``--check``: rerun and compare with the committed tables, writing nothing; tests/test_figures.py
runs it. The four sweeps share one local Dask cluster of ``--workers`` processes; 0: in this
process.)

1. **Digits** (accuracy measured): the bundled digits LeNet compressed by every bundled recipe
   on five kinds of 8x8 array (workloads/sweeps/digits_recipes.yaml: dense int8, zero-skipping,
   shift-PE, bit-serial, XNOR), plus the uncompressed model and the recipes that do not quantise
   on 32-bit arrays (digits_fp32.yaml). Two figures, accuracy vs energy per inference and vs
   latency with Pareto fronts: quantisation methods, weight-reduction methods.
2. **ImageNet networks** (published accuracy): AlexNet and VGG-16 with published profiles and
   ResNet-18 variants on the same five kinds of a 128x128 array (imagenet_profiles.yaml), the
   uncompressed networks on its 32-bit version (imagenet_baseline.yaml).
   The approximation toolbox's weight and precision methods (digits_toolbox.yaml: block-
   circulant, SVD rank by an accuracy or energy budget, distillation, dynamic fixed point,
   adaptive per-filter bits, fine-grained ternary, XNOR-Net with 8-bit first and last layers)
   on the edge NPU and its three variants that take them natively (an FFT unit, bit-serial
   weights, an XNOR array beside an int8 one): one figure and two tables.
3. **The survey's qualitative table** ("cheaper arithmetic / memory reduction / workload
   reduction" per method) as measured ratios against the uncompressed baseline.

*Fits.* A point fits when the simulator runs it. A PE kind that cannot run a layer's precision
or scheme is an error row, listed; so is an unquantised layer on the XNOR array (the simulator
refuses to run a layer without declared bits as an untrained 1-bit network); no bundled recipe
binarises every layer, so the XNOR array fits none.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
from pathlib import Path

import pandas as pd
from study_output import emit

from simulator.reporting import load_results
from simulator.reporting.figures import ACC_ENERGY, ACC_LATENCY, Panel, save, tradeoff
from simulator.sweep import sweep

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ROOT / "workloads" / "sweeps"
OUT = ROOT / "analysis" / "dse_study"
MD = ROOT / "analysis" / "dse_study.md"

QUANTISATION = ["int8", "int4", "pow2-4bit", "ternary", "binary"]
WEIGHT_REDUCTION = ["prune50", "prune80", "prune90", "2of4", "filter-prune", "kmeans16",
                    "lowrank", "deep-compression"]
#: Recipes that quantise weights (they run on the 8-bit kinds); the rest keep fp32 weights.
QUANTISING = {*QUANTISATION, "kmeans16", "deep-compression"}
#: The approximation toolbox's recipes in digits_toolbox.yaml, with what each does.
TOOLBOX = {
    "baseline": "uncompressed (runs at the array's precision)",
    "int8": "int8 weights and activations (reference)",
    "circulant4": "block-circulant 4x4 (CirCNN)",
    "lowrank-accuracy": "SVD rank per layer, accuracy budget 1 point",
    "lowrank-energy": "SVD rank per layer, energy budget 50 %",
    "distill-half": "distilled half-width student (Hinton et al.)",
    "dynamic-fixed8": "dynamic fixed point, 8 bits (per-layer exponent)",
    "adaptive-precision": "per-filter bits by sensitivity (Khoram & Li)",
    "ternary-fgq": "fine-grained ternary, groups of 4 (FGQ)",
    "xnor": "XNOR-Net, 8-bit first and last layers",
}
#: What each method is expected to buy (the survey's qualitative table, as we read it):
#: cheaper arithmetic, memory reduction, workload reduction.
EXPECTED = {
    "int8": "A M -", "int4": "A M -", "pow2-4bit": "A M -", "ternary": "A M -",
    "binary": "A M -", "prune50": "- M W", "prune80": "- M W", "prune90": "- M W",
    "2of4": "- M W", "filter-prune": "- M W", "kmeans16": "- M -", "lowrank": "- M W",
    "deep-compression": "- M W",
}
ENERGY_LATENCY = Panel("latency_us", "energy_uj", {"energy_uj": "min", "latency_us": "min"},
                       logy=True)


def run(names: list[str], keep: Path, scheduler: str | None, cache: Path) -> pd.DataFrame:
    stores = []
    for name in names:
        out = keep / name
        s = sweep(SWEEPS / f"{name}.yaml", out, workers=0, scheduler=scheduler, cache_dir=cache)
        print(f"{name}: {s.points} points ({s.ran} run, {s.errors} errors)")
        stores.append(out)
    return load_results(stores).points


def fits(p: pd.DataFrame) -> pd.Series:
    """Points that ran (module docstring)."""
    return p["error"].isna()


def why_not(p: pd.DataFrame) -> pd.Series:
    return p["error"].fillna("").str.replace(r"^layer '([^']+)' cannot run on pe '([^']+)': ",
                                             r"\1: ", regex=True)


def reading(survey: pd.DataFrame, on_dense: pd.DataFrame, on_skip: pd.DataFrame,
            digits: pd.DataFrame) -> str:
    """What the tables say, from their numbers."""
    d, z = on_dense.set_index("method"), on_skip.set_index("method")
    q = survey[survey["method"].isin(QUANTISATION)]
    prunes = ["prune50", "prune80", "prune90", "2of4"]

    def span(v: pd.Series) -> str:
        lo, hi = float(v.min()), float(v.max())
        return f"{lo:.3g}x" if f"{lo:.3g}" == f"{hi:.3g}" else f"{lo:.3g}-{hi:.3g}x"

    def pj(row: pd.Series) -> float:
        return float(row["energy_arith_pj"] / (row["macs"] - row["skipped_macs"]))

    agree = survey[survey["expected (A M W)"] == survey["measured (A M W)"]]["method"]
    differ = survey[survey["expected (A M W)"] != survey["measured (A M W)"]]
    ok = digits[fits(digits)]
    base = ok[(ok["recipe"] == "baseline") & (ok["array"] == "dense-32bit")].iloc[0]
    int8 = ok[(ok["recipe"] == "int8") & (ok["array"] == "dense")].iloc[0]
    best = ok.loc[ok["energy_uj"].idxmin()]
    lines = [
        f"* Measured and expected effects agree for {len(agree)} of {len(survey)} methods "
        f"({', '.join(agree)}).",
        f"* The cheapest digits point is {best['recipe']} on the {best['array']} array: "
        f"{best['energy_uj']:.3g} µJ per inference at {best['accuracy']:.2%} accuracy, "
        f"{base['energy_uj'] / best['energy_uj']:.1f}x less energy than the uncompressed "
        f"model ({base['energy_uj']:.3g} µJ, {base['accuracy']:.2%}).",
        f"* Against the fp32 baseline ({pj(base):.3g} pJ of arithmetic per MAC on the 32-bit "
        f"array) the quantising recipes' arithmetic per MAC falls to "
        f"{span(q['arith energy / MAC'])}, mostly "
        f"through the 8-bit datapath (int8 on the dense int8 array: {pj(int8):.3g} pJ). On "
        f"that one fixed array (second table), where a MAC is priced at the layer's own "
        f"operand widths, weights below 8 bits cost "
        + ", ".join(f"{m} {d.loc[m, 'arith energy / MAC']:.3g}x" for m in QUANTISATION[1:]
                    if m in d.index)
        + " of an int8 MAC and move "
        + ", ".join(f"{d.loc[m, 'DRAM bytes']:.3g}x" for m in QUANTISATION[1:] if m in d.index)
        + " the DRAM bytes.",
        f"* Pruning pays only where zeros are skipped: on the dense int8 array prune50/80/90 "
        f"and 2:4 cost {span(d.loc[prunes, 'energy'])} "
        f"int8's energy (their zeros are multiplied, and stored dense); on the zero-skipping "
        f"array prune80 costs {z.loc['prune80', 'energy']:.3g}x int8 there. Filter pruning and "
        f"low rank shrink the GEMM itself and pay on every array ("
        f"{d.loc['filter-prune', 'cycles']:.3g}x and {d.loc['lowrank', 'cycles']:.3g}x the "
        f"cycles on the dense array).",
    ]
    for _, r in differ.iterrows():
        m = r["method"]
        if m in ("kmeans16", "deep-compression"):
            lines.append(f"* {m}: the 'A' measured comes from the 8-bit datapath; on the fixed "
                         f"int8 array its arithmetic per MAC is "
                         f"{float(d.loc[m, 'arith energy / MAC']):.3g}x "
                         f"int8's: one codebook read per MAC.")
        elif m == "filter-prune":
            lines.append(
                f"* filter-prune: arithmetic energy per scheduled MAC "
                f"{r['arith energy / MAC']:.3g}x. Not a real effect: for a filter-pruned layer "
                f"the mapping's arithmetic counts are already those of the smaller GEMM and "
                f"`cost/actions.py` (`_arith`) scales them again by the share of MACs that "
                f"fire, counting the removed filters twice (so its arithmetic energy is about "
                f"half what it should be). Reported as new work.")
        else:
            lines.append(f"* {m}: expected {r['expected (A M W)']}, measured "
                         f"{r['measured (A M W)']}.")
    return "\n".join(lines)


def digits_figures(p: pd.DataFrame) -> list[Path]:
    ok = p[fits(p)]
    paths = []
    for stem, recipes, what in (("digits_quantisation", QUANTISATION, "quantisation methods"),
                                ("digits_weight_reduction", WEIGHT_REDUCTION,
                                 "weight-reduction methods")):
        sub = ok[ok["recipe"].isin([*recipes, "baseline"])]
        fig = tradeoff(sub, [ACC_ENERGY, ACC_LATENCY], f"Digits LeNet, {what}: accuracy vs "
                       f"energy and latency per inference (measured accuracy)", hue="recipe",
                       style="array")
        paths += save(fig, OUT, stem, ("png",))
    return paths


def toolbox_figure(p: pd.DataFrame) -> list[Path]:
    ok = p[p["error"].isna()]
    fig = tradeoff(ok, [ACC_ENERGY, ACC_LATENCY], "Digits LeNet, the approximation toolbox: "
                   "accuracy vs energy and latency per inference (measured accuracy)",
                   hue="recipe", style="arch")
    return save(fig, OUT, "digits_toolbox", ("png",))


def toolbox_tables(p: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Energy and latency per inference by toolbox recipe and architecture, and what they
    say."""
    ok = p[p["error"].isna()]
    order = list(TOOLBOX)
    archs = list(p["arch"].drop_duplicates())
    out = []
    for value in ("energy_uj", "latency_us"):
        t = ok.pivot_table(index="recipe", columns="arch", values=value).reindex(
            index=order, columns=archs)
        t.insert(0, "accuracy", p.groupby("recipe")["accuracy"].first().reindex(order))
        t.insert(0, "method", [TOOLBOX[r] for r in order])
        out.append(t.reset_index())
    e = out[0].set_index("recipe")
    lat = out[1].set_index("recipe")
    best = ok.loc[ok["energy_uj"].idxmin()]
    lines = [
        f"* The cheapest toolbox point is {best['recipe']} on {best['arch']}: "
        f"{best['energy_uj']:.3g} µJ per inference at {best['accuracy']:.2%} accuracy "
        f"(int8 on edge_8x8: {e.at['int8', 'edge_8x8']:.3g} µJ).",
        f"* Units that take a method natively pay where the method is: the XNOR + int8 "
        f"array runs the XNOR network in {lat.at['xnor', 'edge_xnor_int8']:.3g} µs against "
        f"{lat.at['xnor', 'edge_8x8']:.3g} µs on the int8 array (same accuracy, "
        f"{e.at['xnor', 'edge_xnor_int8']:.3g} vs {e.at['xnor', 'edge_8x8']:.3g} µJ); "
        f"bit-serial weights run adaptive precision in "
        f"{lat.at['adaptive-precision', 'edge_bitserial_w']:.3g} µs against "
        f"{lat.at['adaptive-precision', 'edge_8x8']:.3g} µs padded to 8 bits; the FFT unit "
        f"runs block-circulant b = 4 in {lat.at['circulant4', 'edge_fft']:.3g} µs against "
        f"{lat.at['circulant4', 'edge_8x8']:.3g} µs as dense blocks, but at "
        f"{e.at['circulant4', 'edge_fft']:.3g} vs {e.at['circulant4', 'edge_8x8']:.3g} µJ "
        f"(a 4-point FFT saves few operations and its 16-bit complex arithmetic costs more).",
        f"* Methods that shrink the GEMM (low rank, the student) pay on every architecture: "
        f"distill-half costs {e.at['distill-half', 'edge_8x8'] / e.at['int8', 'edge_8x8']:.2f}x "
        f"int8's energy on edge_8x8 at {e.at['distill-half', 'accuracy']:.2%} accuracy.",
    ]
    return out[0], out[1], "\n".join(lines)


def imagenet_figures(p: pd.DataFrame) -> list[Path]:
    ok = p[fits(p)].assign(variant=lambda d: d["workload"].str.split("-", n=1).str[1])
    acc = ok[ok["accuracy"].notna()]
    f1 = tradeoff(acc, [ACC_ENERGY, ACC_LATENCY], "AlexNet and VGG-16: published top-1 "
                  "accuracy vs simulated energy and latency per inference", hue="variant",
                  style="array")
    f2 = tradeoff(ok, [ENERGY_LATENCY], "ImageNet networks: energy vs latency per inference, "
                  "all variants", hue="variant", style="array")
    return save(f1, OUT, "imagenet_accuracy", ("png",)) + save(f2, OUT, "imagenet_energy_latency",
                                                                ("png",))


def _totals(row: pd.Series) -> dict[str, float]:
    """The survey's three effects, measured: arithmetic energy per MAC the array schedules
    (cheaper arithmetic), DRAM bytes (memory reduction), scheduled MACs (workload reduction:
    skipped zeros and MACs removed by filter pruning or low rank are not scheduled)."""
    scheduled = row["macs"] - row["skipped_macs"]
    return {"arith_pj_per_mac": row["energy_arith_pj"] / scheduled,
            "bytes_moved": row["dram_read_bytes"] + row["dram_write_bytes"],
            "scheduled_macs": scheduled, "effectual_macs": row["effectual_macs"],
            "cycles": row["total_cycles"], "energy": row["energy_pj"]}


def _ratio_row(recipe: str, point: pd.Series, base: dict[str, float]) -> dict[str, object]:
    t = _totals(point)
    r = {k: t[k] / base[k] for k in t}
    got = " ".join(flag if r[k] < 0.9 else "-" for flag, k in
                   (("A", "arith_pj_per_mac"), ("M", "bytes_moved"), ("W", "scheduled_macs")))
    return {"method": recipe, "expected (A M W)": EXPECTED[recipe], "measured (A M W)": got,
            "on array": point["array"], "accuracy": point["accuracy"],
            "arith energy / MAC": r["arith_pj_per_mac"], "DRAM bytes": r["bytes_moved"],
            "scheduled MACs": r["scheduled_macs"], "effectual MACs": r["effectual_macs"],
            "cycles": r["cycles"], "energy": r["energy"]}


def ratios(p: pd.DataFrame) -> pd.DataFrame:
    """Per method, on its own precision's arrays (quantising recipes on the 8-bit kinds, the
    others at 32 bits), the lowest-energy fitting point against the fp32 baseline."""
    ok = p[fits(p)]
    base = _totals(ok[ok["recipe"] == "baseline"].set_index("array").loc["dense-32bit"])
    rows = []
    for recipe in [*QUANTISATION, *WEIGHT_REDUCTION]:
        mine = ok[(ok["recipe"] == recipe) & (ok["array"].str.endswith("32bit")
                                              != (recipe in QUANTISING))]
        rows.append(_ratio_row(recipe, mine.loc[mine["energy_uj"].idxmin()], base))
    return pd.DataFrame(rows)


def ratios_on(p: pd.DataFrame, array: str) -> pd.DataFrame:
    """Every method that fits ``array`` against the int8 recipe on the same array: what each
    adds to plain int8 quantisation on one fixed accelerator."""
    ok = p[fits(p) & (p["array"] == array)].set_index("recipe")
    base = _totals(ok.loc["int8"])
    return pd.DataFrame([_ratio_row(r, ok.loc[r], base) for r in [*QUANTISATION,
                                                                   *WEIGHT_REDUCTION]
                         if r in ok.index])


def digits_tables(p: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ok = p[fits(p)]
    order = ["baseline", *QUANTISATION, *WEIGHT_REDUCTION]
    arrays = list(p["array"].drop_duplicates())
    energy = ok.pivot_table(index="recipe", columns="array", values="energy_uj").reindex(
        index=order, columns=arrays)
    latency = ok.pivot_table(index="recipe", columns="array", values="latency_us").reindex(
        index=order, columns=arrays)
    acc = p.groupby("recipe")["accuracy"].first().reindex(order)
    energy.insert(0, "accuracy", acc)
    latency.insert(0, "accuracy", acc)
    bad = p[~fits(p)].assign(reason=why_not(p[~fits(p)]))
    misses = (bad.groupby(["array", "reason"], sort=False)["recipe"]
              .apply(lambda s: ", ".join(s)).reset_index())
    return energy.reset_index(), latency.reset_index(), misses


def imagenet_table(p: pd.DataFrame) -> pd.DataFrame:
    ok = p[fits(p)]
    t = ok.pivot_table(index="workload", columns="array", values="energy_uj")
    first = p.groupby("workload")[["accuracy", "accuracy_source"]].first()
    t = first.join(t).reset_index()
    return t.sort_values("workload", key=lambda s: s.str.split("-").str[0], kind="stable")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="keep the result stores here (resumable)")
    ap.add_argument("--check", action="store_true", help="compare with the committed output")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="approxsim-study-") as tmp, \
            contextlib.ExitStack() as stack:
        scheduler = None
        # one local cluster for the four sweeps; the drift check runs in this process (on a
        # shared 2-core machine, cluster start-up costs more than the workers save)
        if args.workers > 0 and not args.check:
            from distributed import LocalCluster

            cluster = stack.enter_context(LocalCluster(
                n_workers=args.workers, threads_per_worker=1, dashboard_address=None,
                silence_logs=logging.ERROR))
            scheduler = cluster.scheduler_address
        keep = args.keep or Path(tmp)
        cache = keep / "model-cache"
        digits = run(["digits_recipes", "digits_fp32"], keep, scheduler, cache)
        toolbox = run(["digits_toolbox"], keep, scheduler, cache)
        imagenet = run(["imagenet_profiles", "imagenet_baseline"], keep, scheduler, cache)
    if not args.check:
        digits_figures(digits)
        toolbox_figure(toolbox)
        imagenet_figures(imagenet)
    energy, latency, misses = digits_tables(digits)
    survey = ratios(digits)
    on_dense = ratios_on(digits, "dense")
    on_skip = ratios_on(digits, "zero-skip")
    inet = imagenet_table(imagenet)
    tb_energy, tb_latency, tb_reading = toolbox_tables(toolbox)
    fmt = ".4g"
    text = "\n".join([
        "# Accuracy vs cost: digits LeNet and ImageNet networks on five array kinds", "",
        "Generated by `analysis/dse_study.py` (sweep files in `workloads/sweeps/`); see its "
        "docstring for what *fits* means. Energy per inference in µJ, latency in µs, "
        "accuracy as a fraction of the held-out digits (measured) or ImageNet top-1 "
        "(published).", "",
        "![quantisation](dse_study/digits_quantisation.png)", "",
        "![weight reduction](dse_study/digits_weight_reduction.png)", "",
        "## Digits: energy per inference (µJ) by recipe and array", "",
        energy.to_markdown(index=False, floatfmt=fmt), "",
        "## Digits: latency per inference (µs) by recipe and array", "",
        latency.to_markdown(index=False, floatfmt=fmt), "",
        "## Points that do not fit", "", misses.to_markdown(index=False), "",
        "## Digits: the approximation toolbox (energy µJ, then latency µs, per inference)",
        "",
        "Each recipe of `workloads/sweeps/digits_toolbox.yaml` on the edge NPU (edge_8x8) and "
        "its three variants that take a method natively (`arch_configs/edge_fft.yaml`, "
        "`edge_bitserial_w.yaml`, `edge_xnor_int8.yaml`). Activation-function approximations, "
        "early exits and per-sample masks are in `analysis/toolbox_study.md` (other models; "
        "costs that are distributions, not one point).", "",
        "![toolbox](dse_study/digits_toolbox.png)", "",
        tb_energy.to_markdown(index=False, floatfmt=fmt), "",
        tb_latency.to_markdown(index=False, floatfmt=fmt), "",
        tb_reading, "",
        "## The survey's table, measured", "",
        "Ratios against the uncompressed digits LeNet (fp32, on the 32-bit dense array), each "
        "method on the lowest-energy array of its own precision (quantising recipes on the "
        "8-bit kinds, the others at 32 bits). A = cheaper arithmetic (arithmetic energy per "
        "scheduled MAC), M = memory reduction (DRAM bytes moved), W = workload reduction "
        "(MACs the array schedules: skipped zeros and MACs removed from the GEMM are not); a "
        "letter is *measured* when its ratio is below 0.9. Effectual MACs (both operands "
        "nonzero) and cycles are shown too.", "",
        survey.to_markdown(index=False, floatfmt=".3g"), "",
        reading(survey, on_dense, on_skip, digits), "",
        "The same ratios on one fixed accelerator, against the int8 recipe on it: the dense "
        "int8 array, then the zero-skipping one (what each method adds to plain int8).", "",
        on_dense.to_markdown(index=False, floatfmt=".3g"), "",
        on_skip.to_markdown(index=False, floatfmt=".3g"), "",
        "## ImageNet networks: energy per inference (µJ) by variant and array", "",
        "![accuracy](dse_study/imagenet_accuracy.png)", "",
        "![energy-latency](dse_study/imagenet_energy_latency.png)", "",
        inet.to_markdown(index=False, floatfmt=fmt), "",
    ])
    emit(MD, text, ["--check"] if args.check else [])
    print(text)


if __name__ == "__main__":
    main()
