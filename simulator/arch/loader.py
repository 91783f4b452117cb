"""``load_arch(path)``: an architecture from a YAML file or a SCALE-Sim ``.cfg`` file."""

from __future__ import annotations

from pathlib import Path

from simulator.arch.config import ArchConfig, parse_arch
from simulator.arch.scalesim import load_scalesim_cfg
from simulator.errors import ConfigError
from simulator.files import read_yaml


def load_arch(path: str | Path) -> ArchConfig:
    """Load an architecture from a YAML file, or import a SCALE-Sim ``.cfg`` file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".cfg":
        return load_scalesim_cfg(p)
    if suffix not in (".yaml", ".yml"):
        what = "a directory" if p.is_dir() else f"a {suffix or 'suffix-less'} file"
        raise ConfigError(str(p), [("", f"is {what}; expected an architecture .yaml/.yml or a "
                                        f"SCALE-Sim .cfg")])
    return parse_arch(read_yaml(p), source=str(p))
