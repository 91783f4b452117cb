"""Compression recipes (``workloads/recipes/*.yaml``): which methods, on which layers, in order.

```yaml
name: prune80-int8
description: Deep-Compression-style pipeline
finetune: {epochs: 2, lr: 0.001}      # optional masked fine-tuning after pruning / low rank
                                      # (qat: true also fine-tunes through quantisation;
                                      # activations: true then also through activations)
steps:                   # in order: distill, lowrank, structure, prune, share, quantise,
                         # activation, function, exit, measure (methods.STAGES)
  - {method: magnitude, sparsity: 0.8, layers: ["conv*", "fc1"], iterations: 2}
  - {method: kmeans, clusters: 16, exclude: [conv1]}
  - {method: fixed_point, bits: 8}
  - {method: act_fixed_point, bits: 8}
```
``layers`` (default ``"*"``: every layer computed with a model weight) and ``exclude`` are
*selectors*, one or a list: a shell-style pattern over layer names (``"conv*"``), or a mapping
``{type: conv2d | linear | matmul}`` (the layer's op; for activation-function steps ``sigmoid |
tanh | gelu | silu | exp | softmax | layernorm | rmsnorm``), ``{position: first | last}`` (the
first / last layer the step may select, in the order the forward pass runs them) or
``{pattern: "..."}``; so a recipe travels between
models (``exclude: {position: first}`` keeps whatever the first layer is called dense). Every
selector must match at least one layer (a typo is an error, never a silent no-op), unless it
says ``optional: true`` (``{type: conv2d, optional: true}`` on a model without convolutions).
Parameters are validated against the method's ``Params`` model: every error at once, each with
its path (``steps[1].bits``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from simulator.errors import ConfigError
from simulator.files import read_yaml
from simulator.frontend import (  # noqa: F401  (they register their methods)
    adaptive,
    approximate,
    distill,
    group_quant,
    input_dependent,
    mixed_precision,
    structured,
)
from simulator.frontend.methods import METHODS, STAGES, Method, Params
from simulator.registry import validate_file
from simulator.workload.approx import FUNCTIONS


class RecipeError(ConfigError):
    """A recipe file is wrong (every problem at once, each with its path)."""


class FineTune(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    epochs: Annotated[int, Field(ge=0, strict=True)] = 0
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    batch_size: Annotated[int, Field(gt=0, strict=True)] = 64
    #: also fine-tune through weight quantisation (straight-through estimator)
    qat: bool = False
    #: with ``qat``: fine-tune once more after the last activation step, through the weight
    #: and the activation quantisation together (binary inputs need it: XNOR-Net)
    activations: bool = False


class _RecipeFile(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    description: str = ""
    finetune: FineTune = FineTune()
    steps: Annotated[list[Any], Field(min_length=1)]


SELECTOR_TYPES = ("conv2d", "linear", "matmul", *FUNCTIONS)
POSITIONS = ("first", "last")


@dataclass(frozen=True, slots=True)
class Selector:
    """One layer selector: ``kind`` is ``pattern``, ``type`` or ``position``."""

    kind: str
    value: str
    optional: bool = False

    def __str__(self) -> str:
        return repr(self.value) if self.kind == "pattern" else f"{{{self.kind}: {self.value}}}"

    def hit(self, name: str, alias: str, index: int, count: int, op: str | None) -> bool:
        if self.kind == "pattern":
            return fnmatch.fnmatchcase(name, self.value) or fnmatch.fnmatchcase(alias, self.value)
        if self.kind == "type":
            return op == self.value
        return index == (0 if self.value == "first" else count - 1)


@dataclass(frozen=True, slots=True)
class Step:
    """One validated recipe step."""

    index: int
    method: Method
    params: Params
    layers: tuple[Selector, ...]
    exclude: tuple[Selector, ...]
    #: the step gave no ``layers`` (so ``"*"``)
    default_layers: bool = False

    @property
    def path(self) -> str:
        return f"steps[{self.index}]"

    def targets(self, names: Sequence[str], source: str,
                aliases: Mapping[str, str] | None = None,
                ops: Mapping[str, str] | None = None) -> list[str]:
        """The layers of ``names`` (in execution order) this step applies to: matched by
        ``layers`` and not by ``exclude`` (a name matches through itself or its alias, e.g. the
        original layer a low-rank split came from; ``ops`` gives each layer's op for ``type``
        selectors). A selector that matches no layer is a :class:`RecipeError` naming the
        step's field and listing the layers (``source``: the recipe file)."""
        alias = aliases or {}
        kinds = ops or {}
        n = len(names)

        def hit(i: int, name: str, sels: tuple[Selector, ...]) -> bool:
            return any(sel.hit(name, alias.get(name, name), i, n, kinds.get(name))
                       for sel in sels)

        errors = [(f"{self.path}.{field}", f"selector {sel} not found (it matches no layer); "
                                           f"the model's layers are "
                                           f"{', '.join(names) or '(none)'}")
                  for field, sels in (("layers", self.layers), ("exclude", self.exclude))
                  for sel in sels if not sel.optional
                  and not any(hit(i, nm, (sel,)) for i, nm in enumerate(names))]
        if errors:
            raise RecipeError(source, errors)
        return [nm for i, nm in enumerate(names)
                if hit(i, nm, self.layers) and not hit(i, nm, self.exclude)]


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated recipe; ``raw`` is the mapping it came from (embedded in traces)."""

    name: str
    description: str
    finetune: FineTune
    steps: tuple[Step, ...]
    raw: Mapping[str, Any]
    source: str = "<dict>"


def _selectors(value: Any, path: str, errors: list[tuple[str, str]]) -> tuple[Selector, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(value, list) else path
        if isinstance(item, str) and item:
            out.append(Selector("pattern", item))
            continue
        if isinstance(item, Mapping):
            keys = [k for k in ("pattern", "type", "position") if k in item]
            extra = sorted(set(item) - {"pattern", "type", "position", "optional"})
            val = item.get(keys[0]) if len(keys) == 1 else None
            opt = item.get("optional", False)
            ok = {"pattern": isinstance(val, str) and bool(val), "type": val in SELECTOR_TYPES,
                  "position": val in POSITIONS}
            if len(keys) == 1 and not extra and ok[keys[0]] and isinstance(opt, bool):
                out.append(Selector(keys[0], str(val), opt))
                continue
        errors.append((where, f"must be a layer-name pattern or a mapping with one of "
                              f"pattern: '...', type: {' | '.join(SELECTOR_TYPES)}, position: "
                              f"first | last (and optional: true|false) (got {item!r})"))
    if not items:
        errors.append((path, "must not be empty"))
    return tuple(out)


def parse_recipe(data: Any, source: str = "<dict>") -> Recipe:
    """Validate a parsed recipe; raise one :class:`RecipeError` listing every problem."""
    top = validate_file(_RecipeFile, data, source, RecipeError, "`name` and `steps`")
    errors: list[tuple[str, str]] = []
    steps: list[Step] = []
    for i, raw in enumerate(top.steps):
        path = f"steps[{i}]"
        if not isinstance(raw, Mapping):
            errors.append((path, f"must be a mapping with a `method` key (got {raw!r})"))
            continue
        layers = _selectors(raw.get("layers", "*"), f"{path}.layers", errors)
        exclude = () if raw.get("exclude") is None else _selectors(
            raw["exclude"], f"{path}.exclude", errors)
        spec, errs = METHODS.validate(
            {k: v for k, v in raw.items() if k not in ("layers", "exclude")}, path)
        if spec is None:
            errors += errs
            continue
        meth, params = METHODS.get(spec.impl), spec.params
        name = spec.impl
        if steps and STAGES.index(meth.stage) < STAGES.index(steps[-1].method.stage):
            errors.append((f"{path}.method", f"{name!r} ({meth.stage}) must come before "
                                             f"{steps[-1].method.name!r} "
                                             f"({steps[-1].method.stage}); order: "
                                             f"{' -> '.join(STAGES)}"))
        steps.append(Step(i, meth, params, layers, exclude,  # type: ignore[arg-type]
                          "layers" not in raw))
    if errors:
        raise RecipeError(source, errors)
    return Recipe(top.name, top.description, top.finetune, tuple(steps), dict(data), source)


BUNDLED_RECIPES = Path(__file__).resolve().parents[2] / "workloads" / "recipes"


def bundled_recipes() -> list[str]:
    """Names of the recipes bundled in ``workloads/recipes/``."""
    return sorted(p.stem for p in BUNDLED_RECIPES.glob("*.yaml"))


def load_recipe(path: str | Path) -> Recipe:
    """Load a recipe YAML file (a bare name looks in the bundled ``workloads/recipes/``)."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and len(p.parts) == 1:
        bundled = BUNDLED_RECIPES / f"{p}.yaml"
        if not bundled.is_file():
            raise RecipeError(str(p), [("", f"file not found, and no bundled recipe has that "
                                            f"name; bundled: {', '.join(bundled_recipes())}")])
        p = bundled
    return parse_recipe(read_yaml(p, RecipeError), source=str(p))
