"""Sweeps on real processes: a ``kill -9`` of a running sweep and its resume, and a real Dask
cluster (``dask scheduler`` + two ``dask worker`` processes on loopback) started and stopped
here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simulator.sweep import ResultStore, sweep

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def write_sweep(tmp: Path, axes: dict[str, list[object]]) -> Path:
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "name": "dse", "arch": str(ROOT / "arch_configs" / "edge_8x8.yaml"), "axes": axes,
        "workloads": [str(ROOT / "workloads" / "networks" / "lenet5.yaml")]}))
    return path


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    out = subprocess.run(["ps", "-o", "stat=", "-g", str(pgid)], capture_output=True,
                         text=True, check=False).stdout.split()
    return any(not s.startswith("Z") for s in out)


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Kill a running `approxsim sweep` with SIGKILL once part of the store is written; the
    same command then finishes the sweep: every point exactly once, its layers exactly once,
    and the parts written before the kill untouched. (In-process, ``--workers 0``, to keep the
    suite fast: the store and the resume logic are the same with Dask, whose worker processes
    exit when their parent dies, and Dask itself is tested below.)"""
    path = write_sweep(tmp_path, {"pe_array.rows": [2, 4, 8, 16],
                                  "pe_array.cols": [2, 4, 8, 16, 32],
                                  "pe_array.dataflow": ["os", "ws", "is"]})  # 60 points
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "simulator", "sweep", str(path), "-o", str(out),
           "--workers", "0", "--flush-every", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list((out / "parts").glob("part-*")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()  # type: ignore[union-attr]
    store = ResultStore.open(out)
    before = {p.name: (p / "points.parquet").read_bytes() for p in store.parts()}
    done = store.points()
    assert 0 < len(done) < 60
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                           check=False)
    assert again.returncode == 0, again.stderr
    assert f"60 points: {len(done)} already in" in again.stdout
    pts, lay = store.points(), store.layers()
    assert len(pts) == 60 and pts["point_hash"].is_unique
    assert sorted(pts["point_index"]) == list(range(60))
    assert pts["error"].isna().all()
    assert len(lay) == 60 * 6  # LeNet-5: 6 layers
    assert not lay.duplicated(["point_hash", "layer"]).any()
    assert set(lay["point_hash"]) == set(pts["point_hash"])
    for name, data in before.items():  # nothing written before the kill was rewritten
        assert (out / "parts" / name / "points.parquet").read_bytes() == data


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A real scheduler and two single-thread workers on 127.0.0.1, stopped afterwards."""
    dask = BIN / "dask"
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(sched_file)], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen(
                [str(dask), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--nworkers", "1", "--no-dashboard", "--name", f"w{i}"], cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):  # workers first, then the scheduler
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)


def test_sweep_on_a_real_dask_cluster(tmp_path: Path, dask_cluster: str) -> None:
    """Both workers run points; every number equals the in-process run of the same sweep."""
    path = write_sweep(tmp_path, {"pe_array.rows": [4, 8, 16], "pe_array.dataflow":
                                  ["os", "ws", "is"], "buffers.ifmap.size_kb": [8, 32]})
    summary = sweep(path, tmp_path / "cluster", scheduler=dask_cluster, chunk_size=1)
    assert (summary.points, summary.ran, summary.errors) == (18, 18, 0)
    assert summary.workers == 2 and summary.scheduler == dask_cluster
    assert len(summary.worker_peak_rss_mb) == 2
    got = ResultStore.open(tmp_path / "cluster").points()
    assert set(got["worker"]) == {"w0", "w1"}
    sweep(path, tmp_path / "local", workers=0)
    ref = ResultStore.open(tmp_path / "local").points()
    cols = ["point_index", "pe_array.rows", "pe_array.dataflow", "total_cycles",
            "stall_cycles", "energy_pj", "dram_read_bytes", "area_mm2"]
    pd.testing.assert_frame_equal(got.set_index("point_hash")[cols].sort_index(),
                                  ref.set_index("point_hash")[cols].sort_index())
