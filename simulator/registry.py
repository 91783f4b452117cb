"""One generic registry of component implementations, selected by name from YAML.

A YAML component is ``{impl: <name>, ...params}``. Each implementation is a class registered
with a decorator beside its definition; it declares a nested pydantic ``Params`` model
(frozen, ``extra="forbid"``), so unknown or missing parameters are reported with their paths.
Unknown impls and duplicate registrations are errors (the Ramulator 2 pattern).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T")
#: pydantic's location tags for members of a union type (not keys the user wrote).
_UNION_MEMBER = re.compile(r"^(?:[a-z]+(?:-[a-z]+)+|[a-z]+\[.*\]|int|str|float|bool|none)$")


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
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg} (got {err['input']!r})"
        path = ".".join(parts)
        same = [i for i, (p, _) in enumerate(out) if p == path]
        if same:  # one mistake in a union field: one error, every alternative's reason
            i = same[0]
            out[i] = (path, f"{out[i][1]}; or {msg}")
        else:
            out.append((path, msg))
    return out


class Registry(Generic[T]):
    """Implementations of one component kind, by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._impls: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering ``cls`` under ``name`` (duplicates are a bug: raise)."""

        def deco(cls: type[T]) -> type[T]:
            if name in self._impls:
                raise ValueError(f"{self.kind} impl {name!r} is registered twice")
            if not (isinstance(getattr(cls, "Params", None), type)
                    and issubclass(cls.Params, BaseModel)):  # type: ignore[attr-defined]
                raise TypeError(f"{cls.__name__} must declare a pydantic `Params` model")
            self._impls[name] = cls
            return cls

        return deco

    @property
    def names(self) -> list[str]:
        return sorted(self._impls)

    def get(self, name: str) -> type[T]:
        return self._impls[name]

    def validate(self, raw: Any, path: str) -> tuple[ComponentSpec | None, list[tuple[str, str]]]:
        """Validate a raw ``{impl: ..., **params}`` mapping; return the spec or the errors."""
        if not isinstance(raw, Mapping):
            return None, [(path, f"must be a mapping with an `impl` key (got {raw!r})")]
        impl = raw.get("impl")
        if impl is None:
            return None, [(f"{path}.impl", f"required; one of {self.names}")]
        if impl not in self._impls:
            return None, [(f"{path}.impl", f"unknown {self.kind} impl {impl!r}; "
                                           f"known: {', '.join(self.names)}")]
        params_cls: type[BaseModel] = self._impls[impl].Params  # type: ignore[attr-defined]
        try:
            params = params_cls.model_validate({k: v for k, v in raw.items() if k != "impl"})
        except ValidationError as exc:
            return None, pydantic_errors(exc, path)
        return ComponentSpec(impl=str(impl), params=params), []

    def build(self, name: str, spec: ComponentSpec, **context: Any) -> T:
        """Instantiate the registered class for ``spec`` as component ``name``."""
        return self._impls[spec.impl](name, spec.params, **context)  # type: ignore[call-arg]
