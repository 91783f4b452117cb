"""Optional dependencies of the frontend, imported only when used."""

from __future__ import annotations

import importlib
from types import ModuleType

from simulator.errors import SimulatorError

#: module -> the approxsim extra that installs it
EXTRAS = {"torch": "torch", "sklearn": "torch", "onnx": "onnx"}


class MissingExtraError(SimulatorError):
    """An optional dependency of the frontend is not installed."""


def require(module: str) -> ModuleType:
    """Import ``module`` or raise a :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], module)
        raise MissingExtraError(
            f"{module} is required for this (not installed: {exc}); "
            f"install it with: pip install 'approxsim[{extra}]'") from None
