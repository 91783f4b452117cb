"""Content hashes: the same inputs give the same hash in every process, on every machine.

A point's hash is the SHA-256 of a canonical JSON text (sorted keys, no whitespace, floats by
``repr``) of its architecture dict, its workload's content digest, its recipe and the code
version, so a rerun recognises finished points whatever the order, the process or the
Python hash seed (nothing here uses ``hash()``).

* **Workload digest**: every field of every layer that the simulator reads (op, dims, GEMM
  view, operand bits / density / structure / scheme / codebook, and the bytes of each mask,
  bit-packed), plus the workload's name and seed. Provenance (``source``, ``path``) is not
  content and is left out.
* **Code version**: the package version plus a digest of every source file that produces
  numbers (all of ``simulator/`` but :data:`PRESENTATION`) and of the bundled energy
  and area tables (``arch_configs/energy/``), so a result store never mixes the numbers of
  two versions of the model.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from simulator.workload.layer import Layer, Operand, Workload

PKG = Path(__file__).resolve().parents[1]
ENERGY_DIR = PKG.parent / "arch_configs" / "energy"
#: Parts of the package that only run or present results: editing them keeps stored results
#: valid (the sweep's scheduling and storage, reports, the CLI).
PRESENTATION = ("reporting", "cli.py", "__main__.py", "sweep/runner.py", "sweep/store.py")


def canonical(value: Any) -> str:
    """Canonical JSON of plain data (dicts, lists, tuples, str, numbers, bool, None)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=True, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot hash a value of type {type(value).__name__}: {value!r}")


def digest(value: Any) -> str:
    """SHA-256 hex digest of :func:`canonical` ``value``."""
    return hashlib.sha256(canonical(value).encode("ascii")).hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a directory: of its files' names and bytes, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(f.relative_to(p).as_posix().encode() if p.is_dir() else b"")
        h.update(f.read_bytes())
    return h.hexdigest()


def _operand(op: Operand) -> dict[str, Any]:
    mask = None
    if op.mask is not None:
        m = np.asarray(op.mask, dtype=bool)
        mask = [list(m.shape), hashlib.sha256(np.packbits(m.ravel()).tobytes()).hexdigest()]
    return {"bits": op.bits, "density": float(op.density), "structure": op.structure,
            "scheme": op.scheme, "codebook_size": op.codebook_size, "mask": mask}


def _layer(layer: Layer) -> dict[str, Any]:
    return {"name": layer.name, "op": layer.op, "kind": layer.kind, "M": layer.M,
            "K": layer.K, "N": layer.N, "count": layer.count,
            "ifmap_elements": layer.ifmap_elements, "filter_elements": layer.filter_elements,
            "ofmap_elements": layer.ofmap_elements, "vector_ops": layer.vector_ops,
            "filter_is_weight": layer.filter_is_weight, "dims": _dims(layer.dims),
            "weight": _operand(layer.weight), "activation": _operand(layer.activation)}


def _dims(dims: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dims.items()}


def workload_digest(workload: Workload) -> str:
    """Content digest of a workload (module docstring)."""
    return digest({"name": workload.name, "seed": workload.seed,
                   "layers": [_layer(la) for la in workload.layers]})


@cache
def code_version() -> str:
    """``<package version>+<12 hex digits>`` of the number-producing sources and tables.

    Cached per process: source files do not change under a running interpreter's feet in any
    way that matters (the modules are already imported)."""
    try:
        version = importlib.metadata.version("approxsim")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        version = "source"
    h = hashlib.sha256()
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG).as_posix()
        if rel in PRESENTATION or rel.split("/")[0] in PRESENTATION:
            continue
        h.update(rel.encode())
        h.update(f.read_bytes())
    if ENERGY_DIR.is_dir():
        for f in sorted(ENERGY_DIR.glob("*.yaml")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return f"{version}+{h.hexdigest()[:12]}"


def point_hash(arch: Mapping[str, Any], workload: str, recipe: Any, code: str) -> str:
    """The content hash of one sweep point (module docstring)."""
    return digest({"arch": arch, "workload": workload, "recipe": recipe, "code": code})
