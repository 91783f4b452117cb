"""Running a sweep: on a Dask cluster (local or remote) or in this process, resumably.

``sweep(spec, output)`` expands the points, skips those already in the store, compresses the
recipes that pending points need (once, cached in the store), then runs the rest in chunks:

* ``workers=0``: in this process, one chunk after the other (no Dask; for debugging);
* ``workers=N`` (default: the machine's cores): a ``distributed.LocalCluster`` of N worker
  processes with one thread each (the simulator is single-threaded numpy and SimPy);
* ``scheduler="tcp://host:8786"``: an existing cluster (``dask scheduler`` and
  ``dask worker`` processes, or ``dask-jobqueue`` on Slurm); its workers must run the same
  approxsim code (checked: every worker reports its code version before any work).

Workloads go to the workers once (``Client.scatter(broadcast=True)``), not with each task.
Results come back as chunks finish and are appended to the store every ``flush_every`` points
or ``flush_seconds``, whichever comes first, and once more on any exit (an exception,
Ctrl-C); a ``kill -9`` loses at most the unflushed points, which the rerun computes again.
The library never prints: ``progress(phase, done, total)`` reports compression and
simulation progress (the CLI draws a bar with rate and ETA from it).

**Shared work between points.** Each point is one independent ``simulate`` call; points share
the scattered workloads and, within a chunk of points, the simulator's layer memo
(:class:`simulator.memo.LayerCache`, one per chunk): a layer whose content, architecture and
context equal an earlier point's reuses its result. The sweep adds no second memo of its own.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import SimulatorError
from simulator.frontend._deps import require
from simulator.sweep.evaluate import PointResult, Task, peak_rss_mb, run_chunk
from simulator.sweep.expand import Point, expand
from simulator.sweep.hashing import code_version
from simulator.sweep.sources import Loaded, Sources
from simulator.sweep.spec import SweepSpec, load_sweep
from simulator.sweep.store import ResultStore

Progress = Callable[[str, int, int], None]


class ClusterError(SimulatorError):
    """A Dask cluster cannot be reached, has no workers, or runs other approxsim code."""
SIMULATE = "simulate"


@dataclass(frozen=True, slots=True)
class SweepSummary:
    """What a sweep did. ``wall_s`` and memory are machine-dependent measurements."""

    output: Path
    points: int
    already_done: int
    ran: int
    errors: int
    wall_s: float
    simulate_s: float
    workers: int
    scheduler: str | None
    worker_peak_rss_mb: Mapping[str, float] = field(default_factory=dict)

    @property
    def points_per_s(self) -> float:
        return self.ran / self.simulate_s if self.simulate_s > 0 else math.nan


def _noop(phase: str, done: int, total: int) -> None:
    return None


def _chunks(tasks: Sequence[Task], size: int) -> list[list[Task]]:
    return [list(tasks[i:i + size]) for i in range(0, len(tasks), size)]


class _Executor:
    """Runs chunks of tasks and yields each chunk's results as it finishes."""

    workers = 0
    address: str | None = None

    def run(self, chunks: list[list[Task]],
            workloads: Mapping[str, Loaded]) -> Iterator[list[PointResult]]:
        for chunk in chunks:
            out = run_chunk(chunk, workloads)
            for r in out:
                r.row["worker"] = "local"
            yield out

    def peak_rss(self) -> dict[str, float]:
        return {"local": peak_rss_mb()}


class _Dask(_Executor):
    def __init__(self, client: Any, workers: int, address: str | None) -> None:
        self.client = client
        self.workers = workers
        self.address = address

    def run(self, chunks: list[list[Task]],
            workloads: Mapping[str, Loaded]) -> Iterator[list[PointResult]]:
        from distributed import as_completed

        client = self.client
        scattered = {k: client.scatter(w, broadcast=True, hash=False)
                     for k, w in workloads.items()}
        futures = [client.submit(_run_on_worker, chunk,
                                 {k: scattered[k] for k in {t.workload for t in chunk}},
                                 pure=False)
                   for chunk in chunks]
        try:
            for fut in as_completed(futures):
                result = fut.result()
                fut.release()
                yield result
        finally:
            client.cancel(futures)

    def peak_rss(self) -> dict[str, float]:
        return {str(k): float(v) for k, v in self.client.run(peak_rss_mb).items()}


def _run_on_worker(tasks: Sequence[Task], workloads: Mapping[str, Loaded]) -> list[PointResult]:
    """:func:`run_chunk` in a Dask worker; each row records the worker's name."""
    from distributed import get_worker

    name = str(get_worker().name)
    out = run_chunk(tasks, workloads)
    for r in out:
        r.row["worker"] = name
    return out


def _quiet(level: int = logging.WARNING) -> None:
    """In the worker processes this sweep started (only): Dask's routine INFO messages
    (connections closing) off their shared stderr; warnings and errors stay until shutdown."""
    logging.getLogger("distributed").setLevel(level)


@contextmanager
def _executor(workers: int | None, scheduler: str | None) -> Iterator[_Executor]:
    if scheduler is None and workers == 0:
        yield _Executor()
        return
    distributed = require("distributed")
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") \
                from None
        try:
            versions = client.run(code_version)
            mine = code_version()
            bad = {w: v for w, v in versions.items() if v != mine}
            if not versions:
                raise ClusterError(f"the Dask scheduler at {scheduler} has no workers")
            if bad:
                raise ClusterError(f"workers of {scheduler} run other approxsim code than this "
                                   f"({mine}): " + ", ".join(f"{w} runs {v}"
                                                             for w, v in sorted(bad.items())))
            yield _Dask(client, len(versions), scheduler)
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        client.run(_quiet)
        yield _Dask(client, n, None)
    finally:
        # Shutting down races the workers' heartbeats and the nannies' own close (Dask logs
        # these as errors, although nothing is lost): silence Dask while the cluster we
        # started goes down, in its workers and, for those seconds only, here.
        log = logging.getLogger("distributed")
        before = log.level
        log.setLevel(logging.CRITICAL)
        try:
            client.run(_quiet, logging.CRITICAL)
            client.retire_workers(close_workers=True)
        finally:
            client.close()
            cluster.close()
            log.setLevel(before)


def _tasks(points: Sequence[Point], spec: SweepSpec) -> list[Task]:
    by_label = {w.label: w for w in spec.workloads}
    return [Task(p.hash, p.arch, p.workload, p.meta(spec.name, by_label[p.workload]))
            for p in points]


def run_sweep(spec: SweepSpec | str | Path, output: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, progress: Progress | None = None,
              cache_dir: Path | None = None, flush_every: int = 64,
              flush_seconds: float = 10.0, chunk_size: int | None = None) -> SweepSummary:
    """Run (or resume) a sweep into the store ``output``; return what it did."""
    t0 = time.perf_counter()
    sp = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    report = progress or _noop
    code = code_version()
    store = ResultStore.create(output, code, sp.name, sp.axis_names)
    sources = Sources(sp.seed, store.traces, cache_dir, report)
    points = expand(sp, sources, code)
    done = store.done()
    todo = [p for p in points if p.hash not in done]
    tasks = _tasks(todo, sp)
    loaded = {label: sources.load(w) for w in sp.workloads
              if (label := w.label) in {t.workload for t in tasks}}
    ran = errors = 0
    peak: dict[str, float] = {}
    with _executor(0 if not tasks and scheduler is None else workers, scheduler) as ex:
        n_workers = max(ex.workers, 1)
        size = chunk_size or max(1, min(16, math.ceil(len(tasks) / (4 * n_workers))))
        t_sim = time.perf_counter()
        report(SIMULATE, 0, len(tasks))
        buf: list[PointResult] = []
        last = time.monotonic()

        def flush() -> None:
            nonlocal last
            if buf:
                store.append([r.row for r in buf], [r.layers for r in buf])
                buf.clear()
            last = time.monotonic()

        try:
            for results in ex.run(_chunks(tasks, size), loaded):
                buf.extend(results)
                ran += len(results)
                errors += sum(r.row["error"] is not None for r in results)
                report(SIMULATE, ran, len(tasks))
                if len(buf) >= flush_every or time.monotonic() - last >= flush_seconds:
                    flush()
        finally:
            flush()
        sim_s = time.perf_counter() - t_sim
        if tasks:
            peak = ex.peak_rss()
    return SweepSummary(output=Path(output), points=len(points), already_done=len(points) -
                        len(todo), ran=ran, errors=errors, wall_s=time.perf_counter() - t0,
                        simulate_s=sim_s, workers=ex.workers, scheduler=ex.address,
                        worker_peak_rss_mb=peak)
