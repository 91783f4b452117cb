"""One generic registry of implementations, selected by name from YAML.

A YAML component is ``{impl: <name>, ...params}``. Each implementation is registered beside
its definition (a class decorator, or :meth:`Registry.add` for other objects such as the
frontend's compression methods); it declares a pydantic ``Params`` model (frozen,
``extra="forbid"``), so unknown or missing parameters are reported with their paths.
Unknown names and duplicate registrations are errors (the Ramulator 2 pattern). The key that
names the implementation is ``impl`` by default (``method`` for recipe steps).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)
#: pydantic's location tags for members of a union type (not keys the user wrote).
_UNION_MEMBER = re.compile(r"^(?:[a-z]+(?:-[a-z]+)+|[a-z]+\[.*\]|int|str|float|bool|none)$")


class ParamsModel(BaseModel):
    """Base of every component's ``Params``: frozen, strict (``"32"`` is not a number),
    unknown keys rejected. ``implausible`` lists values that are legal but unlikely
    (``(field, message)`` pairs): the loader reports them as warnings, never silently.
    Like every model of the package, its validator is built once, on first use
    (``defer_build``): importing the package builds none, a run builds those it uses."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, strict=True)

    def implausible(self) -> list[tuple[str, str]]:
        return []


def finite_at_most(limit: float) -> AfterValidator:
    """A validator: the value is ``inf`` (unlimited) or at most ``limit``."""

    def check(v: float) -> float:
        if math.isfinite(v) and v > limit:
            raise ValueError(f"must be at most {limit:g} (or .inf for unlimited)")
        return v

    return AfterValidator(check)


def _numeric_text(value: Any) -> bool:
    """True for a string that Python would read as a number (``"32"``, ``"1e9"``)."""
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (a hostile input can be enormous)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-2:]}"


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """A resolved ``{impl: ..., **params}`` mapping: the impl name and its validated params."""

    impl: str
    params: BaseModel


def pydantic_errors(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """Turn a pydantic ``ValidationError`` into ``(dotted_path, message)`` pairs."""
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        parts = [prefix] if prefix else []
        for item in err["loc"]:
            if isinstance(item, int):
                parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
            elif not _UNION_MEMBER.match(str(item)):
                parts.append(str(item))
            # else: the name of a union member (``constrained-int``, ``tuple[...]``): the
            # user wrote the field, not the member, so the path stops at the field
        msg = err["msg"]
        if err["type"] == "value_error":  # our own validators' messages, without the prefix
            msg = msg.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg} (got {short_repr(err['input'])})"
            if err["type"] in ("float_type", "int_type") and _numeric_text(err["input"]):
                msg += (f"; write {err['input'].strip()} without quotes (YAML 1.1 also reads "
                        f"an exponent without a dot, 1e9, as text: write 1.0e9)")
        path = ".".join(parts)
        same = [i for i, (p, _) in enumerate(out) if p == path]
        if same:  # one mistake in a union field: one error, every alternative's reason
            i = same[0]
            out[i] = (path, f"{out[i][1]}; or {msg}")
        else:
            out.append((path, msg))
    return out


def validate_file(model: type[ModelT], data: Any, source: str,
                  error: Callable[[str, list[tuple[str, str]]], Exception], expected: str,
                  relabel: Callable[[list[tuple[str, str]]], list[tuple[str, str]]] | None = None,
                  ) -> ModelT:
    """Validate the top level of a parsed file (``data``) into ``model``; on any problem raise
    ``error(source, [(path, message), ...])``. ``expected`` says what the mapping holds;
    ``relabel`` may rewrite the paths (e.g. add layer names)."""
    if not isinstance(data, Mapping):
        raise error(source, [("", f"must be a mapping with {expected} "
                                  f"(got {type(data).__name__})")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errs = pydantic_errors(exc)
        raise error(source, relabel(errs) if relabel else errs) from None


class Registry(Generic[T]):
    """Implementations of one kind, by name (each exposing a pydantic ``Params`` model)."""

    def __init__(self, kind: str, key: str = "impl") -> None:
        self.kind = kind
        self.key = key
        self._impls: dict[str, T] = {}

    def add(self, name: str, impl: T) -> T:
        """Register ``impl`` (anything with a pydantic ``Params``) under ``name``."""
        if name in self._impls:
            raise ValueError(f"{self.kind} impl {name!r} is registered twice")
        params = getattr(impl, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"{self.kind} {name!r} must declare a pydantic `Params` model")
        self._impls[name] = impl
        return impl

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator registering ``cls`` under ``name`` (duplicates are a bug: raise)."""
        return lambda cls: self.add(name, cls)

    @property
    def names(self) -> list[str]:
        return sorted(self._impls)

    def __contains__(self, name: object) -> bool:
        return name in self._impls

    def get(self, name: str) -> T:
        return self._impls[name]

    def validate(self, raw: Any, path: str) -> tuple[ComponentSpec | None, list[tuple[str, str]]]:
        """Validate a raw ``{impl: ..., **params}`` mapping; return the spec or the errors."""
        key = self.key
        if not isinstance(raw, Mapping):
            return None, [(path, f"must be a mapping with an `{key}` key (got {short_repr(raw)})")]
        impl = raw.get(key)
        if impl is None:
            return None, [(f"{path}.{key}", f"required; one of {self.names}")]
        if not isinstance(impl, str) or impl not in self._impls:
            what = f"{self.kind} impl" if key == "impl" else self.kind
            return None, [(f"{path}.{key}", f"unknown {what} {short_repr(impl)}; "
                                            f"known: {', '.join(self.names)}")]
        params_cls: type[BaseModel] = self._impls[impl].Params  # type: ignore[attr-defined]
        try:
            params = params_cls.model_validate({k: v for k, v in raw.items() if k != key})
        except ValidationError as exc:
            return None, pydantic_errors(exc, path)
        return ComponentSpec(impl=impl, params=params), []

    def build(self, name: str, spec: ComponentSpec, **context: Any) -> Any:
        """Instantiate the registered class for ``spec`` as component ``name``."""
        return self._impls[spec.impl](name, spec.params, **context)  # type: ignore[operator]
