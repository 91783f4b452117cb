"""Expanding a sweep into points: sampling over the axes, times architectures and workloads.

* ``grid``: every combination (``itertools.product`` order: the last axis varies fastest).
* ``zip``: the i-th value of every axis together (axes of equal length).
* ``random: {n, seed}``: ``n`` distinct combinations of the grid, drawn with Python's
  ``random.Random(seed).sample`` over the grid's index range (never materialising the grid),
  listed in grid order; the same seed gives the same points everywhere.

Points are ordered architecture (base file) -> axis combination -> workload, and numbered in
that order (``point_index``). Two points with the same content (architecture dict and
workload digest) are an error: a repeated axis value or workload would be run once and
shown under one label only.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.sweep.hashing import code_version, point_hash
from simulator.sweep.sources import Sources
from simulator.sweep.spec import Axis, SweepError, SweepSpec, WorkloadSpec, apply_overrides


@dataclass(frozen=True, slots=True)
class Point:
    """One (architecture, workload) pair of a sweep."""

    index: int
    hash: str
    axes: Mapping[str, Any]
    arch: Mapping[str, Any]
    workload: str

    def meta(self, sweep: str, spec: WorkloadSpec) -> dict[str, Any]:
        """The input columns of this point's result rows."""
        return {"point_hash": self.hash, "point_index": self.index, "sweep": sweep,
                "workload": self.workload, "network": spec.network, "model": spec.model,
                "recipe": None if spec.recipe is None else spec.label.split("/", 1)[1],
                **self.axes}


def combinations(spec: SweepSpec) -> Iterator[tuple[int, ...]]:
    """Indices into each axis's values, one tuple per sampled combination (module doc)."""
    sizes = [len(a.labels) for a in spec.axes]
    if spec.sampling == "zip":
        yield from ((i,) * len(sizes) for i in range(sizes[0] if sizes else 1))
    elif spec.sampling == "random":
        total = math.prod(sizes)
        for flat in sorted(random.Random(spec.random_seed).sample(range(total), spec.random_n)):
            idx = []
            for size in reversed(sizes):
                flat, i = divmod(flat, size)
                idx.append(i)
            yield tuple(reversed(idx))
    else:
        yield from itertools.product(*(range(s) for s in sizes))


def _combo(axes: Sequence[Axis], idx: tuple[int, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    labels: dict[str, Any] = {}
    over: dict[str, Any] = {}
    for axis, i in zip(axes, idx, strict=True):
        labels[axis.name] = axis.labels[i]
        over.update(axis.overrides[i])
    return labels, over


def expand(spec: SweepSpec, sources: Sources, code: str | None = None) -> list[Point]:
    """Every point of ``spec`` with its content hash (``code``: the code version)."""
    code = code or code_version()
    wl = [(w, sources.digest(w), sources.recipe_data(w)) for w in spec.workloads]
    points: list[Point] = []
    seen: dict[str, int] = {}
    many = len(spec.archs) > 1
    for label, base in spec.archs:
        for idx in combinations(spec):
            axes, over = _combo(spec.axes, idx)
            if many:
                axes = {"arch": label, **axes}
            try:
                arch = apply_overrides(base, over)
            except ValueError as exc:  # checked per value; a combination can still clash
                raise SweepError(spec.source, [("axes", f"{axes}: {exc}")]) from None
            for w, dig, recipe in wl:
                h = point_hash(arch, dig, recipe, code)
                if h in seen:
                    raise SweepError(spec.source, [("axes", (
                        f"points {seen[h]} and {len(points)} are the same (architecture "
                        f"{axes}, workload {w.label!r}): remove the duplicate value or "
                        f"workload"))])
                seen[h] = len(points)
                points.append(Point(len(points), h, axes, arch, w.label))
    return points
