"""Energy table files: a table is *produced* for one architecture from a YAML file in
``arch_configs/energy/`` (the pricing itself: :mod:`simulator.cost.table`):

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

from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.arch.accelerator import Accelerator, build
from simulator.arch.config import ArchConfig
from simulator.cost.actions import INSTANCES, known_actions
from simulator.cost.area import AreaData, area_table, load_area_data
from simulator.cost.models import ENERGY_MODELS, parse_variant
from simulator.cost.table import EnergyTable, Entry, kind_of
from simulator.cost.technology import scale_factor
from simulator.errors import ConfigError, EnergyError
from simulator.files import read_text, read_yaml
from simulator.hardware.registries import BUFFERS, DRAMS, PE_ARRAYS, VECTOR_UNITS
from simulator.registry import ComponentSpec, pydantic_errors

ARCH_CONFIGS = Path(__file__).resolve().parents[2] / "arch_configs"
DEFAULT_TABLE = "energy/45nm.yaml"


class _Fixed(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    pj: float = Field(ge=0, allow_inf_nan=False)
    technology_nm: float | None = Field(default=None, gt=0)
    unit: str = "pJ"
    source: str = Field(min_length=1)


class _TableFile(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    technology_nm: float = Field(gt=0)
    description: str = ""
    area: str | None = None
    model: Any = None
    actions: dict[str, _Fixed] = Field(default_factory=dict)


def resolve_path(path: str | Path) -> Path:
    """An energy table path: absolute, relative to the working directory, or to arch_configs/."""
    p = Path(path)
    return p if p.is_absolute() or p.is_file() else ARCH_CONFIGS / p


class TableFiles:
    """Parsed energy-table and area files, by path and **content**, for one owner to reuse
    (a :class:`~simulator.memo.LayerCache` holds one, so a sweep's points and the two table
    look-ups of one ``simulate`` parse each file once). Every look-up reads the file's text
    (microseconds) and parses only text it has not seen under that path: a changed file is
    always re-read, never served stale (``tests/test_table_cache.py`` checks both against a
    fresh parse). Bounded: at most ``max_entries`` parsed files (least recently used dropped
    first); a file that does not validate is never stored (its error is raised each time)."""

    def __init__(self, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self.hits = 0

    def _get(self, kind: str, path: Path, parse: Callable[[str], Any]) -> Any:
        text = read_text(path)
        key = (kind, str(path), text)
        hit = self._entries.get(key)
        if hit is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return hit
        out = self._entries[key] = parse(text)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return out

    def energy(self, path: Path) -> tuple[_TableFile, ComponentSpec | None]:
        """The validated contents of energy table file ``path`` and its model's spec."""
        return self._get("energy", path, lambda text: _parse_table(path, text))

    def area(self, path: Path) -> AreaData:
        """The validated contents of area file ``path``."""
        return self._get("area", path, lambda text: load_area_data(path, text))


def _parse_table(p: Path, text: str) -> tuple[_TableFile, ComponentSpec | None]:
    """Validate an energy table file's ``text`` (every error at once, naming ``p``)."""
    raw = read_yaml(p, text=text)
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
    errors += _unknown_keys(spec)
    if errors:
        raise ConfigError(str(p), errors)
    return spec, model


def load_energy_table(path: str | Path, arch: ArchConfig, acc: Accelerator | None = None,
                      variants: Iterable[str] = (), files: TableFiles | None = None
                      ) -> EnergyTable:
    """Produce the table of ``arch`` from an energy YAML file, at ``arch.technology_nm``.

    ``variants``: ``mac@<format><w>x<a>`` actions (layers at other precisions than the PE's,
    :mod:`simulator.cost.actions`) whose entries the model produces too. A model that prices
    leakage from area needs an ``area:`` file (else an :class:`EnergyError` naming the table);
    every fixed entry must name a component of the architecture (or a registered impl) and an
    action that is counted for it (else a :class:`ConfigError` listing the known ones).
    ``files``: parsed files to reuse (:class:`TableFiles`; default: parse them here)."""
    p = resolve_path(path)
    files = files if files is not None else TableFiles()
    spec, model = files.energy(p)
    acc = acc if acc is not None else build(arch)
    area: dict[str, float] = {}
    area_src: dict[str, str] = {}
    if spec.area is not None:
        area, area_src = area_table(acc, files.area(p.parent / spec.area))
    entries: dict[tuple[str, str], Entry] = {}
    if model is not None:
        impl = ENERGY_MODELS.build("model", model)
        if spec.area is None and impl.needs_area:
            raise EnergyError(f"energy table {spec.name!r} ({p}) prices leakage from area but "
                              f"has no `area:` file (e.g. area: area_45nm.yaml)")
        try:
            entries.update(impl.entries(acc, area, spec.technology_nm, variants))
        except EnergyError as exc:  # name the architecture file the offending value is in
            raise EnergyError(f"{arch.source}: {exc} (energy table {p})") from None
    entries.update(_fixed_entries(spec, acc))
    table = EnergyTable(spec.name, spec.technology_nm, entries, area, area_src, str(p))
    return table.scaled(arch.technology_nm)


def _component_kinds() -> dict[str, str]:
    """Every name a fixed entry may start with: instances, and registered impls."""
    out = dict(INSTANCES)
    for reg, kind in ((PE_ARRAYS, "pe_array"), (BUFFERS, "buffer"), (DRAMS, "dram"),
                      (VECTOR_UNITS, "vector_unit")):
        out.update({name: kind for name in reg.names if name not in out})
    return out


def _unknown_keys(spec: _TableFile) -> list[tuple[str, str]]:
    """Fixed entries that name no component, or an action never counted for it."""
    kinds = _component_kinds()
    known_of: dict[str, frozenset[str]] = {}  # each kind's actions, derived once
    errors = []
    for key in spec.actions:
        if key.count(".") != 1:
            continue
        comp, action = key.split(".")
        if comp not in kinds:
            errors.append((f"actions.{key}", f"unknown component {comp!r}; known: "
                                              f"{', '.join(sorted(kinds))}"))
            continue
        known = known_of.get(kinds[comp]) or known_of.setdefault(kinds[comp],
                                                                known_actions(kinds[comp]))
        if action not in known and parse_variant(action) is None:
            errors.append((f"actions.{key}", f"unknown action {action!r} of {comp}; known: "
                                              f"{', '.join(sorted(known))}"))
    return errors


def _fixed_entries(spec: _TableFile, acc: Accelerator) -> dict[tuple[str, str], Entry]:
    """The file's ``actions``, by instance name; an impl key applies to all its instances,
    and ``pe_array`` to every PE array of an architecture that declares several."""
    units = getattr(acc.arch, "units", None) or {"pe_array": acc.arch.pe_array}
    impls = {**{n: u.impl for n, u in units.items()}, "dram": acc.arch.dram.impl,
             **{n: s.impl for n, s in acc.arch.buffers.items()},
             "vector_unit": acc.arch.vector_unit.impl if acc.arch.vector_unit else "simd"}
    planned: list[tuple[int, list[str], str, _Fixed, str]] = []
    for key, fx in spec.actions.items():
        comp, action = key.split(".")
        if comp == "pe_array" and comp not in impls:
            planned.append((1, list(units), action, fx, comp))
        elif comp in impls:
            planned.append((1, [comp], action, fx, comp))
        else:  # an impl name: every instance of it (none in this arch: nothing to do)
            planned.append((0, [n for n, i in impls.items() if i == comp], action, fx, comp))
    out: dict[tuple[str, str], Entry] = {}
    for _, targets, action, fx, comp_key in sorted(planned, key=lambda t: t[0]):
        node = fx.technology_nm or spec.technology_nm
        note = "" if node == spec.technology_nm else f" (given at {node:g} nm, scaled)"
        for name in targets:
            kind = kind_of(name, action)
            pj = fx.pj * scale_factor(node, spec.technology_nm) if kind == "dynamic" else fx.pj
            out[(name, action)] = Entry(pj, f"{spec.name}: {fx.source}{note}", kind, fx.unit,
                                        f"energy table actions.{comp_key}.{action}")
    return out


def table_for(arch: ArchConfig, acc: Accelerator | None = None,
              variants: Iterable[str] = (), files: TableFiles | None = None) -> EnergyTable:
    """The table ``simulate`` uses: ``arch.energy_table``, else :data:`DEFAULT_TABLE`
    (``files``: parsed files to reuse, :class:`TableFiles`)."""
    if arch.energy_table is not None and not resolve_path(arch.energy_table).is_file():
        raise ConfigError(arch.source, [("energy_table", f"{arch.energy_table!r} not found: "
                                                         f"give a path relative to the working "
                                                         f"directory or to {ARCH_CONFIGS}")])
    return load_energy_table(arch.energy_table or DEFAULT_TABLE, arch, acc, variants, files)
