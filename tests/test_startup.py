"""Start-up stays light (issue 12, item 5): ``import simulator`` loads no heavy library, the
public names load what they need on first use (and only that: ``simulate`` never pandas),
and every name the package exports resolves. Times are benchmarks (``benchmarks/startup.py``),
never asserted here; which modules load is."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st

from simulator.mapping.schedule import union_sorted

HEAVY = ("numpy", "pydantic", "simpy", "pandas", "yaml", "rich", "click", "typer", "torch",
         "dask", "pyarrow", "matplotlib", "scipy")


def loaded_after(code: str) -> set[str]:
    """Top-level packages among :data:`HEAVY` that a fresh interpreter holds after ``code``."""
    names = "{m.split('.')[0] for m in sys.modules}"
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({names} & {set(HEAVY)!r})))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, cwd=REPO,
                         capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_simulator_loads_no_heavy_library() -> None:
    assert loaded_after("import simulator") == set()


def test_simulate_loads_the_pipeline_but_not_pandas_or_the_cli() -> None:
    got = loaded_after("from simulator import simulate, load_arch, load_workload")
    assert {"numpy", "pydantic", "yaml"} <= got
    # simpy too: the engine replays its run (simulator/timeline.py), SimPy runs on request
    assert not got & {"pandas", "rich", "click", "typer", "torch", "dask", "pyarrow",
                      "matplotlib", "simpy"}


def test_a_simulation_builds_no_frame_until_asked() -> None:
    code = ("from simulator import simulate, load_arch, load_workload\n"
            "r = simulate(load_arch('arch_configs/scalesim_32x32_os.yaml'), "
            "load_workload('workloads/networks/lenet5.yaml'))\n"
            "assert r.totals['layers'] == 6")
    assert not loaded_after(code) & {"pandas", "simpy"}


def test_every_exported_name_resolves() -> None:
    import simulator

    for name in simulator.__all__:
        assert getattr(simulator, name) is not None, name
    assert set(simulator.__all__) <= set(dir(simulator))


def test_a_simulation_does_not_import_numpy_ma() -> None:
    """``np.unique`` / ``np.union1d`` import ``numpy.ma`` on first use (15-25 ms of a fresh
    process's first ``simulate``); the tile grouping uses :func:`union_sorted` instead."""
    code = ("from simulator import simulate, load_arch, load_workload\n"
            "r = simulate(load_arch('arch_configs/scalesim_32x32_os.yaml'), "
            "load_workload('workloads/networks/resnet50.yaml'))\n"
            "import sys\nassert 'numpy.ma' not in sys.modules, 'numpy.ma'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@given(st.lists(st.integers(-50, 50), max_size=30), st.lists(st.integers(-50, 50), max_size=30))
def test_union_sorted_is_union1d(a: list[int], b: list[int]) -> None:
    x, y = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
    got = union_sorted(x, y)
    assert got.dtype == np.int64
    assert got.tolist() == np.union1d(x, y).tolist()
