"""Bad inputs give one clear error naming the file and the dotted path, all problems at once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simulator import (
    ConfigError,
    SimulatorError,
    WorkloadError,
    load_arch,
    load_workload,
    parse_arch,
    parse_network,
)

REPO = Path(__file__).resolve().parent.parent
CFG = REPO / "workloads" / "scalesim" / "scalesim_8x8_os.cfg"
CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides,\n")


def errors_of(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return dict(exc.value.errors)


def arch_error(arch_spec, source="arch.yaml", **overrides) -> pytest.ExceptionInfo:
    with pytest.raises(ConfigError) as exc:
        parse_arch(arch_spec(**overrides), source=source)
    assert str(exc.value).startswith(f"{source}:")
    return exc


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- architecture -----------------------------------------------------------------------------

def test_valid_tiny_arch_parses(arch_spec):
    # The baseline every error case below perturbs must itself be valid.
    arch = parse_arch(arch_spec(), source="arch.yaml")
    assert arch.pe_array.params.rows == 4


def test_unknown_key_named_by_path(arch_spec):
    exc = arch_error(arch_spec, pe_array={"rowz": 3})
    assert errors_of(exc) == {"pe_array.rowz": "unknown key"}
    assert re.search(r"pe_array\.rowz: unknown key", str(exc.value))


def test_unknown_top_level_key(arch_spec):
    exc = arch_error(arch_spec, clock_mhzz=3)
    assert "clock_mhzz" in errors_of(exc)


def test_unknown_impl_lists_known_ones(arch_spec):
    exc = arch_error(arch_spec, pe_array={"impl": "tpu"})
    msg = errors_of(exc)["pe_array.impl"]
    assert "'tpu'" in msg and "systolic" in msg
    exc = arch_error(arch_spec, buffers={"ofmap": {"impl": "edram"}})
    msg = errors_of(exc)["buffers.ofmap.impl"]
    assert "'edram'" in msg and "sram" in msg


@pytest.mark.parametrize("size", [-1, 0])
def test_non_positive_buffer_size(arch_spec, size):
    exc = arch_error(arch_spec, buffers={"ifmap": {"size_kb": size}})
    assert list(errors_of(exc)) == ["buffers.ifmap.size_kb"]
    assert "greater than or equal to 0.125" in errors_of(exc)["buffers.ifmap.size_kb"]  # 128 B


@pytest.mark.parametrize(("override", "path"), [
    ({"pe_array": {"rows": 0}}, "pe_array.rows"),
    ({"pe_array": {"cols": 4.5}}, "pe_array.cols"),
    ({"pe_array": {"dataflow": "xs"}}, "pe_array.dataflow"),
    ({"dram": {"bandwidth_gb_per_s": -5}}, "dram.bandwidth_gb_per_s"),
    ({"dram": {"channels": 0}}, "dram.channels"),
    ({"clock_mhz": 0}, "clock_mhz"),
])
def test_bad_values_named_by_path(arch_spec, override, path):
    assert path in errors_of(arch_error(arch_spec, **override))


def test_missing_buffer(arch_spec):
    exc = arch_error(arch_spec, buffers={"ofmap": None})
    assert errors_of(exc) == {"buffers.ofmap": "required buffer is missing"}


def test_all_errors_reported_at_once(arch_spec):
    exc = arch_error(arch_spec, pe_array={"rowz": 3}, buffers={"ifmap": {"size_kb": -1},
                                                                "ofmap": None},
                     dram={"impl": "hbm"}, foo=1)
    assert set(errors_of(exc)) == {"pe_array.rowz", "buffers.ifmap.size_kb", "buffers.ofmap",
                                   "dram.impl", "foo"}
    assert str(exc.value).startswith("arch.yaml: 5 error(s)")


def test_yaml_file_errors_name_the_file(tmp_path, arch_spec):
    path = write_yaml(tmp_path / "bad.yaml", arch_spec(pe_array={"rowz": 3},
                                                       buffers={"filter": {"size_kb": 0}}))
    with pytest.raises(ConfigError) as exc:
        load_arch(path)
    assert exc.value.source == str(path)
    assert str(exc.value).startswith(str(path))
    assert set(errors_of(exc)) == {"pe_array.rowz", "buffers.filter.size_kb"}


def test_duplicate_yaml_key_rejected(tmp_path, arch_spec):
    text = yaml.safe_dump(arch_spec(), sort_keys=False) + "clock_mhz: 500\n"
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    last = len(text.splitlines())
    with pytest.raises(ConfigError) as exc:
        load_arch(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "duplicate key 'clock_mhz'" in msg
    assert f"line {last}" in msg  # the second occurrence


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "syntax.yaml"
    path.write_text("name: x\nclock_mhz: 1000\npe_array: [1, 2\nbuffers: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_arch(path)
    (where, _), = exc.value.errors
    # The unclosed '[' on line 3 is detected when the parser reaches line 4.
    assert re.fullmatch(r"line [34], column \d+", where)
    assert str(path) in str(exc.value)


def test_missing_file(tmp_path):
    for loader, error in ((load_arch, ConfigError), (load_workload, WorkloadError)):
        path = tmp_path / "nope.yaml"
        with pytest.raises(error, match="file not found") as exc:
            loader(path)
        assert str(path) in str(exc.value)


def test_wrong_arch_suffix(tmp_path):
    path = tmp_path / "arch.txt"
    path.write_text("name: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\.yaml"):
        load_arch(path)


# --- network specs ----------------------------------------------------------------------------

def net(*layers, **top):
    return {"name": "n", "layers": [{"name": "a", "op": "relu", "shape": [4]}, *layers], **top}


CONV = {"name": "c1", "op": "conv2d", "in_channels": 4, "out_channels": 8, "in_h": 8,
        "in_w": 8, "kernel": 3}


def network_error(data) -> pytest.ExceptionInfo:
    with pytest.raises(WorkloadError) as exc:
        parse_network(data, source="net.yaml")
    assert str(exc.value).startswith("net.yaml:")
    return exc


def test_valid_network_parses():
    assert len(parse_network(net(CONV)).layers) == 2


def test_bad_layer_path_names_index_and_name():
    misspelt = {k: v for k, v in CONV.items() if k != "kernel"} | {"kernal": 3}
    exc = network_error(net(misspelt))
    paths = set(errors_of(exc))
    assert paths == {"layers[1] (c1).kernal", "layers[1] (c1).kernel"}


@pytest.mark.parametrize("kernel", ["3x3", [3, 3, 3]])
def test_bad_pair_field_is_one_error_at_its_path(kernel):
    exc = network_error(net({**CONV, "kernel": kernel}))
    assert list(errors_of(exc)) == ["layers[1] (c1).kernel"]


def test_negative_channel_count():
    exc = network_error(net({**CONV, "in_channels": -4}))
    assert "greater than 0" in errors_of(exc)["layers[1] (c1).in_channels"]


def test_unknown_op_lists_known_ops():
    exc = network_error(net({"name": "x", "op": "conv3d"}))
    (path, msg), = exc.value.errors
    assert path.startswith("layers[1] (x)")
    assert "conv3d" in msg and "conv2d" in msg and "maxpool" in msg


def test_kernel_larger_than_input():
    exc = network_error(net({**CONV, "kernel": 9}))
    (path, msg), = exc.value.errors
    assert path.startswith("layers[1] (c1)")
    assert "does not fit" in msg


def test_kernel_fits_only_with_padding():
    # 9x9 kernel on 8x8 with padding 1: floor((8 + 2 - 9)/1) + 1 = 2 -> valid.
    layer = parse_network(net({**CONV, "kernel": 9, "padding": 1})).layers[1]
    assert layer.M == 4


def test_groups_must_divide_channels():
    exc = network_error(net({**CONV, "groups": 3}))
    (path, msg), = exc.value.errors
    assert path.startswith("layers[1] (c1)")
    assert "groups (3) must divide" in msg


def test_several_bad_layers_at_once():
    exc = network_error(net({**CONV, "groups": 3},
                            {"name": "fc", "op": "linear", "in_features": 0, "out_features": 2}))
    paths = [p for p, _ in exc.value.errors]
    assert any(p.startswith("layers[1] (c1)") for p in paths)
    assert "layers[2] (fc).in_features" in paths


def test_duplicate_layer_names():
    exc = network_error(net({**CONV, "name": "a"}))
    assert "duplicate layer names" in str(exc.value) and "'a'" in str(exc.value)


def test_network_file_errors_name_the_file(tmp_path):
    path = write_yaml(tmp_path / "net.yaml", net({**CONV, "groups": 3}))
    with pytest.raises(WorkloadError) as exc:
        load_workload(path)
    assert str(exc.value).startswith(str(path))
    assert "layers[1] (c1)" in str(exc.value)


# --- SCALE-Sim topologies and configs ---------------------------------------------------------

def topology_error(tmp_path, text) -> pytest.ExceptionInfo:
    path = tmp_path / "topo.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WorkloadError) as exc:
        load_workload(path)
    assert str(exc.value).startswith(str(path))
    return exc


def test_topology_bad_header(tmp_path):
    exc = topology_error(tmp_path, "Name, H, W,\nc1, 1, 2,\n")
    assert "line 1" in errors_of(exc)
    assert "header" in errors_of(exc)["line 1"]


@pytest.mark.parametrize(("row", "words"), [
    ("c1, 8, 8, 3, 3, 3, x, 1,", "integers"),
    ("c1, 8, 8, 3, 3, -3, 4, 1,", "positive"),
    ("c1, 8, 8, 3, 3, 0, 4, 1,", "positive"),
    ("c1, 8, 8, 3, 3, 3,", "expected 8 values"),
    ("c1, 8, 8, 3, 3, 3, 4, 1, 2, 7,", "expected 8 values"),
])
def test_topology_bad_row(tmp_path, row, words):
    exc = topology_error(tmp_path, CONV_HEADER + "ok, 8, 8, 3, 3, 3, 4, 1,\n" + row + "\n")
    assert list(errors_of(exc)) == ["line 3"]
    assert words in errors_of(exc)["line 3"]


def test_topology_filter_larger_than_ifmap(tmp_path):
    exc = topology_error(tmp_path, CONV_HEADER + "c4, 2, 2, 3, 3, 3, 4, 1,\n")
    (path, msg), = exc.value.errors
    assert path == "line 2 (c4)"
    assert "larger" in msg


def test_topology_all_rows_reported(tmp_path):
    exc = topology_error(tmp_path, "Layer, M, N, K,\ng1, 4, x, 2,\ng2, 4, 4,\ng3, 1, 1, 0,\n")
    assert set(errors_of(exc)) == {"line 2", "line 3", "line 4"}


def test_scalesim_cfg_unknown_key(tmp_path):
    path = tmp_path / "unknown.cfg"
    path.write_text(CFG.read_text().replace("Bandwidth : 10", "Bandwidth : 10\nFooBar : 3"))
    with pytest.raises(ConfigError) as exc:
        load_arch(path)
    (where, msg), = exc.value.errors
    assert where.lower() == "architecture_presets.foobar"
    assert "unknown" in msg
    assert str(exc.value).startswith(str(path))


def test_scalesim_cfg_sparsity_rejected(tmp_path):
    path = tmp_path / "sparse.cfg"
    path.write_text(CFG.read_text().replace("SparsitySupport : false", "SparsitySupport : true"))
    with pytest.raises(ConfigError) as exc:
        load_arch(path)
    assert list(errors_of(exc)) == ["sparsity.SparsitySupport"]


def test_bundled_scalesim_cfg_loads():
    arch = load_arch(CFG)
    assert (arch.pe_array.params.rows, arch.pe_array.params.cols) == (8, 8)


# --- command line -----------------------------------------------------------------------------

def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", "run", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


def test_cli_bad_arch_exits_2_with_short_message(tmp_path, arch_spec):
    bad = write_yaml(tmp_path / "bad_arch.yaml", arch_spec(pe_array={"rowz": 3}))
    proc = run_cli(bad, REPO / "workloads" / "networks" / "lenet5.yaml")
    assert proc.returncode == 2
    assert str(bad) in proc.stderr
    assert "pe_array.rowz" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.splitlines()) <= 5


def test_cli_bad_workload_exits_2(tmp_path, arch_spec):
    arch = write_yaml(tmp_path / "arch.yaml", arch_spec())
    bad = tmp_path / "bad.csv"
    bad.write_text(CONV_HEADER + "c1, 8, 8, 3, 3, 3, x, 1,\n", encoding="utf-8")
    proc = run_cli(arch, bad)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "line 2" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_errors_are_simulator_errors():
    assert issubclass(WorkloadError, ConfigError)
    assert issubclass(ConfigError, SimulatorError)
