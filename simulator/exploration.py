"""The CLI of design-space exploration: ``approxsim sweep`` and ``approxsim report`` (parsing
and printing only; the work is :mod:`simulator.sweep` and :mod:`simulator.reporting`).
Registered on the ``approxsim`` group by :mod:`simulator.cli`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from simulator.console import default_cache_dir, note_hidden, print_frame


@click.command("sweep")
@click.argument("sweep_file", metavar="SWEEP", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Results store (a directory); rerun the same command to resume.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local Dask worker processes (default: one per core); 0 runs in this "
                   "process without Dask.")
@click.option("--scheduler", metavar="ADDRESS",
              help="An existing Dask scheduler, e.g. tcp://HOST:8786 (dask-jobqueue on Slurm).")
@click.option("--flush-every", type=click.IntRange(min=1), default=64, show_default=True,
              help="Points per store part (also written every 10 s).")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
              envvar="APPROXSIM_CACHE_DIR", default=lambda: str(default_cache_dir()),
              show_default="$XDG_CACHE_HOME/approxsim or ~/.cache/approxsim",
              help="Where bundled models keep their trained weights.")
def sweep_cmd(sweep_file: Path, output: Path, workers: int | None, scheduler: str | None,
              flush_every: int, cache_dir: Path) -> None:
    """Run (or resume) the design-space sweep SWEEP into the results store OUTPUT."""
    import logging

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from simulator.sweep import sweep

    logging.getLogger("distributed").setLevel(logging.ERROR)
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=err) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total, rate="")
            bar.update(tasks[phase], completed=done, total=total)
            speed = bar.tasks[tasks[phase]].speed
            if phase == "simulate" and speed:
                bar.update(tasks[phase], rate=f"{speed:.1f} points/s")

        try:
            s = sweep(sweep_file, output, workers=workers, scheduler=scheduler,
                      progress=progress, cache_dir=cache_dir, flush_every=flush_every)
        except KeyboardInterrupt:
            err.print(f"interrupted: finished points are in {output}; rerun the same command "
                      f"to resume")
            sys.exit(130)
    where = s.scheduler or (f"{s.workers} local worker(s)" if s.workers else "this process")
    click.echo(f"{s.points} points: {s.already_done} already in {s.output}, {s.ran} run on "
               f"{where} in {s.simulate_s:.1f} s ({s.points_per_s:.2f} points/s), "
               f"{s.errors} with errors")
    if s.worker_peak_rss_mb:
        peaks = ", ".join(f"{v:.0f}" for v in s.worker_peak_rss_mb.values())
        click.echo(f"peak memory per worker (MB): {peaks}")
    if s.errors:
        click.echo(f"see the `error` column: approxsim report {s.output} -o DIR", err=True)


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False),
              help="Directory for the tables and figures (required without --diff).")
@click.option("--diff", nargs=2, metavar="A B",
              help="Per-layer deltas of point B against point A (hash prefixes).")
@click.option("--point", "points", multiple=True, metavar="HASH",
              help="A point to break down per layer (repeatable; default: the lowest-energy "
                   "point of each workload).")
@click.option("--format", "formats", type=click.Choice(["png", "svg"]), multiple=True,
              default=("png", "svg"), show_default=True, help="Figure formats (repeatable).")
def report_cmd(results: tuple[Path, ...], output: Path | None, diff: tuple[str, str] | None,
               points: tuple[str, ...], formats: tuple[str, ...]) -> None:
    """Tables (CSV, Markdown, LaTeX) and figures from one or more RESULTS stores."""
    from simulator.reporting import explain, write_diff, write_report

    if diff:
        table, paths = write_diff(results, diff[0], diff[1], output)
        console = Console()
        note_hidden(console, print_frame(
            console, table, f"B - A per layer (energy in pJ): A = {table.attrs['a'][:12]}, "
                            f"B = {table.attrs['b'][:12]}"))
        click.echo(explain(table))
    elif output is None:
        raise click.UsageError("give -o DIR for the report (or --diff A B)")
    else:
        paths = write_report(results, output, formats=formats, points=points)
    for p in paths:
        click.echo(f"wrote {p}", err=True)
