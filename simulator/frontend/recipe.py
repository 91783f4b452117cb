"""Compression recipes (``workloads/recipes/*.yaml``): which methods, on which layers, in order.

```yaml
name: prune80-int8
description: Deep-Compression-style pipeline
finetune: {epochs: 2, lr: 0.001}      # optional masked fine-tuning after pruning / low rank
                                      # (qat: true also fine-tunes through quantisation)
steps:                   # in order: lowrank, prune, share, quantise, activation
  - {method: magnitude, sparsity: 0.8, layers: ["conv*", "fc1"], iterations: 2}
  - {method: kmeans, clusters: 16, exclude: [conv1]}
  - {method: fixed_point, bits: 8}
  - {method: act_fixed_point, bits: 8}
```
``layers`` (default ``"*"``: every conv / linear layer) and ``exclude`` are shell-style
patterns over layer names; each must match at least one layer. Parameters are validated
against the method's ``Params`` model: every error at once, each with its path
(``steps[1].bits``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import ConfigError
from simulator.files import read_yaml
from simulator.frontend.methods import METHODS, STAGES, Method, Params
from simulator.registry import pydantic_errors


class RecipeError(ConfigError):
    """A recipe file is wrong (every problem at once, each with its path)."""


class FineTune(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: Annotated[int, Field(ge=0, strict=True)] = 0
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    batch_size: Annotated[int, Field(gt=0, strict=True)] = 64
    #: also fine-tune through weight quantisation (straight-through estimator)
    qat: bool = False


class _RecipeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    description: str = ""
    finetune: FineTune = FineTune()
    steps: Annotated[list[Any], Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class Step:
    """One validated recipe step."""

    index: int
    method: Method
    params: Params
    layers: tuple[str, ...]
    exclude: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"steps[{self.index}]"

    def targets(self, names: Sequence[str], source: str,
                aliases: Mapping[str, str] | None = None) -> list[str]:
        """The layers of ``names`` this step applies to: matched by ``layers`` and not by
        ``exclude`` (a name matches through itself or its alias, e.g. the original layer a
        low-rank split came from). A pattern that matches no layer is a :class:`RecipeError`
        naming the step's field and listing the layers (``source``: the recipe file)."""
        alias = aliases or {}

        def hit(name: str, pats: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(alias.get(name, name), p)
                       for p in pats)

        errors = [(f"{self.path}.{field}", f"layer {pat!r} not found; the model's layers are "
                                           f"{', '.join(names)}")
                  for field, pats in (("layers", self.layers), ("exclude", self.exclude))
                  for pat in pats if not any(hit(n, (pat,)) for n in names)]
        if errors:
            raise RecipeError(source, errors)
        return [n for n in names if hit(n, self.layers) and not hit(n, self.exclude)]


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated recipe; ``raw`` is the mapping it came from (embedded in traces)."""

    name: str
    description: str
    finetune: FineTune
    steps: tuple[Step, ...]
    raw: Mapping[str, Any]
    source: str = "<dict>"


def _patterns(value: Any, path: str, errors: list[tuple[str, str]]) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    errors.append((path, f"must be a layer-name pattern or a non-empty list of them "
                         f"(got {value!r})"))
    return ()


def parse_recipe(data: Any, source: str = "<dict>") -> Recipe:
    """Validate a parsed recipe; raise one :class:`RecipeError` listing every problem."""
    if not isinstance(data, Mapping):
        raise RecipeError(source, [("", f"must be a mapping with `name` and `steps` "
                                        f"(got {type(data).__name__})")])
    try:
        top = _RecipeFile.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(source, pydantic_errors(exc)) from None
    errors: list[tuple[str, str]] = []
    steps: list[Step] = []
    for i, raw in enumerate(top.steps):
        path = f"steps[{i}]"
        if not isinstance(raw, Mapping):
            errors.append((path, f"must be a mapping with a `method` key (got {raw!r})"))
            continue
        layers = _patterns(raw.get("layers", "*"), f"{path}.layers", errors)
        exclude = () if raw.get("exclude") is None else _patterns(
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
        steps.append(Step(i, meth, params, layers, exclude))  # type: ignore[arg-type]
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
