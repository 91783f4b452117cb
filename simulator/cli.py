"""The ``approxsim`` command line. Parsing and printing only; no model logic here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console

from simulator.arch.accelerator import build
from simulator.arch.loader import load_arch
from simulator.console import default_cache_dir, note_hidden, print_frame
from simulator.cost.area import synthesised_area_mm2
from simulator.cost.table_file import load_energy_table, table_for
from simulator.errors import SimulatorError, WorkloadError
from simulator.exploration import report_cmd, sweep_cmd
from simulator.files import check_output_dir, read_yaml, safe_name
from simulator.hardware.synthesis import load_synthesis
from simulator.printing import print_dynamic, print_energy
from simulator.simulation import simulate
from simulator.workload.llm import is_llm, parse_llm
from simulator.workload.loader import load_workload
from simulator.workload.topology import load_topology
from simulator.workload.trace import check_trace_target, write_trace

#: Per-layer columns of `approxsim run`'s table, most important first: as many as fit the
#: terminal are shown (`--columns` chooses; the files of `-o` hold every column).
RUN_COLUMNS = ["layer", "op", "total_cycles", "stall_cycles", "pe_utilisation", "macs",
               "compute_cycles", "dram_read_bytes", "dram_write_bytes", "energy_pj", "M", "K",
               "N", "mapping_efficiency"]
TOTAL_COLUMNS = ["total_cycles", "latency_us", "energy_uj", "pe_utilisation", "macs",
                 "compute_cycles", "stall_cycles", "dram_read_bytes", "dram_write_bytes",
                 "mapping_efficiency", "layers"]


def parse_input_shapes(values: tuple[str, ...]) -> dict[str, list[int]] | None:
    """``("x=1,3,224,224",)`` -> ``{"x": [1, 3, 224, 224]}`` (a clear error otherwise)."""
    out: dict[str, list[int]] = {}
    for v in values:
        name, _, dims = v.partition("=")
        try:
            shape = [int(d) for d in dims.replace("x", ",").split(",")]
        except ValueError:
            shape = []
        if not name or not shape or min(shape) <= 0:
            raise SimulatorError(f"--input-shape {v!r}: expected NAME=DIMS with positive "
                                 f"integers, e.g. x=1,3,224,224")
        out[name] = shape
    return out or None


def _warn(source: str, warnings: tuple[tuple[str, str], ...]) -> None:
    for path, msg in warnings:
        click.echo(f"warning: {source}: {path}: {msg}", err=True)


def _stem(path: Path) -> str:
    return safe_name(path.name if path.is_dir() else path.stem)


class _Group(click.Group):
    """Turn every SimulatorError into a short message and exit status 2 (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SimulatorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="approxsim")
def main() -> None:
    """approxsim: cycle-level simulation of DNN accelerators for approximated networks."""


@main.command()
@click.argument("arch", type=click.Path(path_type=Path))
@click.argument("workload", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Directory to write the result set into (atomically, as a whole).")
@click.option("--name", help="Name of the result set under -o (default: "
                             "<arch file stem>__<workload file stem>).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Printed format; with -o, the file format (table: csv).")
@click.option("--columns", help="Comma-separated per-layer columns of the table (default: as "
                                "many as fit the terminal).")
@click.option("--ofmap-rounding", type=click.Choice(["scalesim", "floor"]), default="scalesim",
              show_default=True, help="Output-size rule for SCALE-Sim topology CSVs.")
@click.option("--recipe", help="LLM specs only: a recipe (file or bundled name) to apply.")
@click.option("--prefill-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Hugging Face model directories: prompt length.")
@click.option("--decode-steps", type=click.IntRange(min=1), default=128, show_default=True,
              help="Hugging Face model directories: generated tokens.")
def run(arch: Path, workload: Path, output: Path | None, name: str | None, fmt: str,
        columns: str | None, ofmap_rounding: str, recipe: str | None, prefill_tokens: int,
        decode_steps: int) -> None:
    """Simulate WORKLOAD (network or LLM spec .yaml, trace, SCALE-Sim .csv, or a Hugging Face
    model directory with a config.json) on ARCH (.yaml or .cfg)."""
    if output is not None:
        check_output_dir(output)  # before any work
    spec = load_arch(arch)
    _warn(str(arch), spec.warnings)
    llm = None
    if workload.is_dir() and (workload / "config.json").is_file():
        from simulator.frontend.hf import llm_spec_from_hf

        llm = llm_spec_from_hf(workload, prefill_tokens=prefill_tokens,
                               decode_steps=decode_steps)
    elif workload.suffix.lower() in (".yaml", ".yml") and workload.is_file():
        data = read_yaml(workload, WorkloadError)
        if is_llm(data):
            llm = parse_llm(data, str(workload))
    if llm is not None:
        run_llm(spec, llm, recipe, output, fmt,
                name if name is not None else f"{_stem(arch)}__{_stem(workload)}")
        return
    if recipe is not None:
        raise SimulatorError(f"--recipe applies to LLM specs; compress {workload} with "
                             f"`approxsim compress` instead")
    wl = load_workload(workload, ofmap_rounding=ofmap_rounding)
    report = simulate(spec, wl)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    chosen = None
    if columns is not None:
        chosen = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in report.layers.columns]
        if unknown or not chosen:
            raise click.BadParameter(f"unknown column(s) {unknown}; choose from "
                                     f"{', '.join(report.layers.columns)}",
                                     param_hint="--columns")
    if output is not None:
        paths = report.write(output, "json" if fmt == "json" else "csv",
                             name=name if name is not None else f"{_stem(arch)}__{_stem(workload)}",
                             inputs={"arch": str(arch.resolve()),
                                     "workload": str(workload.resolve())})
        click.echo(f"wrote {paths[0].parent}/ ({', '.join(p.name for p in paths)})", err=True)
    if fmt == "csv" and output is None:
        click.echo(report.layers.to_csv(index=False), nl=False)
    elif fmt == "json" and output is None:
        click.echo(report.to_json())
    elif fmt == "table":
        console = Console()
        layers = report.layers
        cols = list(RUN_COLUMNS)
        if (layers["effectual_macs"] < layers["macs"]).any():  # a sparse workload
            cols[cols.index("macs") + 1:cols.index("macs") + 1] = ["effectual_macs",
                                                                   "load_imbalance"]
        title = f"{report.workload} on {report.arch}"
        if chosen:
            print_frame(console, layers, title, chosen)
        else:
            note_hidden(console, print_frame(console, layers[cols], title))
        totals = pd.DataFrame([{k: report.totals[k] for k in TOTAL_COLUMNS}])
        note_hidden(console, print_frame(console, totals, "totals"))
        print_energy(console, report)
        print_dynamic(console, report, wl, spec)


def run_llm(arch: Any, spec: Any, recipe: str | None, output: Path | None, fmt: str,
            name: str) -> None:
    """Simulate an LLM spec's phases; print its figures (and write them with ``-o``)."""
    from simulator.llm import simulate_llm

    if recipe is not None:
        from simulator.frontend.llm_recipe import apply_recipe
        from simulator.frontend.recipe import load_recipe

        spec = apply_recipe(spec, load_recipe(recipe))
    rep = simulate_llm(arch, spec)
    metrics = pd.DataFrame([rep.metrics])
    if output is not None:
        paths = rep.write(output, name=name)
        click.echo(f"wrote {paths[0].parent}/ ({', '.join(p.name for p in paths)})", err=True)
    if fmt == "csv":
        click.echo(metrics.to_csv(index=False), nl=False)
        return
    if fmt == "json":
        click.echo(metrics.to_json(orient="records", indent=2))
        return
    console = Console()
    cols = ["phase", "generated_tokens", "macs", "total_cycles", "latency_s", "dram_read_bytes",
            "weight_read_bytes", "weight_traffic_share", "energy_pj"]
    note_hidden(console, print_frame(console, rep.phases[cols], f"{rep.model} on {rep.arch}"))
    note_hidden(console, print_frame(console, metrics.drop(columns=["model"]), "LLM figures"))
    for note in rep.notes:
        click.echo(f"note: {note}", err=True)


@main.command("energy-table")
@click.argument("arch", type=click.Path(path_type=Path))
@click.option("--table", "table_path", type=click.Path(path_type=Path),
              help="Energy table YAML instead of the one ARCH names (or the 45 nm default).")
@click.option("--workload", type=click.Path(path_type=Path),
              help="Also show the entries this workload's layers need (MACs at their own "
                   "precision, mac@<format><w>x<a>).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table",
              show_default=True)
def energy_table(arch: Path, table_path: Path | None, workload: Path | None, fmt: str) -> None:
    """Print the energy table ARCH really uses: every (component, action), resolved, with its
    source and the architecture (or layer) parameters that chose it."""
    spec = load_arch(arch)
    _warn(str(arch), spec.warnings)
    variants: set[str] = set()
    if workload is not None:
        report = simulate(spec, load_workload(workload))
        variants = {a for r in report.results for (_, a) in r.actions if "@" in a}
    table = (load_energy_table(table_path, spec, variants=variants) if table_path
             else table_for(spec, variants=variants))
    df = table.frame()
    area = pd.DataFrame({"component": list(table.area_mm2),
                         "area_mm2": list(table.area_mm2.values()),
                         "source": [table.area_sources.get(c, "") for c in table.area_mm2]})
    synth = synthesised_area_mm2(build(spec), load_synthesis())
    if synth is not None:  # the synthesis-grounded PE area beside the table's (same PE count)
        mm2, source = synth
        area.insert(2, "area_mm2_synth", [mm2 if c == "pe_array" else float("nan")
                                          for c in area["component"]])
        area.insert(3, "synth_over_table", area["area_mm2_synth"] / area["area_mm2"])
        area.loc[area["component"] == "pe_array", "source"] += f" | synthesised: {source}"
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
        return
    console = Console()  # every column: long sources wrap within the terminal
    print_frame(console, df, f"energy table {table.name} for {spec.name} at "
                             f"{table.technology_nm:g} nm ({table.source})", list(df.columns))
    print_frame(console, area, "area", list(area.columns))


@main.command()
@click.argument("arch", type=click.Path(path_type=Path))
@click.argument("workload", type=click.Path(path_type=Path))
def fpga(arch: Path, workload: Path) -> None:
    """Place WORKLOAD on an FPGA architecture (pe_array impl fpga_finn): per-layer units,
    resources, utilisation of the part, frames per second."""
    from simulator.hardware.fpga import fpga_report, resource_frame

    spec = load_arch(arch)
    unit = build(spec).pe_array
    if not hasattr(unit, "plan"):
        raise SimulatorError(f"{arch}: pe_array impl {spec.pe_array.impl!r} is not an FPGA "
                             f"target (use impl: fpga_finn)")
    wl = load_workload(workload)
    df, totals = fpga_report(unit, wl.layers, spec.clock_mhz)  # type: ignore[arg-type]
    console = Console(width=max(Console().width, 160))
    note_hidden(console, print_frame(console, df, f"{wl.name} on {spec.name} "
                                                  f"({unit.params.device})"))  # type: ignore[attr-defined]
    used = resource_frame(unit, totals)  # type: ignore[arg-type]
    print_frame(console, used, f"resources of {unit.device.description}",  # type: ignore[attr-defined]
                list(used.columns))
    click.echo(f"{totals['fps']:,.0f} frames/s at {spec.clock_mhz:g} MHz (interval "
               f"{int(totals['interval_cycles'])} cycles: the slowest layer); latency "
               f"{totals['latency_us']:.3f} us (sum of layer cycles)")


@main.group()
def validate() -> None:
    """Compare approxsim against reference simulators."""


@validate.command("scalesim")
@click.option("-c", "--config", "configs", type=click.Path(path_type=Path, exists=True),
              multiple=True, help="SCALE-Sim .cfg file(s); default: the bundled 8x8 os/ws/is.")
@click.option("-t", "--topology", type=click.Path(path_type=Path, exists=True),
              help="SCALE-Sim topology CSV; default: workloads/scalesim/tiny.csv.")
def validate_scalesim(configs: tuple[Path, ...], topology: Path | None) -> None:
    """Run the real SCALE-Sim and approxsim on the same inputs; print cycle differences."""
    from simulator.validation.scalesim import REPO, compare, run_scalesim

    base = REPO / "workloads" / "scalesim"
    cfgs = list(configs) or [base / f"scalesim_8x8_{df}.cfg" for df in ("os", "ws", "is")]
    topo = topology or base / "tiny.csv"
    load_topology(topo)  # our own checks first (header, duplicate names): exit 2, not SCALE-Sim's
    for cfg in cfgs:
        load_arch(cfg)
    frames = [compare(cfg, topo, run_scalesim(cfg, topo)) for cfg in cfgs]
    df = pd.concat(frames, ignore_index=True)
    console = Console()
    note_hidden(console, print_frame(console, df, f"SCALE-Sim 3.0.0 vs approxsim on "
                                                  f"{topo.name}"))
    bad = int((df["compute_diff"] != 0).sum())
    click.echo(f"{len(df) - bad} of {len(df)} layers agree exactly on compute cycles")
    if bad:
        sys.exit(1)


@validate.command("rtl")
@click.option("--full", is_flag=True, help="The full case set (more shapes; ~30 s).")
def validate_rtl(full: bool) -> None:
    """Simulate the generated RTL array on small GEMMs; compare values and cycles."""
    from simulator.rtl.crosscheck import FAST_CASES, FULL_CASES, crosscheck

    df = crosscheck(FULL_CASES if full else FAST_CASES)
    console = Console(width=max(Console().width, 200))
    note_hidden(console, print_frame(console, df, "generated RTL (Amaranth simulator) vs "
                                                  "numpy and the fast simulator's closed form"))
    bad = int((~df["values_equal"] | ~df["explained"]).sum())
    click.echo(f"{int(df['values_equal'].sum())} of {len(df)} cases: outputs equal numpy's "
               f"product; {int(df['cycles_equal'].sum())} of {len(df)}: busy cycles equal the "
               f"closed form exactly, {int((df['explained'] & ~df['cycles_equal']).sum())} "
               f"differ by the os drain's idle cycles between folds (fold_gap_cycles)")
    if bad:
        sys.exit(1)


@main.command()
@click.argument("model")
@click.argument("recipe")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Trace to write: a directory, or a .zip (atomically).")
@click.option("--seed", type=int, default=0, show_default=True, help="Fine-tuning seed.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
              envvar="APPROXSIM_CACHE_DIR", default=lambda: str(default_cache_dir()),
              show_default="$XDG_CACHE_HOME/approxsim or ~/.cache/approxsim",
              help="Where the bundled model keeps its trained weights "
                   "(env APPROXSIM_CACHE_DIR).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=DIMS",
              help="ONNX: fix a graph input's shape, e.g. x=1,3,224,224 (repeatable).")
@click.option("--calibration", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Calibration inputs (.npy, first axis = examples): activation zeros, "
                   "activation scales, agreement with the uncompressed model.")
@click.option("--test-data", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="ONNX: a labelled test set (.npz with arrays x and y) for top-1 accuracy.")
@click.option("--arch", "arch_path", type=click.Path(path_type=Path),
              help="Also simulate baseline and compressed model on this architecture and "
                   "print their cost side by side, per layer and for the model.")
@click.option("--no-finetune", is_flag=True,
              help="Drop the recipe's fine-tuning (post-training result; needed on ONNX).")
def compress(model: str, recipe: str, output: Path, seed: int, cache_dir: Path,
             input_shapes: tuple[str, ...], calibration: Path | None, test_data: Path | None,
             arch_path: Path | None, no_finetune: bool) -> None:
    """Compress MODEL with RECIPE and write the workload trace.

    MODEL is a bundled name (digits-lenet), 'package.module:factory' (returning a torch module,
    or a (module, TaskData) pair) or an .onnx file. RECIPE is a recipe YAML or the name of a
    bundled one (workloads/recipes/).
    """
    import dataclasses

    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from simulator.frontend import compress as run_compress
    from simulator.frontend import load_model, load_recipe

    rec = load_recipe(recipe)  # every error of the recipe before any model is loaded
    check_trace_target(output)  # and of the output path
    cmp_arch = load_arch(arch_path) if arch_path is not None else None  # and of the arch
    if no_finetune:
        rec = dataclasses.replace(rec, finetune=rec.finetune.model_copy(update={"epochs": 0}))
    shapes = parse_input_shapes(input_shapes)
    calib = np.load(calibration) if calibration is not None else None
    test = None
    if test_data is not None:
        with np.load(test_data) as z:
            if not {"x", "y"} <= set(z.files):
                raise SimulatorError(f"{test_data}: expected arrays 'x' and 'y' (has "
                                     f"{sorted(z.files)})")
            test = (z["x"], z["y"])
    console = Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        net, data, name = load_model(model, progress, cache_dir=cache_dir)
        if isinstance(net, Path):
            from simulator.frontend.onnx import compress_onnx

            result = compress_onnx(net, rec, shapes, calibration=calib, test=test, seed=seed)
        else:
            if data is None and calib is not None:
                from simulator.frontend.training import unlabelled

                data = unlabelled(calib, f"{calibration}")
            if data is None:
                raise SimulatorError(f"model {model!r}: the factory returned no data; return "
                                     f"(module, simulator.frontend.training.TaskData) or pass "
                                     f"--calibration inputs.npy")
            result = run_compress(net, rec, data, name=name, progress=progress, seed=seed)
    note_hidden(console, print_frame(console, result.table(),
                                     f"{name}: {rec.name} (before -> after)"))
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    acc = result.trace.accuracy
    if acc is not None and acc.baseline is not None and acc.compressed is not None:
        click.echo(f"accuracy on {acc.dataset}, {acc.samples} samples: baseline "
                   f"{acc.baseline:.2%}, compressed {acc.compressed:.2%} "
                   f"({(acc.compressed - acc.baseline) * 100:+.2f} points)")
    if acc is not None and acc.agreement is not None:
        click.echo(f"agreement with the uncompressed model ({acc.samples} samples, no labels"
                   f" used): top-1 {acc.agreement:.2%}, output cosine {acc.output_cosine:.4f}")
    if acc is not None and acc.perplexity is not None:
        click.echo(f"perplexity: baseline {acc.perplexity[0]:.3f}, compressed "
                   f"{acc.perplexity[1]:.3f}")
    if cmp_arch is not None:
        from simulator.frontend.compare import compare
        from simulator.printing import print_comparison

        print_comparison(console, compare(cmp_arch, result), cmp_arch.name)
    click.echo(f"wrote {write_trace(result.trace, output)}")


main.add_command(sweep_cmd)
main.add_command(report_cmd)
