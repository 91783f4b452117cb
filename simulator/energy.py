"""Energy tables: pJ per ``(component, action)``, each entry with its unit and citation.

Energy = action counts (:mod:`simulator.actions`) x an :class:`EnergyTable`. A table is plain
data. It is *produced* for one architecture from a YAML file in ``arch_configs/energy/``:

.. code-block:: yaml

    name: horowitz_45nm
    technology_nm: 45            # node at which the numbers below hold
    area: area_45nm.yaml         # area data (simulator/area.py), relative to this file
    model: {impl: horowitz, ...} # optional: size/width-dependent entries (energy_models.py)
    actions:                     # optional: fixed entries; they override the model's
      pe_array.shift_add: {pj: 0.021, technology_nm: 32, source: "ISAAC, ISCA 2016"}
      sram.read: {pj: 5.0, source: "..."}   # by impl: every buffer of impl sram

A fixed entry is keyed ``<instance or impl>.<action>``; the instance key wins. Its ``pj`` holds
at its own ``technology_nm`` (default: the file's) and is converted to the file's node.

**Technology scaling** (:func:`scale_factor`): dynamic energies are multiplied by the
Stillmaker-Baas energy factor of the architecture's ``technology_nm`` over the table's node
(log-log interpolation between the published nodes). *Leakage* entries are not: they are
computed at the architecture's node from leakage power density x area (area scales by
``(node/45)^2``), and ``offchip`` entries (DRAM, from the architecture's own
``energy_pj_per_bit``) do not depend on the accelerator's node.

A count with no entry is never priced at zero: :meth:`EnergyTable.require` raises one
:class:`EnergyError` listing every missing pair.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import ConfigError, SimulatorError
from simulator.registry import ComponentSpec, Registry, pydantic_errors

if TYPE_CHECKING:
    from simulator.accelerator import Accelerator
    from simulator.config import ArchConfig

Kind = Literal["dynamic", "leakage", "offchip"]

#: Energy relative to 45 nm, Stillmaker and Baas, "Scaling equations for the accurate
#: prediction of CMOS device performance from 180 nm to 7 nm", Integration, the VLSI Journal
#: 58:74-81, 2017 (the polynomials Accelergy's library plug-in uses); ../shared/reference/
#: energy.md. Published at a fixed 0.8 V; used here as ratios between nodes only.
STILLMAKER_BAAS = {130: 3.07, 90: 1.90, 65: 1.24, 45: 1.0, 32: 0.66, 20: 0.22, 16: 0.17,
                   14: 0.14, 10: 0.12, 7: 0.094}
ARCH_CONFIGS = Path(__file__).resolve().parent.parent / "arch_configs"
DEFAULT_TABLE = "energy/45nm.yaml"

ENERGY_MODELS: Registry[Any] = Registry("energy_model")


class EnergyError(SimulatorError):
    """An energy table cannot price the counts (missing entries) or cannot be built."""


def scale_factor(from_nm: float, to_nm: float) -> float:
    """Dynamic-energy factor from node ``from_nm`` to ``to_nm`` (Stillmaker-Baas)."""
    return _node_factor(to_nm) / _node_factor(from_nm)


def _node_factor(nm: float) -> float:
    if nm in STILLMAKER_BAAS:
        return STILLMAKER_BAAS[int(nm)]
    nodes = sorted(STILLMAKER_BAAS)
    if not nodes[0] <= nm <= nodes[-1]:
        raise EnergyError(f"technology_nm must be within {nodes[0]}-{nodes[-1]} nm, the range "
                          f"of the Stillmaker-Baas factors (got {nm})")
    hi = next(n for n in nodes if n > nm)
    lo = max(n for n in nodes if n < nm)
    t = math.log(nm / lo) / math.log(hi / lo)
    return math.exp((1 - t) * math.log(STILLMAKER_BAAS[lo]) + t * math.log(STILLMAKER_BAAS[hi]))


@dataclass(frozen=True, slots=True)
class Entry:
    """One priced action: ``pj`` per action, its kind, unit and citation."""

    pj: float
    source: str
    kind: Kind = "dynamic"
    unit: str = "pJ"


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
        entries = {k: (replace(e, pj=e.pj * f, source=e.source + note)
                       if e.kind == "dynamic" and f != 1.0 else e)
                   for k, e in self.entries.items()}
        return replace(self, technology_nm=technology_nm, entries=entries)

    def frame(self) -> pd.DataFrame:
        """The table as ``component, action, pj_per_action, unit, kind, source``."""
        rows = [(c, a, e.pj, e.unit, e.kind, e.source)
                for (c, a), e in sorted(self.entries.items())]
        return pd.DataFrame(rows, columns=["component", "action", "pj_per_action", "unit",
                                           "kind", "source"])


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


class _Fixed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pj: float = Field(ge=0, allow_inf_nan=False)
    technology_nm: float | None = Field(default=None, gt=0)
    unit: str = "pJ"
    source: str = Field(min_length=1)


class _TableFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    technology_nm: float = Field(gt=0)
    description: str = ""
    area: str | None = None
    model: Any = None
    actions: dict[str, _Fixed] = Field(default_factory=dict)


def read_yaml_fast(path: Path) -> Any:
    """:func:`simulator.yaml_loader.read_yaml` (kept as the energy modules' entry point)."""
    from simulator import yaml_loader

    return yaml_loader.read_yaml(path)


def resolve_path(path: str | Path) -> Path:
    """An energy table path: absolute, relative to the working directory, or to arch_configs/."""
    p = Path(path)
    return p if p.is_absolute() or p.is_file() else ARCH_CONFIGS / p


def load_energy_table(path: str | Path, arch: ArchConfig,
                      acc: Accelerator | None = None) -> EnergyTable:
    """Produce the table of ``arch`` from an energy YAML file, at ``arch.technology_nm``."""
    from simulator import energy_models as _models  # noqa: F401  (registers the models)
    from simulator.accelerator import build
    from simulator.area import area_table, load_area_data
    p = resolve_path(path)
    raw = read_yaml_fast(p)
    try:
        spec = _TableFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(p), pydantic_errors(exc)) from None
    model: ComponentSpec | None = None
    if spec.model is not None:
        model, errs = ENERGY_MODELS.validate(spec.model, "model")
        if errs:
            raise ConfigError(str(p), errs)
    errors = [(f"actions.{k}", "must be <component>.<action>") for k in spec.actions
              if k.count(".") != 1]
    if errors:
        raise ConfigError(str(p), errors)
    acc = acc if acc is not None else build(arch)
    area: dict[str, float] = {}
    area_src: dict[str, str] = {}
    if spec.area is not None:
        area, area_src = area_table(acc, load_area_data(p.parent / spec.area))
    entries: dict[tuple[str, str], Entry] = {}
    if model is not None:
        impl = ENERGY_MODELS.build("model", model)
        entries.update(impl.entries(acc, area, spec.technology_nm))
    entries.update(_fixed_entries(spec, acc))
    table = EnergyTable(spec.name, spec.technology_nm, entries, area, area_src, str(p))
    return table.scaled(arch.technology_nm)


def _fixed_entries(spec: _TableFile, acc: Accelerator) -> dict[tuple[str, str], Entry]:
    """The file's ``actions``, by instance name; an impl key applies to all its instances."""
    impls = {"pe_array": acc.arch.pe_array.impl, "dram": acc.arch.dram.impl,
             **{n: s.impl for n, s in acc.arch.buffers.items()},
             "vector_unit": acc.arch.vector_unit.impl if acc.arch.vector_unit else "simd"}
    planned: list[tuple[int, list[str], str, _Fixed]] = []
    for key, fx in spec.actions.items():
        comp, action = key.split(".")
        if comp in impls:
            planned.append((1, [comp], action, fx))
        else:  # an impl name: every instance of it (none in this arch: nothing to do)
            planned.append((0, [n for n, i in impls.items() if i == comp], action, fx))
    out: dict[tuple[str, str], Entry] = {}
    for _, targets, action, fx in sorted(planned, key=lambda t: t[0]):
        node = fx.technology_nm or spec.technology_nm
        note = "" if node == spec.technology_nm else f" (given at {node:g} nm, scaled)"
        for name in targets:
            kind = kind_of(name, action)
            pj = fx.pj * scale_factor(node, spec.technology_nm) if kind == "dynamic" else fx.pj
            out[(name, action)] = Entry(pj, f"{spec.name}: {fx.source}{note}", kind, fx.unit)
    return out


def table_for(arch: ArchConfig, acc: Accelerator | None = None) -> EnergyTable:
    """The table ``simulate`` uses: ``arch.energy_table``, else :data:`DEFAULT_TABLE`."""
    return load_energy_table(arch.energy_table or DEFAULT_TABLE, arch, acc)


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


def energy_totals(energy_pj: float, total_cycles: int, clock_mhz: float, macs: int,
                  area_mm2: Mapping[str, float]) -> dict[str, float]:
    """Whole-inference figures: energy, average power, TOPS (2 ops per MAC), TOPS/W,
    TOPS/mm^2, energy-delay product, inferences per second (one run of the workload)."""
    seconds = total_cycles / (clock_mhz * 1e6) if total_cycles else math.nan
    ops = 2.0 * macs
    area = math.fsum(area_mm2.values()) if area_mm2 else math.nan
    tops = ops / seconds / 1e12 if seconds else math.nan
    return {
        "energy_pj": energy_pj,
        "energy_uj": energy_pj * 1e-6,
        "avg_power_mw": energy_pj * 1e-9 / seconds if seconds else math.nan,
        "tops": tops,
        "tops_per_w": ops / energy_pj if energy_pj else math.nan,  # (ops/s) / (J/s), J = pJ 1e-12
        "area_mm2": area,
        "tops_per_mm2": tops / area if area else math.nan,
        "edp_j_s": energy_pj * 1e-12 * seconds,
        "inferences_per_s": 1.0 / seconds if seconds else math.nan,
    }
