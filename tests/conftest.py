"""Shared fixtures: small architectures and layers built in code, not read from files.

Both fixtures are *factories* and session-scoped (they hold no state), so Hypothesis tests may
use them too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator import ArchConfig, parse_arch
from simulator.hardware.memory import Dram
from simulator.workload.layer import Layer

REPO = Path(__file__).resolve().parent.parent


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base``; a value of ``None`` deletes the key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def arch_dict(rows: int = 4, cols: int = 4, dataflow: str = "os", *,
              size_kb: float = 1024.0, sram_bandwidth: float = math.inf,
              dram_bandwidth: float = math.inf, latency_ns: float = 0.0, channels: int = 1,
              double_buffered: bool = True, bits: int = 8, clock_mhz: float = 1000.0,
              **overrides: Any) -> dict[str, Any]:
    """A parse_arch dict: by default unlimited bandwidths, no latency, 1 MiB buffers, 8-bit.

    At the default 1000 MHz one GB/s is one byte per cycle and one ns is one cycle.
    ``overrides`` are deep-merged into the dict (``None`` deletes a key).
    """
    data = {
        "name": f"tiny_{rows}x{cols}_{dataflow}",
        "clock_mhz": clock_mhz,
        "pe_array": {"impl": "systolic", "rows": rows, "cols": cols, "dataflow": dataflow,
                     "weight_bits": bits, "act_bits": bits, "acc_bits": 32},
        "buffers": {name: {"impl": "sram", "size_kb": size_kb, "word_bits": bits,
                           "bandwidth_words": sram_bandwidth,
                           "double_buffered": double_buffered}
                    for name in ("ifmap", "filter", "ofmap")},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": dram_bandwidth,
                 "latency_ns": latency_ns, "channels": channels, "energy_pj_per_bit": 8.0},
    }
    return _merge(data, overrides)


def make_dram(bw: float, latency: float, channels: int) -> Dram:
    """A DRAM at 1 GHz: ``bw`` GB/s is ``bw`` bytes per cycle, ``latency`` ns is cycles."""
    return Dram("dram", Dram.Params(bandwidth_gb_per_s=bw, latency_ns=latency,
                                    channels=channels, energy_pj_per_bit=8.0), clock_mhz=1000.0)


def make_layer(M: int = 5, K: int = 3, N: int = 6, *, count: int = 1, name: str = "g",
               **fields: Any) -> Layer:
    """A GEMM layer whose unique tensors are exactly the GEMM operands (no im2col reuse)."""
    sizes = {"ifmap_elements": count * M * K, "filter_elements": count * K * N,
             "ofmap_elements": count * M * N}
    sizes.update(fields)
    return Layer(name, "gemm", "gemm", M=M, K=K, N=N, count=count, **sizes)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (for bundled configs, workloads and goldens)."""
    return REPO


@pytest.fixture(scope="session")
def arch_spec() -> Callable[..., dict[str, Any]]:
    """Factory of raw architecture dicts (see :func:`arch_dict`)."""
    return arch_dict


@pytest.fixture(scope="session")
def tiny_arch() -> Callable[..., ArchConfig]:
    """Factory ``tiny_arch(rows, cols, dataflow, **kw) -> ArchConfig`` (see :func:`arch_dict`)."""

    def make(*args: Any, **kwargs: Any) -> ArchConfig:
        return parse_arch(arch_dict(*args, **kwargs), source="<tiny_arch>")

    return make


@pytest.fixture(scope="session")
def tiny_layer() -> Callable[..., Layer]:
    """Factory ``tiny_layer(M, K, N, count=1, **fields) -> Layer`` (default 5 x 3 x 6)."""
    return make_layer


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of the bundled digits model for the whole session (trained once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def digits(cache_dir: Path) -> Any:
    """The trained digits-lenet and its data; ``$APPROXSIM_CACHE_DIR`` points at the cache
    for CLI runs."""
    from simulator.frontend import load_model

    mp = pytest.MonkeyPatch()
    mp.setenv("APPROXSIM_CACHE_DIR", str(cache_dir))
    model, data, _ = load_model("digits-lenet", cache_dir=cache_dir)
    yield model, data
    mp.undo()


#: Sweep inputs: a small network (3 GEMM layers and a pool, milliseconds per point) and a
#: 4x4 array, written with a sweep file by :func:`write_sweep_inputs`.
SWEEP_NET = {"name": "tinynet", "layers": [
    {"name": "c1", "op": "conv2d", "in_channels": 1, "out_channels": 8, "in_h": 8, "in_w": 8,
     "kernel": 3, "padding": 1},
    {"name": "p1", "op": "maxpool", "channels": 8, "in_h": 8, "in_w": 8, "kernel": 2,
     "stride": 2},
    {"name": "c2", "op": "conv2d", "in_channels": 8, "out_channels": 16, "in_h": 4, "in_w": 4,
     "kernel": 3, "padding": 1, "weight_density": 0.5},
    {"name": "fc", "op": "linear", "in_features": 256, "out_features": 10}]}
SWEEP_ARCH = {
    "name": "tiny", "clock_mhz": 500,
    "pe_array": {"impl": "systolic", "rows": 4, "cols": 4, "dataflow": "os", "pe": "mac",
                 "weight_bits": 8, "act_bits": 8, "acc_bits": 32},
    "buffers": {b: {"impl": "sram", "size_kb": 16, "word_bits": 8, "bandwidth_words": 8}
                for b in ("ifmap", "filter", "ofmap")},
    "dram": {"impl": "dram", "bandwidth_gb_per_s": 4.0, "latency_ns": 50,
             "energy_pj_per_bit": 8.0}}


def write_sweep_inputs(tmp: Path, **sweep_fields: Any) -> Path:
    """tiny.yaml, tinynet.yaml and sweep.yaml in ``tmp``; returns the sweep file."""
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(SWEEP_ARCH))
    (tmp / "tinynet.yaml").write_text(yaml.safe_dump(SWEEP_NET))
    data = {"name": "t", "arch": "tiny.yaml", "workloads": ["tinynet.yaml"], **sweep_fields}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
