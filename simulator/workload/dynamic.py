"""Input-dependent computation a workload carries: early-exit branches and their measured
exit rates (BranchyNet, Teerapittayanon, McDanel, Kung, ICPR 2016).

A network with exits runs its layers in execution order; exit ``i``'s classifier runs right
after its branch point, and a sample whose exit-``i`` prediction is confident enough (its
softmax entropy below the threshold, BranchyNet section III-B, or its top probability above
it) leaves there: it has run the layers ``layers[: ends[i]]``. The last exit is the network's
own output (``ends[-1] == len(layers)``), which every remaining sample takes. ``rates[t][i]``
is the fraction of the held-out samples that left at exit ``i`` under threshold
``thresholds[t]``, measured by the frontend, and ``accuracy[t]`` the top-1 accuracy of the
predictions taken at the exits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

_Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """Exits of a workload (module docstring). ``names[i]`` is exit ``i``'s last layer;
    ``operating`` the index of the threshold the trace's accuracy is quoted at."""

    names: tuple[str, ...]
    ends: tuple[int, ...]
    criterion: Literal["entropy", "confidence"]
    thresholds: tuple[float, ...]
    rates: tuple[tuple[float, ...], ...]
    accuracy: tuple[float | None, ...]
    samples: int
    operating: int = 0
    #: the layers of each early exit's classifier (not in the backbone a sample without
    #: exits runs)
    head_layers: tuple[tuple[str, ...], ...] = ()

    def problems(self, n_layers: int) -> list[tuple[str, str]]:
        """``(field, message)`` of every inconsistency (empty when the plan is valid)."""
        out = []
        if len(self.ends) != len(self.names) or len(self.names) < 2:
            out.append(("exits", f"needs at least two exits (the last is the network output) "
                                 f"with one layer each (got {len(self.names)} names, "
                                 f"{len(self.ends)} ends)"))
        if list(self.ends) != sorted(set(self.ends)) or not self.ends \
                or self.ends[0] < 1 or self.ends[-1] != n_layers:
            out.append(("exits", f"exit layers must be in execution order, the last one the "
                                 f"network's last layer (ends {list(self.ends)} of "
                                 f"{n_layers} layers)"))
        if len(self.rates) != len(self.thresholds) or len(self.accuracy) != len(self.thresholds):
            out.append(("rates", "one row of exit rates and one accuracy per threshold"))
        for t, row in enumerate(self.rates):
            if len(row) != len(self.names) or any(r < 0 for r in row) \
                    or not math.isclose(sum(row), 1.0, abs_tol=1e-6):
                out.append((f"rates[{t}]", f"must be {len(self.names)} fractions summing to 1 "
                                           f"(got {list(row)})"))
        if not 0 <= self.operating < max(len(self.thresholds), 1):
            out.append(("operating", f"must index a threshold (got {self.operating})"))
        return out


class ExitSpec(BaseModel):
    """The ``early_exit:`` mapping of a network spec or trace: ``exits`` names each exit's
    last layer (in execution order; the last is the network's last layer), the rest as
    :class:`ExitPlan`."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    exits: Annotated[list[str], Field(min_length=2)]
    criterion: Literal["entropy", "confidence"] = "entropy"
    thresholds: Annotated[list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]],
                          Field(min_length=1)]
    rates: list[list[_Fraction]]
    accuracy: list[_Fraction | None]
    samples: Annotated[int, Field(ge=0, strict=True)] = 0
    operating: Annotated[int, Field(ge=0, strict=True)] = 0
    #: the layers of each early exit's classifier head
    heads: list[list[str]] = Field(default_factory=list)

    def build(self, layer_names: Sequence[str]) -> tuple[ExitPlan | None, list[tuple[str, str]]]:
        """The plan over a workload's layers, or ``None`` and ``(field, message)`` errors."""
        index = {n: i for i, n in enumerate(layer_names)}
        missing = [n for n in [*self.exits, *(h for head in self.heads for h in head)]
                   if n not in index]
        if missing:
            return None, [("exits", f"layer(s) {missing} not found in the workload")]
        plan = ExitPlan(tuple(self.exits), tuple(index[n] + 1 for n in self.exits),
                        self.criterion, tuple(self.thresholds),
                        tuple(tuple(r) for r in self.rates), tuple(self.accuracy),
                        self.samples, self.operating, tuple(tuple(h) for h in self.heads))
        errors = plan.problems(len(layer_names))
        return (None, errors) if errors else (plan, [])


def exit_fields(plan: ExitPlan) -> dict[str, object]:
    """The ``early_exit:`` mapping of ``plan`` (as a spec or trace stores it)."""
    return {"exits": list(plan.names), "criterion": plan.criterion,
            "thresholds": list(plan.thresholds), "rates": [list(r) for r in plan.rates],
            "accuracy": list(plan.accuracy), "samples": plan.samples,
            "operating": plan.operating, "heads": [list(h) for h in plan.head_layers]}
