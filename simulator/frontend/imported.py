"""What an importer found in a model, before compression is applied: the network-spec layers
it saw, their weights and the real zeros of their inputs (torch- and onnx-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ImportedLayer:
    """One layer found in the model: its network-spec fields and the operands it sees."""

    name: str
    spec: dict[str, Any]
    act_density: float
    act_mask: np.ndarray | None
    weight: np.ndarray | None = None


@dataclass
class ImportResult:
    """The layers of a model in execution order, and notes on what was not simulated."""

    layers: list[ImportedLayer]
    notes: list[str] = field(default_factory=list)
