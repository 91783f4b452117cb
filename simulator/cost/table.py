"""Energy tables as data: pJ per ``(component, action)``, each entry with its unit and
citation, and the pricing of action counts with them.

Energy = action counts (:mod:`simulator.cost.actions`) x an :class:`EnergyTable`. A count with
no entry is never priced at zero: :meth:`EnergyTable.require` raises one
:class:`~simulator.errors.EnergyError` listing every missing pair. Tables are produced for an
architecture from YAML files by :mod:`simulator.cost.table_file`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

from simulator.cost.technology import scale_factor
from simulator.errors import EnergyError

Kind = Literal["dynamic", "leakage", "offchip"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One priced action: ``pj`` per action, its kind, unit, citation, and the architecture
    (or layer) parameters that chose the value (``chosen_by``, e.g.
    ``buffers.ifmap.size_kb=512, banks=1, word_bits=8``)."""

    pj: float
    source: str
    kind: Kind = "dynamic"
    unit: str = "pJ"
    chosen_by: str = ""


@dataclass(frozen=True, slots=True)
class EnergyTable:
    """pJ per ``(component, action)`` at ``technology_nm``; plus the components' area."""

    name: str
    technology_nm: float
    entries: Mapping[tuple[str, str], Entry]
    area_mm2: Mapping[str, float] = field(default_factory=dict)
    area_sources: Mapping[str, str] = field(default_factory=dict)
    source: str = "<dict>"

    @classmethod
    def from_pj(cls, name: str, technology_nm: float,
                pj: Mapping[tuple[str, str], float], source: str) -> EnergyTable:
        """A flat table from plain numbers, all citing ``source`` (kinds as :func:`kind_of`)."""
        entries = {k: Entry(float(v), source, kind_of(*k)) for k, v in pj.items()}
        return cls(name, technology_nm, entries)

    def pj(self, component: str, action: str) -> float:
        return self.entries[(component, action)].pj

    def require(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Raise one :class:`EnergyError` naming every pair that has no entry."""
        missing = sorted(set(pairs) - set(self.entries))
        if missing:
            listed = ", ".join(f"{c}.{a}" for c, a in missing)
            raise EnergyError(f"energy table {self.name!r} ({self.source}) has no entry for "
                              f"{len(missing)} counted action(s): {listed}")

    def scaled(self, technology_nm: float) -> EnergyTable:
        """The table at another node: dynamic entries x :func:`scale_factor`, others kept."""
        f = scale_factor(self.technology_nm, technology_nm)
        note = f"; x{f:.4g} Stillmaker-Baas {self.technology_nm:g}->{technology_nm:g} nm"
        by = f"; technology_nm={technology_nm:g}"
        entries = {k: (replace(e, pj=e.pj * f, source=e.source + note,
                               chosen_by=e.chosen_by + by)
                       if e.kind == "dynamic" and f != 1.0 else e)
                   for k, e in self.entries.items()}
        return replace(self, technology_nm=technology_nm, entries=entries)

    def frame(self) -> pd.DataFrame:
        """The table as ``component, action, pj_per_action, unit, kind, chosen_by, source``."""
        import pandas as pd

        rows = [(c, a, e.pj, e.unit, e.kind, e.chosen_by, e.source)
                for (c, a), e in sorted(self.entries.items())]
        return pd.DataFrame(rows, columns=["component", "action", "pj_per_action", "unit",
                                           "kind", "chosen_by", "source"])


def kind_of(component: str, action: str) -> Kind:
    """``leakage`` for ``leak_cycle``, ``offchip`` for the DRAM, else ``dynamic``."""
    if action == "leak_cycle":
        return "leakage"
    return "offchip" if component == "dram" else "dynamic"


def apply(actions: pd.DataFrame, table: EnergyTable) -> pd.DataFrame:
    """Price a long ``component, action, count`` frame: adds ``pj_per_action, energy_pj``."""
    table.require(zip(actions["component"], actions["action"], strict=True))
    out = actions.copy()
    out["pj_per_action"] = [table.entries[(c, a)].pj
                            for c, a in zip(out["component"], out["action"], strict=True)]
    out["energy_pj"] = out["count"].astype(float) * out["pj_per_action"]
    return out


def layer_energy_pj(actions: Iterable[Mapping[tuple[str, str], int]],
                    table: EnergyTable | None) -> list[float]:
    """Energy of each layer's action counts (NaN for every layer without a table)."""
    if table is None:
        return [math.nan for _ in actions]
    e = table.entries
    return [math.fsum(n * e[k].pj for k, n in counts.items()) for counts in actions]


def price(actions: pd.DataFrame, table: EnergyTable | None) -> pd.DataFrame:
    """:func:`apply` when there is a table; else the counts with NaN prices."""
    if table is not None:
        return apply(actions, table)
    return actions.assign(pj_per_action=math.nan, energy_pj=math.nan)
