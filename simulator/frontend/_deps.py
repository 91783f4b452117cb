"""Optional dependencies (of the frontend and the RTL stage), imported only when used."""

from __future__ import annotations

import importlib
from types import ModuleType

from simulator.errors import SimulatorError

#: module -> the approxsim extra that installs it
EXTRAS = {"torch": "torch", "sklearn": "torch", "onnx": "onnx", "amaranth": "rtl", "pyosys": "rtl",
          "distributed": "sweep", "dask": "sweep", "pyarrow": "sweep", "matplotlib": "plot",
          "jinja2": "plot"}


class MissingExtraError(SimulatorError):
    """An optional dependency is not installed."""


def require(module: str) -> ModuleType:
    """Import ``module`` or raise a :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], module)
        raise MissingExtraError(
            f"{module} is required for this (not installed: {exc}); "
            f"install it with: pip install 'approxsim[{extra}]'") from None
