"""Cross-check of approxsim's energy against ZigZag on ResNet-18, TPU-like 32x32 array.

Two steps, because ZigZag (``pip install -e '.[zigzag]'``: zigzag-dse and six) is an optional
extra with heavy dependencies:

1. ``python analysis/zigzag_compare.py --run-zigzag`` runs ZigZag 3.x's bundled
   ``tpu_like`` hardware and mapping on its bundled ``resnet18.onnx`` (energy-optimal mapping
   search, LOMA) and stores per-layer energy and DRAM energy in ``analysis/zigzag_resnet18.json``.
   Needs only zigzag, not approxsim.
2. ``python analysis/zigzag_compare.py`` (no ZigZag needed) simulates the same 21 conv/fc
   layers on approxsim configured with ZigZag's per-access costs (:func:`zigzag_costs`) and
   writes ``analysis/zigzag_compare.md``.

Cost mapping (ZigZag ``tpu_like.yaml``): MAC 0.04 pJ; per-PE weight register file (128 B,
0.095 pJ per 8-bit access) -> ``filter_rf_read``/``filter_rf_write`` and, as the aggregate of
the 1024 PE register files, the 128 KB ``filter`` buffer; 2 B output register (0.021 pJ per
16-bit read or write) -> ``psum_hop`` = one read + one write; shared 2 MB SRAM (416.16 pJ read,
378.4 pJ write per 2048-bit access) -> 1 MB ``ifmap`` + 1 MB ``ofmap`` at the same pJ/bit;
DRAM 700 / 750 pJ per 64-bit read / write. ZigZag has no leakage and no energy for inputs
moving between PEs: both are 0 here. 8-bit operands, 16-bit partial sums as in ZigZag's
ONNX parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from study_output import emit

HERE = Path(__file__).resolve().parent
ZZ_JSON = HERE / "zigzag_resnet18.json"
OUT_MD = HERE / "zigzag_compare.md"


def _layer_key(onnx_name: str) -> str:
    """``/layer2/layer2.0/downsample/downsample.0/Conv`` -> ``layer2.0.downsample.0``."""
    parts = [p for p in onnx_name.strip("/").split("/")[:-1] if p]
    kept = [p for i, p in enumerate(parts)
            if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]
    return ".".join(kept)


def run_zigzag(dump: Path) -> None:
    """Step 1 (needs zigzag-dse): run ZigZag and store per-layer results as JSON."""
    import os
    import pickle

    import zigzag
    from zigzag.api import get_hardware_performance_zigzag

    root = Path(os.path.dirname(zigzag.__file__)) / "inputs"
    energy, latency, _ = get_hardware_performance_zigzag(
        str(root / "workload" / "resnet18.onnx"), str(root / "hardware" / "tpu_like.yaml"),
        str(root / "mapping" / "tpu_like.yaml"), opt="energy", dump_folder=str(dump),
        loma_show_progress_bar=False)
    with open(dump / "list_of_cmes.pickle", "rb") as fh:
        cmes = pickle.load(fh)
    layers = []
    for cme in cmes:
        name = cme.layer.name
        mem = cme.mem_energy_breakdown  # operand -> energy per memory level (last = DRAM)
        layers.append({
            "layer": _layer_key(name), "onnx_name": name, "macs": int(cme.layer.total_mac_count),
            "energy_pj": float(cme.energy_total), "mac_pj": float(cme.mac_energy),
            "dram_pj": float(sum(v[-1] for v in mem.values())),
            "latency_cycles": float(cme.latency_total2),
        })
    ZZ_JSON.write_text(json.dumps({"zigzag_version": _version(), "energy_pj": energy,
                                   "latency_cycles": latency, "layers": layers}, indent=1))
    print(f"wrote {ZZ_JSON}")


def _version() -> str:
    from importlib.metadata import version

    return version("zigzag-dse")


def zigzag_costs() -> dict[tuple[str, str], float]:
    """approxsim table entries equal to ZigZag tpu_like's per-access costs (module docstring)."""
    sram_r, sram_w = 416.16 / 2048, 378.4 / 2048  # pJ/bit
    zero = ("mac_gated", "mac_idle", "ifmap_hop", "ifmap_rf_read", "ifmap_rf_write",
            "psum_rf_read", "psum_rf_write", "filter_hop")
    pj = {("pe_array", "mac"): 0.04, ("pe_array", "filter_rf_read"): 0.095,
          ("pe_array", "filter_rf_write"): 0.095, ("pe_array", "psum_hop"): 2 * 0.021,
          **{("pe_array", a): 0.0 for a in zero},
          ("ifmap", "read"): 8 * sram_r, ("ifmap", "write"): 8 * sram_w,
          ("ofmap", "read"): 8 * sram_r, ("ofmap", "write"): 8 * sram_w,
          ("filter", "read"): 0.095, ("filter", "write"): 0.095,
          ("dram", "read_bit"): 700 / 64, ("dram", "write_bit"): 750 / 64,
          ("vector_unit", "vector_op"): 0.0}
    for comp in ("pe_array", "vector_unit", "ifmap", "filter", "ofmap"):
        pj[(comp, "leak_cycle")] = 0.0
    return pj


def approxsim_side():  # type: ignore[no-untyped-def]
    from simulator import load_workload, parse_arch, simulate
    from simulator.cost.table import EnergyTable
    from simulator.workload.layer import Workload

    arch = parse_arch({
        "name": "zigzag_tpu_like_32x32", "clock_mhz": 1000,
        "pe_array": {"impl": "systolic", "rows": 32, "cols": 32, "dataflow": "ws",
                     "weight_bits": 8, "act_bits": 8, "acc_bits": 16},
        "buffers": {"ifmap": {"impl": "sram", "size_kb": 1024, "word_bits": 8,
                              "bandwidth_words": float("inf")},
                    "filter": {"impl": "sram", "size_kb": 128, "word_bits": 8,
                               "bandwidth_words": float("inf")},
                    "ofmap": {"impl": "sram", "size_kb": 1024, "word_bits": 8,
                              "bandwidth_words": float("inf")}},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": 8.0, "latency_ns": 0,
                 "energy_pj_per_bit": 700 / 64},
        # like ZigZag's run (opt="energy"): the tiling search minimises energy
        "mapping": {"objective": "energy"},
    })
    wl = load_workload(HERE.parent / "workloads" / "networks" / "resnet18.yaml")
    # the conv/fc layers alone, each reading the one before (ZigZag runs them one by one)
    wl = Workload(wl.name, tuple(dataclasses.replace(x, inputs=None) for x in wl.layers
                                 if x.kind == "gemm"), wl.source)
    table = EnergyTable.from_pj("zigzag_tpu_like", 45, zigzag_costs(),
                                "ZigZag 3.x inputs/hardware/tpu_like.yaml per-access costs")
    return simulate(arch, wl, table)


def compare() -> str:
    import pandas as pd

    zz = json.loads(ZZ_JSON.read_text())
    rep = approxsim_side()
    e = rep.energy
    ours = e.groupby("layer", sort=False)["energy_pj"].sum()
    dram = e[e.component == "dram"].groupby("layer", sort=False)["energy_pj"].sum()
    rows = []
    for z in zz["layers"]:
        name = z["layer"]
        rows.append({"layer": name, "zigzag_uj": z["energy_pj"] / 1e6,
                     "approxsim_uj": ours[name] / 1e6,
                     "ratio": ours[name] / z["energy_pj"],
                     "zigzag_dram_share": z["dram_pj"] / z["energy_pj"],
                     "approxsim_dram_share": dram[name] / ours[name]})
    df = pd.DataFrame(rows)
    zt, ot = df.zigzag_uj.sum(), df.approxsim_uj.sum()
    zd = sum(z["dram_pj"] for z in zz["layers"]) / 1e6
    od = float(dram.sum()) / 1e6
    rest = df[df.layer != df.layer.iloc[0]]  # all but conv1, where the mappings differ most
    zr, orest = rest.zigzag_uj.sum(), rest.approxsim_uj.sum()
    total = pd.DataFrame([
        {"ResNet-18, 21 conv/fc layers": "total energy", "ZigZag (mapping search, min energy)":
         f"{zt:.0f} uJ", "approxsim": f"{ot:.0f} uJ", "ratio": f"{ot / zt:.2f}"},
        {"ResNet-18, 21 conv/fc layers": f"total without {df.layer.iloc[0]}",
         "ZigZag (mapping search, min energy)": f"{zr:.0f} uJ", "approxsim": f"{orest:.0f} uJ",
         "ratio": f"{orest / zr:.2f}"},
        {"ResNet-18, 21 conv/fc layers": df.layer.iloc[0],
         "ZigZag (mapping search, min energy)": f"{df.zigzag_uj.iloc[0]:.0f} uJ",
         "approxsim": f"{df.approxsim_uj.iloc[0]:.0f} uJ", "ratio": f"{df.ratio.iloc[0]:.2f}"},
        {"ResNet-18, 21 conv/fc layers": "DRAM energy", "ZigZag (mapping search, min energy)":
         f"{zd:.0f} uJ", "approxsim": f"{od:.0f} uJ", "ratio": f"{od / zd:.2f}"},
        {"ResNet-18, 21 conv/fc layers": "DRAM share", "ZigZag (mapping search, min energy)":
         f"{zd / zt:.1%}", "approxsim": f"{od / ot:.1%}", "ratio": ""}])
    by_comp = (e.groupby("component")["energy_pj"].sum() / 1e6).round(1)
    return ("# approxsim vs ZigZag " + zz["zigzag_version"] + ", ResNet-18, TPU-like 32x32\n\n"
            "Generated by `analysis/zigzag_compare.py` (see its docstring for the cost mapping)."
            "\n\n" + total.to_markdown(index=False) + "\n\napproxsim energy by component (uJ): "
            + ", ".join(f"{k} {v}" for k, v in by_comp.items()) + "\n\nPer layer:\n\n"
            + df.to_markdown(index=False, floatfmt=".3g") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-zigzag", action="store_true", help="step 1 (needs zigzag-dse)")
    ap.add_argument("--dump", type=Path, default=Path("/tmp/zigzag_resnet18"))
    ap.add_argument("--check", action="store_true", help="compare with the committed output")
    args = ap.parse_args()
    if args.run_zigzag:
        run_zigzag(args.dump)
        return
    if not ZZ_JSON.is_file():
        sys.exit(f"{ZZ_JSON} missing: run with --run-zigzag first")
    text = compare()
    emit(OUT_MD, text, ["--check"] if args.check else [])
    print(text)


if __name__ == "__main__":
    main()
