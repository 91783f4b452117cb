"""Architecture configuration: strict YAML loading into validated, frozen objects.

An architecture file (DESIGN.md section 4) names a PE array, three SRAM buffers (``ifmap``,
``filter``, ``ofmap``), a DRAM and optionally a vector unit, each as ``{impl: name, ...params}``
resolved through the component registries of :mod:`simulator.hardware` (each component
declares its own parameters, so this module sits above the hardware). Loading collects
*every* problem in the file,
each with its dotted path, and raises one :class:`~simulator.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.arch.placement import PLACEMENTS
from simulator.errors import ConfigError
from simulator.hardware.registries import BUFFERS, DRAMS, PE_ARRAYS, VECTOR_UNITS
from simulator.mapping.options import MappingParams, ResidencyParams
from simulator.registry import ComponentSpec, ParamsModel, pydantic_errors, short_repr

BUFFER_NAMES = ("ifmap", "filter", "ofmap")


class _ArchFile(BaseModel):
    """Top-level shape of an architecture file; components are validated by their registry.

    ``clock_mhz`` from 1 kHz to 100 GHz (a warning outside 1 MHz - 10 GHz); ``technology_nm``
    within the Stillmaker-Baas scaling table the energy model uses (7-130 nm)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)
    name: str = Field(min_length=1, max_length=1000)
    clock_mhz: float = Field(ge=1e-3, le=1e5, allow_inf_nan=False)
    technology_nm: int = Field(default=45, ge=7, le=130)
    pe_array: Any = None
    pe_arrays: Any = None
    placement: Any = None
    buffers: dict[str, Any]
    dram: Any
    vector_unit: Any = None
    energy_table: str | None = None
    mapping: MappingParams = Field(default_factory=MappingParams)
    residency: ResidencyParams = Field(default_factory=ResidencyParams)


@dataclass(frozen=True, slots=True)
class ArchConfig:
    """A validated architecture. Components are resolved specs; build them with the engine.

    ``clock_mhz`` converts DRAM bandwidth (GB/s) and latency (ns) to per-cycle figures.
    ``vector_unit`` is ``None`` when the file has none: then pooling and element-wise layers run
    on a SIMD unit as wide as the PE array has columns (documented default, README).
    ``mapping`` (tiling search, objective) and ``residency`` (what stays on chip between
    layers and inferences): :mod:`simulator.mapping.options`.
    """

    name: str
    clock_mhz: float
    pe_array: ComponentSpec
    buffers: Mapping[str, ComponentSpec]
    dram: ComponentSpec
    vector_unit: ComponentSpec | None = None
    technology_nm: int = 45
    energy_table: str | None = None
    source: str = "<dict>"
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: ``(path, message)`` of legal but implausible values (the CLI prints them)
    warnings: tuple[tuple[str, str], ...] = ()
    mapping: MappingParams = field(default_factory=MappingParams)
    residency: ResidencyParams = field(default_factory=ResidencyParams)
    #: every PE array by instance name (``pe_arrays:``; one named ``pe_array`` otherwise);
    #: ``pe_array`` is the first
    units: Mapping[str, ComponentSpec] = field(default_factory=dict)
    #: the rule that places GEMM layers on the arrays (:mod:`simulator.arch.placement`)
    placement: ComponentSpec | None = None

    def __post_init__(self) -> None:
        if not self.units:
            object.__setattr__(self, "units", {"pe_array": self.pe_array})


#: Keys of a network spec: an architecture file holding them is likely the WORKLOAD argument.
_NETWORK_KEYS = {"layers", "batch_size"}


def parse_arch(data: Any, source: str = "<dict>") -> ArchConfig:
    """Validate a raw mapping (parsed YAML) into an :class:`ArchConfig`; all errors at once."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, [("", f"must be a mapping of architecture keys "
                                        f"(got {short_repr(data)})")])
    if _NETWORK_KEYS & set(data) and "pe_array" not in data \
            and "pe_arrays" not in data:
        raise ConfigError(source, [("", "this looks like a network spec (it has `layers`), not "
                                        "an architecture: the order is `approxsim run ARCH "
                                        "WORKLOAD` (arguments swapped?)")])
    errors: list[tuple[str, str]] = []
    try:
        top = _ArchFile.model_validate(data)
    except ValidationError as exc:
        errors += pydantic_errors(exc)
        top = None
    raw_buffers = data.get("buffers")
    buffers: dict[str, ComponentSpec] = {}
    if isinstance(raw_buffers, Mapping):
        for name in BUFFER_NAMES:
            if name not in raw_buffers:
                errors.append((f"buffers.{name}", "required buffer is missing"))
        for name, raw in raw_buffers.items():
            if name not in BUFFER_NAMES:
                errors.append((f"buffers.{name}", f"unknown buffer; expected {list(BUFFER_NAMES)}"))
                continue
            spec, errs = BUFFERS.validate(raw, f"buffers.{name}")
            errors += errs
            if spec is not None:
                buffers[name] = spec
    units, placement, errs = _units(data)
    errors += errs
    pe = next(iter(units.values()), None)
    dram, errs = DRAMS.validate(data.get("dram"), "dram") if "dram" in data else (None, [])
    errors += errs
    vec = None
    if data.get("vector_unit") is not None:
        vec, errs = VECTOR_UNITS.validate(data["vector_unit"], "vector_unit")
        errors += errs
    if errors or top is None or pe is None or dram is None:
        raise ConfigError(source, _dedupe(errors))
    warnings = [("clock_mhz", f"{top.clock_mhz:g} MHz is outside 1-10,000 MHz; intended?")
                ] if not 1 <= top.clock_mhz <= 1e4 else []
    prefix = "pe_arrays." if "pe_arrays" in data else ""
    parts = [*((f"{prefix}{n}" if prefix else "pe_array", u) for n, u in units.items()),
             ("dram", dram), ("vector_unit", vec),
             *((f"buffers.{n}", b) for n, b in buffers.items())]
    for path, spec in parts:
        if spec is not None and isinstance(spec.params, ParamsModel):
            warnings += [(f"{path}.{key}", msg) for key, msg in spec.params.implausible()]
    return ArchConfig(name=top.name, clock_mhz=top.clock_mhz, pe_array=pe, buffers=buffers,
                      dram=dram, vector_unit=vec, technology_nm=top.technology_nm,
                      energy_table=top.energy_table, source=source, warnings=tuple(warnings),
                      units=units, placement=placement, mapping=top.mapping,
                      residency=top.residency)


#: Names a PE array may not take: the other components' instance names, and ``pe_array``
#: (which an energy table's entries use for every PE array).
RESERVED_UNITS = {"pe_array", "vector_unit", "dram", *BUFFER_NAMES}


def _units(data: Mapping[str, Any]) -> tuple[dict[str, ComponentSpec], ComponentSpec | None,
                                              list[tuple[str, str]]]:
    """The PE arrays (``pe_array`` or ``pe_arrays``) and the placement rule, validated."""
    errors: list[tuple[str, str]] = []
    one, many = data.get("pe_array"), data.get("pe_arrays")
    if one is not None and many is not None:
        return {}, None, [("pe_arrays", "give either pe_array (one array) or pe_arrays "
                                        "(several, with a placement rule), not both")]
    if many is None:
        if data.get("placement") is not None:
            errors.append(("placement", "applies to several arrays: declare them under "
                                        "pe_arrays: {name: {impl: ...}, ...}"))
        if one is None:
            return {}, None, [*errors, ("pe_array", "Field required (or pe_arrays: several "
                                                    "arrays with a placement rule)")]
        spec, errs = PE_ARRAYS.validate(one, "pe_array")
        return ({"pe_array": spec} if spec is not None else {}), None, errors + errs
    if not isinstance(many, Mapping) or not many:
        return {}, None, [("pe_arrays", f"must be a non-empty mapping of array names to "
                                        f"{{impl: ...}} (got {short_repr(many)})")]
    units: dict[str, ComponentSpec] = {}
    for name, raw in many.items():
        where = f"pe_arrays.{name}"
        if not (isinstance(name, str) and name.isidentifier()) or name in RESERVED_UNITS:
            errors.append((where, f"array names must be identifiers other than "
                                  f"{sorted(RESERVED_UNITS)}"))
            continue
        spec, errs = PE_ARRAYS.validate(raw, where)
        errors += errs
        if spec is not None:
            units[name] = spec
    placement = None
    if data.get("placement") is None:
        if len(many) > 1:
            errors.append(("placement", "required with several pe_arrays: {impl: by_precision}"
                                        ", {impl: by_op, rules: {...}, default: ...} or "
                                        "{impl: explicit, layers: {...}}"))
    else:
        placement, errs = PLACEMENTS.validate(data["placement"], "placement")
        errors += errs
        if placement is not None:
            known = [*many, "vector_unit"]
            for path, unit in PLACEMENTS.build("placement", placement).referenced():
                if unit not in known:
                    errors.append((f"placement.{path}", f"unknown unit {unit!r}; the "
                                                        f"architecture has {known}"))
    return units, placement, errors


def _dedupe(errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    return [e for e in errors if not (e in seen or seen.add(e))]  # type: ignore[func-returns-value]
