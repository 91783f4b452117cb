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
    #: the model parameter the weight is (``fc1.weight``), when a recipe may change it
    param: str | None = None
    #: the parameter is stored transposed to ``weight`` (``(in, out)``, GPT-2's Conv1D)
    transposed: bool = False
    #: the weight is rows ``[start, stop)`` of the parameter (a packed projection)
    rows: tuple[int, int] | None = None
    #: operand fields read from the model itself (bits, scheme, scale_bits of a quantised one)
    fields: dict[str, Any] = field(default_factory=dict)
    #: activation bits read from the model (a quantised input), else None
    act_bits: int | None = None
    #: the module whose forward ran the operator ("" for the model itself)
    module: str = ""
    #: the input masks of the first calibration examples, ``(samples, *mask shape)``
    act_mask_set: np.ndarray | None = None


@dataclass
class ImportResult:
    """The layers of a model in execution order, and notes on what was not simulated."""

    layers: list[ImportedLayer]
    notes: list[str] = field(default_factory=list)
