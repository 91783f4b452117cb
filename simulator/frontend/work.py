"""The state a recipe's steps change as they run (:func:`simulator.frontend.pipeline.compress`):
the model being compressed, what each layer's operands became, and what the trace will carry
beyond the layers (approximated functions, early exits, per-sample masks). Model-level
methods (:mod:`simulator.frontend.methods`) take a :class:`Work` and their step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from simulator.errors import SimulatorError
from simulator.frontend.imported import ImportedLayer, ImportResult
from simulator.frontend.input_dependent import Exits
from simulator.frontend.methods import Compressed
from simulator.frontend.recipe import Recipe, Step
from simulator.frontend.torch import import_torch
from simulator.frontend.trace_builder import record_fields
from simulator.frontend.training import Progress, TaskData
from simulator.workload.approx import FunctionApprox


def weight_view(model: nn.Module, lay: ImportedLayer) -> torch.Tensor:
    """The layer's weight as a view of its parameter, in the (out, in) / conv layout."""
    assert lay.param is not None
    p = model.get_parameter(lay.param)
    w = p.t() if lay.transposed else p
    if lay.rows is not None:
        w = w[lay.rows[0]:lay.rows[1]]
    if lay.weight is not None and tuple(w.shape) != tuple(lay.weight.shape):
        raise SimulatorError(f"layer {lay.name!r}: its weight {list(lay.weight.shape)} is not "
                             f"a plain view of parameter {lay.param!r} {list(p.shape)}; it "
                             f"cannot be compressed in place")
    return w


def weight_targets(imported: ImportResult) -> dict[str, ImportedLayer]:
    """The layers a weight step may select: GEMMs computed with a model parameter."""
    return {la.name: la for la in imported.layers if la.param is not None}


@dataclass
class Work:
    """Everything a step may read or change (module docstring)."""

    base: nn.Module
    model: nn.Module
    data: TaskData
    recipe: Recipe
    progress: Progress
    seed: int
    imported: ImportResult
    #: operand fields per layer name, set by weight steps (record_fields)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: activation bits per layer name
    act_bits: dict[str, int] = field(default_factory=dict)
    #: a split layer's halves -> the original layer's name (low rank)
    aliases: dict[str, str] = field(default_factory=dict)
    #: layers pruned so far (their masks hold through later fine-tuning)
    pruned: dict[str, ImportedLayer] = field(default_factory=dict)
    #: weight quantisation steps applied so far, with their targets (re-applied by
    #: quantisation-aware fine-tuning through later activation steps)
    quantised: list[tuple[Step, list[ImportedLayer]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: approximated functions by module name
    approx: dict[str, FunctionApprox] = field(default_factory=dict)
    #: per-sample activation masks: how many calibration samples, of which layers
    mask_samples: int = 0
    mask_layers: set[str] = field(default_factory=set)
    exits: Exits | None = None
    #: the compressed model's accuracy when a step defines it (early exits at the
    #: operating threshold), else measured on the final model's output
    accuracy: float | None = None

    @property
    def layers(self) -> dict[str, ImportedLayer]:
        return weight_targets(self.imported)

    def weight(self, la: ImportedLayer) -> torch.Tensor:
        """The layer's weight as a view of the model's parameter (writes change the model)."""
        return weight_view(self.model, la)

    def record(self, name: str, out: Compressed) -> None:
        """Remember the operand fields a method's result sets for layer ``name``."""
        record_fields(self.info, name, out)

    def refresh(self) -> None:
        """Re-import the model after a step changed its modules (a split, a student)."""
        self.imported = import_torch(self.model, self.data.calibration,
                                     batch_dim=self.data.batch_dim)

    def select(self, step: Step, candidates: dict[str, str]) -> list[str]:
        """The names among ``candidates`` (name -> op or label, in execution order) that
        ``step`` selects; a default ``"*"`` selects nothing, with a note, when there is no
        candidate at all (e.g. no approximable function in the model)."""
        if not candidates and step.default_layers:
            self.notes.append(f"{step.path} ({step.method.name}): the model has no layer "
                              f"this method applies to; nothing done")
            return []
        return step.targets(list(candidates), self.recipe.source, self.aliases, candidates)
