"""The README's examples run as written (SimPy-style docs tests).

Every ```python block of README.md is executed; every `$ approxsim ...` line that reads only
bundled files is run as a subprocess (compress/validate lines need the extras or SCALE-Sim
and are exercised by their own tests)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
RUN_LINES = [ln[2:].strip() for ln in re.findall(r"^\$ approxsim run .*$", README, flags=re.M)]


def test_readme_has_examples() -> None:
    assert PYTHON_BLOCKS and RUN_LINES


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"python{i}" for i in
                                                     range(len(PYTHON_BLOCKS))])
def test_python_block_runs(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "simulator.frontend" in block:
        pytest.skip("frontend example: covered by tests/test_frontend_digits.py")
    monkeypatch.chdir(ROOT)
    code = block.replace('"out"', repr(str(tmp_path / "out")))
    exec(compile(code, "README.md", "exec"), {})


@pytest.mark.parametrize("line", [ln for ln in RUN_LINES if "traces/" not in ln])
def test_cli_example_runs(line: str, tmp_path: Path) -> None:
    args = shlex.split(line)[1:]
    args = [str(tmp_path / "out") if a.rstrip("/") == "out" else a for a in args]
    proc = subprocess.run([sys.executable, "-m", "simulator", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    if "-o" in args:
        assert list((tmp_path / "out").glob("*/layers.csv"))


YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("block", [b for b in YAML_BLOCKS if "pe_array:" in b and "name:" in b])
def test_architecture_example_is_valid(block: str) -> None:
    import yaml

    from simulator import parse_arch, simulate
    from simulator.workload.spec import parse_network

    raw = yaml.safe_load(block)
    if set(raw) <= {"pe_array"}:  # a fragment, not a whole file
        pytest.skip("fragment")
    arch = parse_arch(raw, source="README.md")
    net = parse_network({"name": "one", "layers": [
        {"name": "c", "op": "conv2d", "in_channels": 3, "out_channels": 8, "in_h": 8,
         "in_w": 8, "kernel": 3}]})
    assert simulate(arch, net).totals["total_cycles"] > 0
