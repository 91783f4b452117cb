"""Bad input, interrupted writes and hostile files (issue 17): every case is a named error with
exit status 2 (or a valid result), nothing is lost, nothing is written outside ``-o``.

The corpus ``tests/bad_inputs/cases.yaml`` lists command lines with their exit status and the
fragments their message must name; generated cases (a 52 MB file, zip bombs, signals) follow.
"""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from simulator import load_arch, load_workload, simulate
from simulator.cli import main

HERE = Path(__file__).resolve().parent / "bad_inputs"
ROOT = HERE.parent.parent
CASES = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))


def _args(args: list[str], tmp: Path) -> list[str]:
    (tmp / "file").write_text("not a directory\n", encoding="utf-8")
    (tmp / "x.zip").mkdir(exist_ok=True)
    out = []
    for a in map(str, args):
        a = a.replace("FILE", str(tmp / "file")).replace("DIR.zip", str(tmp / "x.zip"))
        a = a.replace("OUT", str(tmp / "out"))
        if not a.startswith("-") and (HERE / a).exists() and a not in ("run", "compress"):
            a = str(HERE / a)
        out.append(a)
    return out


def invoke(args: list[str], **env: str) -> Any:
    return CliRunner().invoke(main, args, env=env or None)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_corpus_case(case: dict[str, Any], tmp_path: Path) -> None:
    if case["id"] == "output-read-only" and os.access("/sys", os.W_OK) and \
            _writable_probe(Path("/sys/approxsim-test")):
        pytest.skip("/sys is writable on this machine")
    if case["args"][0] == "compress":
        pytest.importorskip("torch")
    start = time.perf_counter()
    res = invoke(_args(case["args"], tmp_path))
    elapsed = time.perf_counter() - start
    text = res.output
    assert res.exit_code == case["exit"], text
    assert "Traceback" not in text and not isinstance(res.exception, (KeyError, TypeError,
                                                                      ValueError, OSError))
    for fragment in case["expect"]:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    assert elapsed < 20, "a bad input must be refused before any real work"


def _writable_probe(path: Path) -> bool:
    try:
        path.mkdir()
    except OSError:
        return False
    path.rmdir()
    return True


# --------------------------------------------------------------------- output names and paths


def _run(arch: str, *extra: str, out: Path) -> Any:
    return invoke(["run", str(HERE / arch), str(HERE / "net_tiny.yaml"), "-o", str(out), *extra])


def _all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("arch", ["arch_name_escapes.yaml", "arch_name_slash.yaml",
                                  "arch_name_long.yaml"])
def test_file_names_never_come_from_file_contents(arch: str, tmp_path: Path) -> None:
    """``name: ../escaped``, ``edge/v2`` or 300 characters: results land in -o, named by the
    input files' stems, and nothing appears beside -o."""
    out = tmp_path / "sub" / "out"
    res = _run(arch, out=out)
    assert res.exit_code == 0, res.output
    assert _all_files(tmp_path) == _all_files(out)
    (result,) = out.iterdir()
    assert result.name == f"{Path(arch).stem}__net_tiny"
    assert {p.name for p in result.iterdir()} == {"layers.csv", "totals.csv", "actions.csv",
                                                  "energy.csv", "manifest.json"}
    # the library's default name is the report's names, made safe and bounded
    report = simulate(load_arch(HERE / arch), load_workload(HERE / "net_tiny.yaml"))
    (written, *_) = report.write(tmp_path / "api", "csv")
    assert written.parent.parent == tmp_path / "api"
    assert "/" not in written.parent.name and len(written.parent.name) <= 100
    assert not written.parent.name.startswith(".")


def test_two_configs_with_one_name_keep_both_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run("arch_same_name_a.yaml", out=out).exit_code == 0
    assert _run("arch_same_name_b.yaml", out=out).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["arch_same_name_a__net_tiny",
                                                     "arch_same_name_b__net_tiny"]


def test_same_stem_from_another_folder_is_refused_not_overwritten(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / "arch_same_name_a.yaml"
    twin.write_text((HERE / "arch_same_name_b.yaml").read_text(encoding="utf-8"),
                    encoding="utf-8")
    out = tmp_path / "out"
    assert _run("arch_same_name_a.yaml", out=out).exit_code == 0
    before = (out / "arch_same_name_a__net_tiny" / "manifest.json").read_text(encoding="utf-8")
    res = invoke(["run", str(twin), str(HERE / "net_tiny.yaml"), "-o", str(out)])
    assert res.exit_code == 2 and "other inputs" in res.output and "--name" in res.output
    assert (out / "arch_same_name_a__net_tiny" / "manifest.json").read_text(
        encoding="utf-8") == before
    res = invoke(["run", str(twin), str(HERE / "net_tiny.yaml"), "-o", str(out), "--name",
                  "twin"])
    assert res.exit_code == 0 and (out / "twin" / "layers.csv").is_file()


def test_a_folder_that_is_not_a_result_set_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    mine = out / "arch_name_slash__net_tiny"
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("precious", encoding="utf-8")
    res = _run("arch_name_slash.yaml", out=out)
    assert res.exit_code == 2 and "not an approxsim result set" in res.output
    assert (mine / "thesis.tex").read_text(encoding="utf-8") == "precious"


def test_result_files_are_world_readable(tmp_path: Path) -> None:
    assert _run("arch_name_slash.yaml", out=tmp_path).exit_code == 0
    for f in _all_files(tmp_path):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


# --------------------------------------------------------------------- resource exhaustion


def test_a_52_mb_architecture_is_refused_at_once(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    text = (HERE / "arch_name_slash.yaml").read_text(encoding="utf-8")
    big.write_text(text + "#" + "x" * 52_000_000 + "\n", encoding="utf-8")
    start = time.perf_counter()
    res = invoke(["run", str(big), str(HERE / "net_tiny.yaml")])
    assert res.exit_code == 2 and "limited to" in res.output and "big.yaml" in res.output
    assert time.perf_counter() - start < 5


def test_alias_bomb_error_is_short(tmp_path: Path) -> None:
    res = invoke(["run", str(HERE / "arch_alias_bomb.yaml"), str(HERE / "net_tiny.yaml")])
    assert res.exit_code == 2 and len(res.output) < 500


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_slip_trace_is_refused(tmp_path: Path) -> None:
    manifest = b"format: approxsim-trace/1\n"
    trace = _zip(tmp_path / "slip.zip", {"manifest.yaml": manifest, "../../evil.sh": b"rm -rf"})
    res = invoke(["run", str(HERE / "arch_name_slash.yaml"), str(trace)])
    assert res.exit_code == 2 and "zip slip" in res.output and "../../evil.sh" in res.output
    assert not (tmp_path.parent / "evil.sh").exists()


def test_zip_bomb_trace_is_refused_before_it_expands(tmp_path: Path) -> None:
    trace = _zip(tmp_path / "bomb.zip", {"manifest.yaml": b"format: approxsim-trace/1\n",
                                         "tensors.npz": b"\0" * 50_000_000},
                 zipfile.ZIP_DEFLATED)
    assert trace.stat().st_size < 1_000_000
    res = invoke(["run", str(HERE / "arch_name_slash.yaml"), str(trace)])
    assert res.exit_code == 2 and "zip bomb" in res.output


def test_zip_bomb_inside_the_npz_is_refused(tmp_path: Path) -> None:
    src = ROOT / "tests" / "bad_inputs"
    assert src.is_dir()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fc/weight.npy", b"\0" * 50_000_000)
    manifest = (
        "format: approxsim-trace/1\nmodel: m\nsource: spec\nbatch_size: 1\nrecipe: null\n"
        "accuracy: null\nlayers:\n- name: fc\n  op: linear\n  dims: {in_features: 64, "
        "out_features: 32, tokens: 1}\n  weight: {scheme: int, bits: 8, density: 0.5, "
        "structure: unstructured, codebook_size: null, mask: fc/weight, shape: [32, 64]}\n"
        "  activation: {bits: null, density: 1.0, calibration_density: null, mask: null, "
        "shape: null}\n  output_bits: null\n")
    trace = _zip(tmp_path / "t.zip", {"manifest.yaml": manifest.encode(),
                                      "tensors.npz": inner.getvalue()})
    res = invoke(["run", str(HERE / "arch_name_slash.yaml"), str(trace)])
    assert res.exit_code == 2 and "zip bomb" in res.output


# --------------------------------------------------------------------- interrupted writes

_WRITER = """
import sys
from simulator import load_arch, load_workload, simulate
net = load_workload(sys.argv[3])
reports = [simulate(load_arch(a), net) for a in sys.argv[1:3]]
print("ready", flush=True)
sys.stdin.readline()
i = 0
while True:
    reports[i % 2].write(sys.argv[4], "csv", name="set")
    i += 1
"""


@pytest.mark.parametrize("delay", [0.0, 0.003, 0.011, 0.027, 0.05, 0.1])
def test_sigint_while_writing_leaves_the_old_set_or_the_new_one(delay: float,
                                                                 tmp_path: Path) -> None:
    """A real SIGINT at several points of a loop that writes two different reports into one
    set in turn: afterwards the set is exactly one of them (never a mix, never partial) and
    no temporary file or directory is left."""
    out = tmp_path / "out"
    archs = [ROOT / "arch_configs" / "edge_8x8.yaml", ROOT / "arch_configs/scalesim_32x32_os.yaml"]
    net = ROOT / "workloads/networks/lenet5.yaml"
    sets = []
    for i, arch in enumerate(archs):
        written = simulate(load_arch(arch), load_workload(net)).write(tmp_path / f"r{i}", "csv",
                                                                       name="set")
        sets.append({p.name: p.read_bytes() for p in written[0].parent.iterdir()})
    assert sets[0] != sets[1]
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, *map(str, archs), str(net),
                             str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.stdin.write("\n")
    proc.stdin.flush()
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    names = sorted(p.name for p in out.iterdir()) if out.exists() else []
    if not names:  # interrupted before the first set was complete: nothing at all
        return
    assert names == ["set"]
    got = {p.name: p.read_bytes() for p in (out / "set").iterdir()}
    assert got in sets


# --------------------------------------------------------------------- readability


def test_demo_table_fits_80_columns_with_text_left_aligned(tmp_path: Path) -> None:
    res = invoke(["run", str(ROOT / "arch_configs/tpu_like_128x128_ws.yaml"),
                  str(ROOT / "workloads/networks/resnet50.yaml")], COLUMNS="80")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if "conv1" in line)
    assert row.split("│")[1].startswith(" conv1")  # layer names left-aligned


def test_columns_option_chooses_and_checks(tmp_path: Path) -> None:
    args = ["run", str(HERE / "arch_name_slash.yaml"), str(HERE / "net_tiny.yaml")]
    res = invoke([*args, "--columns", "layer,dram_read_bytes"], COLUMNS="80")
    assert res.exit_code == 0 and "dram_read_bytes" in res.output
    res = invoke([*args, "--columns", "layer,nope"])
    assert res.exit_code == 2 and "nope" in res.output and "total_cycles" in res.output
