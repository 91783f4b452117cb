"""approxsim's row-stationary Eyeriss against Eyeriss's published figures.

Eyeriss (Chen, Krishna, Emer, Sze, JSSC 52(1) 2017, abstract; reference/energy.md):
AlexNet conv layers at batch 4: 35 frames/s, 0.0029 DRAM accesses per MAC, 278 mW chip power
(DRAM not counted); VGG-16 conv layers at batch 3: 0.7 frames/s, 0.0035 DRAM accesses per MAC,
236 mW. Like with
like: both sides run the conv layers only, 16-bit words (a DRAM access is one 16-bit word),
with input activation densities of Eyeriss's Table V for AlexNet
(workloads/profiles/alexnet_deep_compression.yaml keeps them) and run-length coded
activations; VGG-16 has no published per-layer densities here, so it runs dense activations
(no RLC gain: an upper bound). approxsim's chip power is the energy of everything but the
DRAM over the run's time (``onchip_energy_uj``); energy per image on chip is compared too
(independent of speed). Writes analysis/eyeriss_study.md (``--check``: compare instead).

    .venv/bin/python analysis/eyeriss_study.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from study_output import emit

from simulator import load_arch, parse_arch, parse_network, simulate
from simulator.files import read_yaml

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "arch_configs" / "eyeriss_12x14.yaml"
PUBLISHED = {"alexnet": {"fps": 35.0, "dram_accesses_per_mac": 0.0029, "chip_mw": 278.0,
                         "chip_mj_per_image": 278.0 / 35.0},
             "vgg16": {"dram_accesses_per_mac": 0.0035, "fps": 0.7, "chip_mw": 236.0}}


def conv_network(stem: str, batch: int, densities: dict[str, float] | None = None) -> Any:
    spec = read_yaml(ROOT / "workloads" / "networks" / f"{stem}.yaml")
    spec["batch_size"] = batch
    layers = []
    for layer in spec["layers"]:
        if layer["op"] == "conv2d":
            layer.pop("inputs", None)
            layers.append({**layer, "act_density": (densities or {}).get(layer["name"], 1.0)})
    spec["layers"] = layers
    return parse_network(spec, source=f"{stem} conv layers, batch {batch}")


def figures(arch: Any, net: Any, images: int) -> dict[str, float]:
    t = simulate(arch, net).totals
    seconds = t["total_cycles"] / (arch.clock_mhz * 1e6)
    compute_s = t["compute_cycles"] / (arch.clock_mhz * 1e6)
    words = (t["dram_read_bytes"] + t["dram_write_bytes"]) / 2
    chip_mj = t["onchip_energy_uj"] / 1e3
    return {"fps": images / seconds, "dram_accesses_per_mac": words / t["macs"],
            "chip_mw": t["onchip_power_mw"], "chip_mj_per_image": chip_mj / images,
            "compute_fps": images / compute_s, "chip_mw_compute_time": chip_mj / compute_s,
            "total_mw": t["avg_power_mw"], "total_mj_per_image": t["energy_uj"] / 1e3 / images}


def chip_against_chip(f: dict[str, float]) -> pd.DataFrame:
    """The measured chip beside the model, on chip against on chip (the last row adds DRAM)."""
    pub = PUBLISHED["alexnet"]
    return pd.DataFrame([
        {"side": "Eyeriss chip (measured, JSSC 2017)", "power_mW": pub["chip_mw"],
         "images/s": pub["fps"], "energy_mJ_per_image": pub["chip_mj_per_image"]},
        {"side": "model on chip, simulated time", "power_mW": f["chip_mw"],
         "images/s": f["fps"], "energy_mJ_per_image": f["chip_mj_per_image"]},
        {"side": "model on chip, compute time only", "power_mW": f["chip_mw_compute_time"],
         "images/s": f["compute_fps"], "energy_mJ_per_image": f["chip_mj_per_image"]},
        {"side": "model incl. DRAM (not comparable)", "power_mW": f["total_mw"],
         "images/s": f["fps"], "energy_mJ_per_image": f["total_mj_per_image"]}])


def alexnet_densities() -> dict[str, float]:
    prof = read_yaml(ROOT / "workloads" / "profiles" / "alexnet_deep_compression.yaml")
    return {layer["name"]: layer.get("act_density", 1.0) for layer in prof["layers"]}


def alexnet_figures(arch: Any = None) -> dict[str, float]:
    return figures(arch or load_arch(ARCH), conv_network("alexnet", 4, alexnet_densities()), 4)


def split_arch(split: tuple[float, float, float]) -> Any:
    raw = read_yaml(ARCH)
    for name, kb in zip(("ifmap", "filter", "ofmap"), split, strict=True):
        raw["buffers"][name]["size_kb"] = kb
    raw["name"] = f"eyeriss_{'_'.join(f'{x:g}' for x in split)}"
    return parse_arch(raw, source=str(ARCH))


def per_layer(arch: Any) -> pd.DataFrame:
    rep = simulate(arch, conv_network("alexnet", 4, alexnet_densities()))
    cols = ["layer", "loop_order", "tile_M", "tile_K", "tile_N", "folds", "mapping_efficiency",
            "compute_cycles", "total_cycles", "dram_ifmap_read_bytes",
            "dram_filter_read_bytes", "dram_psum_read_bytes", "dram_write_bytes"]
    return rep.layers[cols]


def main() -> None:
    arch = load_arch(ARCH)
    alex = alexnet_figures(arch)
    vgg = figures(arch, conv_network("vgg16", 3), 3)
    rows = [{"network": "AlexNet conv, batch 4", "figure": k, "Eyeriss (JSSC 2017)": v,
             "approxsim": alex[k], "ratio": alex[k] / v}
            for k, v in PUBLISHED["alexnet"].items()]
    rows += [{"network": "VGG-16 conv, batch 3 (dense activations)", "figure": k,
              "Eyeriss (JSSC 2017)": v, "approxsim": vgg[k], "ratio": vgg[k] / v}
             for k, v in PUBLISHED["vgg16"].items()]
    table = pd.DataFrame(rows)
    splits = []
    for split in ((36, 18, 54), (54, 27, 27), (36, 36, 36), (27, 27, 54), (54, 18, 36)):
        f = alexnet_figures(split_arch(split))
        splits.append({"ifmap/filter/psum KB": "/".join(f"{x:g}" for x in split),
                       **{k: f[k] for k in ("fps", "dram_accesses_per_mac", "chip_mw")}})
    text = ("# Row-stationary Eyeriss vs the published Eyeriss\n\nGenerated by "
            "`analysis/eyeriss_study.py` (see its docstring for what both sides count).\n\n"
            + table.to_markdown(index=False, floatfmt=".4g")
            + "\n\nAlexNet conv layers, chip against chip (the chip's 278 mW excludes DRAM; "
              "energy per image does not depend on speed):\n\n"
            + chip_against_chip(alex).to_markdown(index=False, floatfmt=".3g")
            + "\n\nAlexNet, the bundled split (36/18/54 KB) per layer:\n\n"
            + per_layer(arch).to_markdown(index=False, floatfmt=".3g")
            + "\n\nThe 108 KB buffer split otherwise (AlexNet conv, batch 4):\n\n"
            + pd.DataFrame(splits).to_markdown(index=False, floatfmt=".4g") + "\n")
    emit(ROOT / "analysis" / "eyeriss_study.md", text)
    print(text)


if __name__ == "__main__":
    main()
