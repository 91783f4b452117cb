"""Sweep files (``workloads/sweeps/*.yaml``): what to explore, validated before any work.

.. code-block:: yaml

    name: edge-dse
    arch: ../../arch_configs/edge_8x8.yaml    # one base architecture, or a list (an axis "arch")
    axes:                                     # by dotted path into the architecture
      pe_array.rows: [8, 16, 32]
      pe_array.sparsity.weights: [none, skip]
      array:                                  # a labelled axis: several keys per value
        dense: {}
        shift: {pe_array.pe: shift, pe_array.weight_bits: 4}
    sampling: grid                            # grid | zip | {random: {n: 20, seed: 0}}
    workloads:                                # network specs, traces, topology CSVs
      - ../networks/lenet5.yaml
      - {path: ../networks/alexnet.yaml, label: alexnet-int4, network: alexnet,
         set: {weight_bits: 4}, keep: [conv1, fc8], accuracy: 0.55, accuracy_source: "..."}
    models: [digits-lenet]                    # compressed by every recipe (frontend)
    recipes: [baseline, int8, prune80]        # bundled names or files; baseline: uncompressed
    seed: 0                                   # the frontend's fine-tuning seed

Paths are relative to the sweep file. ``network`` groups workloads of one network (default:
the model, or the file's stem) for Pareto fronts: accuracies of different tasks do not
compare. Points are every sampled combination of the axes, for
every base architecture, times every workload (files first, then models x recipes).
``set`` assigns network-spec compression fields (``weight_bits``, ``act_bits``,
``weight_density``, ``act_density``, ``weight_structure``, ``weight_scheme``,
``codebook_size``) to every conv2d / linear layer of a spec except those named in ``keep``.

Every problem of the file is reported at once, each with its path (``axes.pe_array.rows[2]``),
in one :class:`SweepError`. Each axis value is checked against each base architecture on its
own (a typo or a zero size fails here, before any work); combinations that fail only together
or only on some layer (a PE kind that cannot run a layer's precision) become result rows with
their error.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.arch.config import parse_arch
from simulator.errors import ConfigError
from simulator.files import bundled, read_yaml
from simulator.registry import validate_file
from simulator.report import LAYER_COLUMNS
from simulator.sweep.hashing import canonical

#: Network-spec fields a workload entry's ``set`` may assign to every GEMM layer.
SET_FIELDS = ("weight_bits", "act_bits", "weight_density", "act_density", "weight_structure",
              "weight_scheme", "codebook_size")
BASELINE = "baseline"
#: Result columns an axis must not be named after (dotted paths never clash: no result
#: column has a dot; the axis of several base architectures is ``arch``).
RESERVED = frozenset({"point_hash", "point_index", "sweep", "workload", "network", "model",
                      "recipe", "accuracy", "baseline_accuracy", "accuracy_source", "error",
                      "error_type", "notes", "unit_n_pes", "elapsed_s", "worker", "arch_name",
                      "n_pes", "clock_mhz", "dram_bandwidth_gb_per_s", "peak_tops", "layers",
                      "latency_us", *LAYER_COLUMNS})


class SweepError(ConfigError):
    """A sweep file is wrong (every problem at once, each with its path)."""


class _Strict(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class _Random(_Strict):
    n: Annotated[int, Field(gt=0, strict=True)]
    seed: Annotated[int, Field(strict=True)] = 0


class _RandomSampling(_Strict):
    random: _Random


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _WorkloadEntry(_Strict):
    path: str = Field(min_length=1)
    label: str | None = Field(default=None, min_length=1)
    network: str | None = Field(default=None, min_length=1)
    set: dict[str, Any] | None = None
    keep: list[str] = []
    accuracy: Fraction | None = None
    baseline_accuracy: Fraction | None = None
    accuracy_source: str | None = None


class _SweepFile(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    arch: str | Annotated[list[str], Field(min_length=1)]
    axes: dict[str, list[Any] | dict[str, dict[str, Any]]] = {}
    sampling: Literal["grid", "zip"] | _RandomSampling = "grid"
    workloads: list[str | _WorkloadEntry] = []
    models: list[str] = []
    recipes: list[str] = []
    seed: Annotated[int, Field(strict=True)] = 0


@dataclass(frozen=True, slots=True)
class Axis:
    """One axis: its column name, the value shown per choice, the overrides of each choice."""

    name: str
    labels: tuple[Any, ...]
    overrides: tuple[Mapping[str, Any], ...]
    labelled: bool = False

    def where(self, i: int) -> str:
        """The path of choice ``i`` in the sweep file."""
        return (f"axes.{self.name}.{self.labels[i]}" if self.labelled
                else f"axes.{self.name}[{i}]")


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """One workload of a sweep: a file (``path``) or a model compressed by a recipe."""

    label: str
    network: str
    path: Path | None = None
    set: Mapping[str, Any] | None = None
    keep: tuple[str, ...] = ()
    model: str | None = None
    recipe: str | None = None
    accuracy: float | None = None
    baseline_accuracy: float | None = None
    accuracy_source: str | None = None


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A validated sweep: base architectures (label, dict), axes, sampling, workloads."""

    name: str
    description: str
    archs: tuple[tuple[str, Mapping[str, Any]], ...]
    axes: tuple[Axis, ...]
    sampling: Literal["grid", "zip", "random"]
    random_n: int
    random_seed: int
    workloads: tuple[WorkloadSpec, ...]
    seed: int
    source: str = "<dict>"

    @property
    def axis_names(self) -> list[str]:
        names = [a.name for a in self.axes]
        return ["arch", *names] if len(self.archs) > 1 else names


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``path = "a.b.c"``, creating missing mappings.

    Raises ``ValueError`` naming the part of the path that holds a non-mapping."""
    keys = path.split(".")
    cur = data
    for i, key in enumerate(keys[:-1]):
        nxt = cur.get(key)
        if nxt is None:
            nxt = cur[key] = {}
        elif not isinstance(nxt, dict):
            where = ".".join(keys[:i + 1])
            raise ValueError(f"`{where}` is {nxt!r}, not a mapping: set `{where}` itself "
                             f"(e.g. to {{impl: ..., ...}})")
        cur = nxt
    cur[keys[-1]] = copy.deepcopy(value)


def apply_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with every dotted-path override applied."""
    out = copy.deepcopy(dict(base))
    for path, value in overrides.items():
        set_path(out, path, value)
    return out


def _labels(values: Sequence[Any]) -> tuple[Any, ...]:
    """Column values of an axis: the values themselves when they are all numbers, all bools or
    all strings (one column type), else their canonical JSON text."""
    kinds = {bool if isinstance(v, bool) else (float if isinstance(v, (int, float)) else type(v))
             for v in values}
    if len(kinds) == 1 and kinds <= {bool, float, str}:
        return tuple(values)
    return tuple(v if isinstance(v, str) else canonical(v) for v in values)


def _axes(raw: Mapping[str, Any], errors: list[tuple[str, str]]) -> list[Axis]:
    axes = []
    for name, values in raw.items():
        path = f"axes.{name}"
        if name in RESERVED or name.startswith(("energy_", "tops", "area_", "dram_", "sram_")):
            errors.append((path, f"{name!r} is a result column; name the axis otherwise"))
        if isinstance(values, Mapping):  # labelled: {label: {dotted.path: value}}
            if not values:
                errors.append((path, "a labelled axis needs at least one label"))
                continue
            axes.append(Axis(name, tuple(values), tuple(dict(v) for v in values.values()),
                             labelled=True))
            continue
        if not values:
            errors.append((path, "needs at least one value"))
            continue
        texts = [canonical(v) for v in values]
        dupes = sorted({t for t in texts if texts.count(t) > 1})
        if dupes:
            errors.append((path, f"values listed twice: {', '.join(dupes)}"))
        axes.append(Axis(name, _labels(values), tuple({name: v} for v in values)))
    return axes


def _check_axes(archs: Sequence[tuple[str, Mapping[str, Any]]], axes: Sequence[Axis],
                errors: list[tuple[str, str]]) -> None:
    """Each axis value on each base architecture alone must be a valid architecture."""
    for label, base in archs:
        for axis in axes:
            for i, over in enumerate(axis.overrides):
                where = axis.where(i)
                try:
                    parse_arch(apply_overrides(base, over), source=label)
                except ValueError as exc:
                    errors.append((where, str(exc)))
                except ConfigError as exc:
                    errors += [(where, f"on {label}: {p or '<root>'}: {m}")
                               for p, m in exc.errors]


def _arch(path: Path, where: str, errors: list[tuple[str, str]]) -> tuple[str, dict[str, Any]]:
    if path.suffix not in (".yaml", ".yml"):
        errors.append((where, f"{path}: a sweep needs a YAML architecture (a SCALE-Sim .cfg "
                              f"cannot take dotted-path axes)"))
        return path.stem, {}
    try:
        data = read_yaml(path)
        parse_arch(data, source=str(path))
    except ConfigError as exc:
        errors += [(where, f"{exc.source}: {p or '<root>'}: {m}") for p, m in exc.errors]
        return path.stem, {}
    return path.stem, data


def _workload_entries(top: _SweepFile, base: Path,
                      errors: list[tuple[str, str]]) -> list[WorkloadSpec]:
    out = []
    for i, entry in enumerate(top.workloads):
        e = _WorkloadEntry(path=entry) if isinstance(entry, str) else entry
        p = base / e.path
        where = f"workloads[{i}]"
        if not p.exists():
            errors.append((f"{where}.path" if not isinstance(entry, str) else where,
                           f"{p}: file not found"))
        if e.set is not None:
            bad = sorted(set(e.set) - set(SET_FIELDS))
            if bad:
                errors.append((f"{where}.set", f"unknown field(s) {', '.join(bad)}; "
                                               f"expected {', '.join(SET_FIELDS)}"))
            if p.suffix not in (".yaml", ".yml"):
                errors.append((f"{where}.set", "applies to network spec .yaml files only"))
        out.append(WorkloadSpec(label=e.label or p.stem, network=e.network or p.stem, path=p,
                                set=e.set, keep=tuple(e.keep),
                                accuracy=e.accuracy, baseline_accuracy=e.baseline_accuracy,
                                accuracy_source=e.accuracy_source))
    if bool(top.models) != bool(top.recipes):
        errors.append(("models" if top.recipes else "recipes",
                       "models and recipes go together (each model x each recipe)"))
    for j, model in enumerate(top.models):
        for k, recipe in enumerate(top.recipes):
            ref = recipe
            if recipe != BASELINE and (base / recipe).is_file():
                ref = str(base / recipe)
            elif recipe != BASELINE and not _bundled_recipe(recipe):
                if j == 0:
                    errors.append((f"recipes[{k}]", f"{recipe!r}: neither a file (relative to "
                                                    f"the sweep file) nor a bundled recipe"))
                continue
            out.append(WorkloadSpec(label=f"{model}/{Path(recipe).stem}",
                                    network=Path(model).stem if model.endswith(".onnx")
                                    else model, model=model, recipe=ref))
    labels = [w.label for w in out]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        errors.append(("workloads", f"labels used twice: {', '.join(dupes)} (give each a "
                                    f"`label`)"))
    return out


def _bundled_recipe(name: str) -> bool:
    return bundled(name, "recipes").is_file()


def parse_sweep(data: Any, source: str = "<dict>", base_dir: str | Path = ".") -> SweepSpec:
    """Validate a parsed sweep file (paths relative to ``base_dir``); all errors at once."""
    top = validate_file(_SweepFile, data, source, SweepError,
                        "`name`, `arch`, `axes`, `workloads`")
    base = Path(base_dir)
    errors: list[tuple[str, str]] = []
    paths = [top.arch] if isinstance(top.arch, str) else top.arch
    archs = [_arch(base / p, "arch" if isinstance(top.arch, str) else f"arch[{i}]", errors)
             for i, p in enumerate(paths)]
    stems = [s for s, _ in archs]
    if len(set(stems)) < len(stems):
        errors.append(("arch", f"architecture files with the same name: {stems}"))
    axes = _axes(top.axes, errors)
    if "arch" in top.axes and len(archs) > 1:
        errors.append(("axes.arch", "`arch` names the axis of base architectures"))
    if not errors:
        _check_axes(archs, axes, errors)
    sampling: Literal["grid", "zip", "random"]
    n = seed = 0
    if isinstance(top.sampling, _RandomSampling):
        sampling, n, seed = "random", top.sampling.random.n, top.sampling.random.seed
        total = 1
        for a in axes:
            total *= len(a.labels)
        if n > total:
            errors.append(("sampling.random.n", f"{n} points asked from a grid of {total}"))
    else:
        sampling = top.sampling
    if sampling == "zip" and len({len(a.labels) for a in axes}) > 1:
        lengths = ", ".join(f"{a.name}: {len(a.labels)}" for a in axes)
        errors.append(("sampling", f"zip needs axes of equal length ({lengths})"))
    workloads = _workload_entries(top, base, errors)
    if not workloads:
        errors.append(("workloads", "no workloads: list files under `workloads` or "
                                    "`models` with `recipes`"))
    if errors:
        raise SweepError(source, errors)
    return SweepSpec(name=top.name, description=top.description, archs=tuple(archs),
                     axes=tuple(axes), sampling=sampling, random_n=n, random_seed=seed,
                     workloads=tuple(workloads), seed=top.seed, source=source)


def load_sweep(path: str | Path) -> SweepSpec:
    """Load a sweep file (a bare name looks in the bundled ``workloads/sweeps/``)."""
    p = bundled(path, "sweeps")
    return parse_sweep(read_yaml(p, SweepError), source=str(p), base_dir=p.parent)
