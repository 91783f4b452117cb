"""The ``approxsim`` command line. Parsing and printing only; no model logic here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from simulator.config import load_arch
from simulator.errors import SimulatorError
from simulator.simulation import simulate
from simulator.workload import load_workload

RUN_COLUMNS = ["layer", "op", "M", "K", "N", "macs", "compute_cycles", "stall_cycles",
               "total_cycles", "pe_utilisation", "mapping_efficiency", "dram_read_bytes",
               "dram_write_bytes"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.3f}"  # NaN for vector layers
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_frame(console: Console, df: pd.DataFrame, title: str) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for col in df.columns:
        table.add_column(col, justify="left" if df[col].dtype == object else "right")
    for row in df.itertuples(index=False):
        table.add_row(*(_fmt(v.item() if hasattr(v, "item") else v) for v in row))
    console.print(table)


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
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False),
              help="Directory to write result files into (atomically).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Printed format; with -o, the file format (table: csv).")
@click.option("--ofmap-rounding", type=click.Choice(["scalesim", "floor"]), default="scalesim",
              show_default=True, help="Output-size rule for SCALE-Sim topology CSVs.")
def run(arch: Path, workload: Path, output: Path | None, fmt: str, ofmap_rounding: str) -> None:
    """Simulate WORKLOAD (network spec .yaml or SCALE-Sim .csv) on ARCH (.yaml or .cfg)."""
    report = simulate(load_arch(arch), load_workload(workload, ofmap_rounding=ofmap_rounding))
    if output is not None:
        for path in report.write(output, "json" if fmt == "json" else "csv"):
            click.echo(f"wrote {path}", err=True)
    if fmt == "csv" and output is None:
        click.echo(report.layers.to_csv(index=False), nl=False)
    elif fmt == "json" and output is None:
        click.echo(report.to_json())
    elif fmt == "table":
        console = Console(width=max(Console().width, 160))
        print_frame(console, report.layers[RUN_COLUMNS],
                    f"{report.workload} on {report.arch}")
        totals = report.totals
        keys = ["layers", "macs", "compute_cycles", "stall_cycles", "total_cycles",
                "pe_utilisation", "mapping_efficiency", "dram_read_bytes", "dram_write_bytes",
                "latency_us"]
        print_frame(console, pd.DataFrame([{k: totals[k] for k in keys}]), "totals")


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
    from simulator.validation import REPO, compare, run_scalesim

    base = REPO / "workloads" / "scalesim"
    cfgs = list(configs) or [base / f"scalesim_8x8_{df}.cfg" for df in ("os", "ws", "is")]
    topo = topology or base / "tiny.csv"
    frames = [compare(cfg, topo, run_scalesim(cfg, topo)) for cfg in cfgs]
    df = pd.concat(frames, ignore_index=True)
    print_frame(Console(width=200), df, f"SCALE-Sim 3.0.0 vs approxsim on {topo.name}")
    bad = int((df["compute_diff"] != 0).sum())
    click.echo(f"{len(df) - bad} of {len(df)} layers agree exactly on compute cycles")
    if bad:
        sys.exit(1)
