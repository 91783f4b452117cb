"""Run the real SCALE-Sim 3.0.0 on one config/topology and print its reports as one JSON document.

Standalone reference driver: it imports nothing from ``simulator`` and must run under the separate
SCALE-Sim environment (``.venv-scalesim``: scalesim==3.0.0, numpy==1.26.4, pandas==2.2.3)::

    .venv-scalesim/bin/python tools/scalesim_driver.py CONFIG.cfg TOPOLOGY.csv LOGDIR [--gemm]

SCALE-Sim runs through its Python API with ``save_disk_space=True`` (no cycle traces) and an
empty layout file (its API, like its CLI, opens a layout file even with custom layouts off). Its
own reports, ``LOGDIR/<run_name>/{COMPUTE,BANDWIDTH,DETAILED_ACCESS}_REPORT.csv`` (and
``SPARSE_REPORT.csv`` with sparsity on), are read back and printed as
``{"scalesim_version", "config", "report_subdir", "report_files", "layers": [...]}``. Counts are in
words (SCALE-Sim fixes a word at one byte), bandwidths in words/cycle, utilisations in percent.
``compute_cycles`` is SCALE-Sim's "Total Cycles" minus its "Stall Cycles". All SCALE-Sim chatter
goes to stderr; stdout carries only the JSON. Exit status 1 with a one-line message on failure.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPORTS: dict[str, dict[str, str]] = {
    "COMPUTE_REPORT.csv": {
        "Total Cycles (incl. prefetch)": "total_cycles_incl_prefetch",
        "Total Cycles": "total_cycles",
        "Stall Cycles": "stall_cycles",
        "Overall Util %": "overall_util",
        "Mapping Efficiency %": "mapping_efficiency",
        "Compute Util %": "compute_util",
    },
    "BANDWIDTH_REPORT.csv": {
        "Avg IFMAP SRAM BW": "avg_ifmap_sram_bw",
        "Avg FILTER SRAM BW": "avg_filter_sram_bw",
        "Avg FILTER Metadata SRAM BW": "avg_filter_metadata_sram_bw",
        "Avg OFMAP SRAM BW": "avg_ofmap_sram_bw",
        "Avg IFMAP DRAM BW": "avg_ifmap_dram_bw",
        "Avg FILTER DRAM BW": "avg_filter_dram_bw",
        "Avg OFMAP DRAM BW": "avg_ofmap_dram_bw",
    },
    "DETAILED_ACCESS_REPORT.csv": {
        f"{mem} {op} {what}": f"{mem.lower()}_{op.lower()}_{key}"
        for mem in ("SRAM", "DRAM")
        for op in ("IFMAP", "Filter", "OFMAP")
        for what, key in (
            ("Start Cycle", "start_cycle"),
            ("Stop Cycle", "stop_cycle"),
            ("Reads", "reads"),
            ("Writes", "writes"),
        )
    },
    "SPARSE_REPORT.csv": {
        "Sparsity Representation": "sparse_representation",
        "Original Filter Storage": "original_filter_storage",
        "New Storage (Filter+Metadata)": "new_filter_storage",
        "Filter Metadata Storage": "filter_metadata_storage",
        "Avg FILTER Metadata SRAM BW": "avg_filter_metadata_sram_bw",
    },
}
TOPO_FIELDS = (
    "ifmap_h",
    "ifmap_w",
    "filter_h",
    "filter_w",
    "channels",
    "num_filters",
    "stride_h",
    "stride_w",
    "sparsity_n",
    "sparsity_m",
)


def _number(text: str) -> Any:
    """Parse one report cell: int when integral, else float, else the stripped text."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "e" not in text.lower() else value


def _read_report(path: Path, names: dict[str, str]) -> list[dict[str, Any]]:
    """Read one SCALE-Sim report (header and rows end with a comma) into per-layer dicts."""
    with path.open(newline="") as handle:
        rows = [[cell.strip() for cell in row] for row in csv.reader(handle) if row]
    header = [h for h in rows[0] if h]
    unknown = [h for h in header[1:] if h not in names]
    if unknown:
        raise ValueError(f"{path.name}: unexpected columns {unknown}")
    return [
        {names[h]: _number(c) for h, c in zip(header[1:], row[1:], strict=False)}
        for row in rows[1:]
    ]


def run(config: Path, topology: Path, logdir: Path, gemm: bool, verbose: bool) -> dict[str, Any]:
    """Run SCALE-Sim with stdout sent to stderr, then collect its reports."""
    for path in (config, topology):
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    logdir.mkdir(parents=True, exist_ok=True)
    layout = logdir / "empty_layout.csv"
    layout.write_text("Layer name, IFMAP Height Intraline Factor,\n")
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)  # SCALE-Sim prints with print(); keep fd 1 clean for the JSON.
    try:
        # This file sits next to the project's own simulator/scalesim.py, which would shadow the
        # installed `scalesim` package: drop this directory from the import path first.
        here = Path(__file__).resolve().parent
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
        from scalesim.scale_sim import scalesim

        sim = scalesim(
            save_disk_space=True,
            verbose=verbose,
            config=str(config),
            topology=str(topology),
            layout=str(layout),
            input_type_gemm=gemm,
        )
        sim.run_scale(top_path=str(logdir))
    except SystemExit as exc:  # its input checks call exit(), which would exit with status 0
        raise RuntimeError(f"SCALE-Sim exited early ({exc.code})") from exc
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    conf = sim.config
    report_dir = logdir / conf.get_run_name()
    layers: list[dict[str, Any]] = []
    for i, entry in enumerate(sim.topo.topo_arrays):
        ofmap_h, ofmap_w, num_mac, window = sim.topo.layers_calculated_hyperparams[i]
        layers.append(
            {
                "layer": entry[0],
                **dict(zip(TOPO_FIELDS, entry[1:], strict=False)),
                "ofmap_h": ofmap_h,
                "ofmap_w": ofmap_w,
                "gemm_m": ofmap_h * ofmap_w,
                "gemm_n": entry[6],
                "gemm_k": window,
                "num_macs": num_mac,
            }
        )
    files = [name for name in REPORTS if (report_dir / name).is_file()]
    for name in files:
        rows = _read_report(report_dir / name, REPORTS[name])
        if len(rows) != len(layers):
            raise ValueError(f"{name}: {len(rows)} rows for {len(layers)} layers")
        for layer, row in zip(layers, rows, strict=True):
            layer.update(row)
    for layer in layers:
        layer["compute_cycles"] = layer["total_cycles"] - layer["stall_cycles"]
    rows_cols = conf.get_array_dims()
    return {
        "scalesim_version": version("scalesim"),
        "config": {
            "run_name": conf.get_run_name(),
            "array_rows": rows_cols[0],
            "array_cols": rows_cols[1],
            "dataflow": conf.get_dataflow(),
            "ifmap_sram_kb": conf.ifmap_sz_kb,
            "filter_sram_kb": conf.filter_sz_kb,
            "ofmap_sram_kb": conf.ofmap_sz_kb,
            "interface_bandwidth": "USER" if conf.use_user_bandwidth else "CALC",
            "bandwidths": conf.bandwidths,
            "sparsity_support": conf.sparsity_support,
            "gemm_input": gemm,
            "word_size_bytes": 1,
        },
        "report_subdir": conf.get_run_name(),
        "report_files": files,
        "layers": layers,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("topology", type=Path)
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--gemm", action="store_true", help="topology is `Layer, M, N, K,`")
    parser.add_argument("-v", "--verbose", action="store_true", help="SCALE-Sim progress to stderr")
    args = parser.parse_args(argv)
    try:
        result = run(args.config, args.topology, args.logdir, args.gemm, args.verbose)
    except Exception as exc:  # one-line failure message is the contract
        print(f"scalesim_driver: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
