"""Compressed workload traces, format ``approxsim-trace/1`` (DESIGN.md section 5).

A trace is a directory (or the same two files in a ``.zip``):

* ``manifest.yaml``: ``format``, ``model``, ``source`` (``torch``, ``onnx`` or ``spec``),
  ``batch_size``, the ``recipe`` that produced it (embedded verbatim), the measured ``accuracy``
  (``baseline``, ``compressed``, ``dataset``, ``samples``) and one entry per layer: ``name``,
  ``op``, ``dims`` (the network-spec fields of that op, see :mod:`simulator.workload`),
  ``weight`` (``scheme``, ``bits``, ``density``, ``structure``, ``codebook_size``, ``mask``,
  ``shape``; ``null`` for vector ops), ``activation`` (``bits``, ``density`` -- of its mask
  when there is one --, ``calibration_density`` over the whole calibration batch, ``mask``,
  ``shape``) and ``output_bits``. Every field must be present (``null`` where unknown).
* ``tensors.npz``: the nonzero masks named by the ``mask`` keys, each ``np.packbits`` of the
  C-order flattened boolean mask; its shape is the entry's ``shape``. Layouts are those of
  :class:`~simulator.workload.Operand`: weights in their tensor layout, activations as one
  example of the layer input (``(C, H, W)``, ``(tokens, features)``, ``(batch, M, K)``).

Reading is strict: a wrong version, a missing or unknown field, a mask of the wrong shape, a
density that disagrees with its mask, or a truncated / corrupt file raise one
:class:`~simulator.errors.TraceError` naming the file, the layer and the field. Layers are rebuilt
through the same lowering as network specs (:func:`simulator.network_spec.parse_network`), so a
trace and a spec with the same dims give identical GEMMs. Writing is atomic: the files are
written under a temporary name beside the target and renamed into place.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import TraceError, WorkloadError
from simulator.network_spec import parse_network
from simulator.registry import pydantic_errors
from simulator.workload import Layer, Operand, Workload
from simulator.yaml_loader import _StrictLoader

FORMAT = "approxsim-trace/1"
MANIFEST = "manifest.yaml"
TENSORS = "tensors.npz"
#: Density may differ from its mask's nonzero fraction by rounding only.
_DENSITY_TOL = 1e-9
_GEMM_OPS = ("conv2d", "linear", "matmul")


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Top-1 accuracy (fractions in [0, 1]) before and after compression, on ``dataset``."""

    baseline: float | None
    compressed: float | None
    dataset: str
    samples: int


@dataclass(frozen=True, slots=True)
class Trace:
    """A compressed workload and its provenance: what :func:`write_trace` stores.

    ``output_bits`` maps layer names to the bits of their stored outputs (absent: unknown);
    ``calibration_density`` to the input-activation density over the whole calibration batch
    (the operand's own ``density`` is that of its mask, one representative example).
    """

    workload: Workload
    source: Literal["torch", "onnx", "spec"] = "spec"
    recipe: Mapping[str, Any] | None = None
    accuracy: Accuracy | None = None
    output_bits: Mapping[str, int | None] = field(default_factory=dict)
    batch_size: int = 1
    calibration_density: Mapping[str, float | None] = field(default_factory=dict)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_Bits = Annotated[int, Field(gt=0, le=64, strict=True)]
_Density = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
_Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _WeightEntry(_Strict):
    scheme: Literal["int", "fp", "pow2", "binary", "ternary", "bfp"]
    bits: _Bits | None
    density: _Density
    structure: str
    codebook_size: Annotated[int, Field(ge=2, strict=True)] | None
    mask: str | None
    shape: list[int] | None


class _ActEntry(_Strict):
    bits: _Bits | None
    density: _Density
    calibration_density: _Density | None
    mask: str | None
    shape: list[int] | None


class _LayerEntry(_Strict):
    name: str = Field(min_length=1)
    op: str
    dims: dict[str, Any]
    weight: _WeightEntry | None
    activation: _ActEntry
    output_bits: _Bits | None


class _AccuracyEntry(_Strict):
    baseline: _Fraction | None
    compressed: _Fraction | None
    dataset: str
    samples: int = Field(ge=0, strict=True)


class _Manifest(_Strict):
    format: str
    model: str = Field(min_length=1)
    source: Literal["torch", "onnx", "spec"]
    batch_size: int = Field(gt=0, strict=True)
    recipe: dict[str, Any] | None
    accuracy: _AccuracyEntry | None
    layers: list[_LayerEntry] = Field(min_length=1)


def operand_shapes(layer: Layer) -> tuple[tuple[int, ...] | None, tuple[int, ...]]:
    """Mask shapes of (weight, activation) for one example, in the :class:`Operand` layouts."""
    d = layer.dims
    if layer.op == "conv2d":
        kh, kw = _pair(d["kernel"])
        g = int(d.get("groups", 1))
        return ((d["out_channels"], d["in_channels"] // g, kh, kw),
                (d["in_channels"], d["in_h"], d["in_w"]))
    if layer.op == "linear":
        t = int(d.get("tokens", 1))
        return (d["out_features"], d["in_features"]), (t, d["in_features"])
    if layer.op == "matmul":
        b = int(d.get("batch", 1))
        return (b, d["K"], d["N"]), (b, d["M"], d["K"])
    if "shape" in d:
        return None, tuple(d["shape"])
    return None, (d["channels"], d["in_h"], d["in_w"])


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


# ----------------------------------------------------------------------------- writing


def _safe_key(name: str, kind: str) -> str:
    return f"{name}/{kind}"


def _plain(value: Any) -> Any:
    """Dims as plain YAML (tuples -> lists)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _mask_entry(op: Operand, key: str, expected: tuple[int, ...], layer: str,
                tensors: dict[str, np.ndarray]) -> tuple[str | None, list[int] | None]:
    if op.mask is None:
        return None, None
    mask = np.asarray(op.mask, dtype=bool)
    if mask.shape != tuple(expected):
        raise TraceError(f"layer {layer!r}: {key} mask has shape {list(mask.shape)}, "
                         f"expected {list(expected)}")
    tensors[key] = np.packbits(mask.ravel())
    return key, [int(s) for s in mask.shape]


def manifest_dict(trace: Trace) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest mapping and the packed mask arrays of ``trace`` (what is written)."""
    tensors: dict[str, np.ndarray] = {}
    layers = []
    for layer in trace.workload.layers:
        w_shape, a_shape = operand_shapes(layer)
        entry: dict[str, Any] = {"name": layer.name, "op": layer.op,
                                 "dims": {k: _plain(v) for k, v in layer.dims.items()}}
        if w_shape is None:
            entry["weight"] = None
        else:
            w = layer.weight
            key, shape = _mask_entry(w, _safe_key(layer.name, "weight"), w_shape, layer.name,
                                     tensors)
            entry["weight"] = {"scheme": w.scheme, "bits": w.bits, "density": float(w.density),
                               "structure": w.structure, "codebook_size": w.codebook_size,
                               "mask": key, "shape": shape}
        a = layer.activation
        key, shape = _mask_entry(a, _safe_key(layer.name, "activation"), a_shape, layer.name,
                                 tensors)
        cal = trace.calibration_density.get(layer.name)
        entry["activation"] = {"bits": a.bits, "density": float(a.density),
                               "calibration_density": None if cal is None else float(cal),
                               "mask": key, "shape": shape}
        entry["output_bits"] = trace.output_bits.get(layer.name)
        layers.append(entry)
    acc = trace.accuracy
    manifest = {
        "format": FORMAT, "model": trace.workload.name, "source": trace.source,
        "batch_size": trace.batch_size,
        "recipe": dict(trace.recipe) if trace.recipe is not None else None,
        "accuracy": None if acc is None else {
            "baseline": acc.baseline, "compressed": acc.compressed, "dataset": acc.dataset,
            "samples": acc.samples},
        "layers": layers,
    }
    return manifest, tensors


def write_trace(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` to the directory ``path`` (or a ``.zip``), atomically; return the path.

    An existing trace at ``path`` is replaced only once the new one is complete; on any
    error nothing is left behind.
    """
    target = Path(path)
    manifest, tensors = manifest_dict(trace)
    text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=100)
    buf = io.BytesIO()
    np.savez_compressed(buf, **tensors)  # type: ignore[arg-type]
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".zip":
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
                zf.writestr(MANIFEST, text)
                zf.writestr(TENSORS, buf.getvalue())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
    tmp_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        (tmp_dir / MANIFEST).write_text(text, encoding="utf-8")
        (tmp_dir / TENSORS).write_bytes(buf.getvalue())
        if target.exists():
            if not (target / MANIFEST).is_file():
                raise TraceError(f"{target}: exists and is not a trace directory; not replaced")
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp_dir.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp_dir.rename(target)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return target


# ----------------------------------------------------------------------------- reading


def _fail(source: str, errors: list[tuple[str, str]]) -> TraceError:
    lines = [f"{source}: {len(errors)} error(s) in trace"]
    lines += [f"  {path or '<root>'}: {msg}" for path, msg in errors]
    return TraceError("\n".join(lines))


def _read_parts(p: Path) -> tuple[str, str, str, bytes | None]:
    """(manifest name, manifest text, tensors name, tensors bytes or None) of a trace."""
    if p.is_dir():
        man, ten = p / MANIFEST, p / TENSORS
        if not man.is_file():
            raise _fail(str(man), [("", "file not found (not a trace directory)")])
        try:
            text = man.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(str(man), [("", f"not UTF-8 text: {exc}")]) from None
        return str(man), text, str(ten), ten.read_bytes() if ten.is_file() else None
    if not p.is_file():
        raise _fail(str(p), [("", "file not found")])
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
            if MANIFEST not in names:
                raise _fail(f"{p}!{MANIFEST}", [("", "missing from the archive")])
            text = zf.read(MANIFEST).decode("utf-8")
            data = zf.read(TENSORS) if TENSORS in names else None
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(str(p), [("", f"corrupt or truncated zip: {exc}")]) from None
    return f"{p}!{MANIFEST}", text, f"{p}!{TENSORS}", data


def read_trace(path: str | Path) -> Trace:
    """Read and check a trace directory or ``.zip`` (see the module docstring)."""
    p = Path(path)
    man_name, text, tensors_name, tensors_bytes = _read_parts(p)
    manifest = _parse_manifest(text, man_name)
    arrays = _load_npz(tensors_bytes, tensors_name, manifest)
    return _build(manifest, arrays, man_name, tensors_name, str(p))


def _parse_manifest(text: str, source: str) -> _Manifest:
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _fail(source, [(where, f"{exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise _fail(source, [("", f"not valid YAML: {exc}")]) from None
    if not isinstance(raw, Mapping):
        raise _fail(source, [("", f"must be a mapping (got {type(raw).__name__})")])
    if raw.get("format") != FORMAT:
        raise _fail(source, [("format", f"unsupported trace format {raw.get('format')!r}; "
                                        f"this reader understands {FORMAT!r}")])
    try:
        return _Manifest.model_validate(raw)
    except ValidationError as exc:
        raise _fail(source, _name_layers(pydantic_errors(exc), raw)) from None


def _name_layers(errors: list[tuple[str, str]], raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``layers[2].weight.bits`` -> ``layers[2] (conv2).weight.bits``."""
    layers = raw.get("layers") if isinstance(raw.get("layers"), list) else []
    out = []
    for path, msg in errors:
        head, _, rest = path.partition(".")
        if head.startswith("layers[") and layers:
            idx = int(head[7:-1])
            if idx < len(layers) and isinstance(layers[idx], Mapping) and "name" in layers[idx]:
                head = f"{head} ({layers[idx]['name']})"
        out.append((f"{head}.{rest}" if rest else head, msg))
    return out


def _load_npz(data: bytes | None, source: str, manifest: _Manifest) -> dict[str, np.ndarray]:
    keys = [e.mask for lay in manifest.layers for e in (lay.weight, lay.activation)
            if e is not None and e.mask is not None]
    if not keys:
        return {}
    if data is None:
        raise _fail(source, [("", f"file not found, but the manifest names masks ({keys[0]!r})")])
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:  # numpy raises many types (BadZipFile, ValueError, EOFError, ...)
        raise _fail(source, [("", f"corrupt or truncated npz: {type(exc).__name__}: {exc}")]
                    ) from None


def _unpack(arrays: Mapping[str, np.ndarray], key: str, shape: list[int] | None,
            expected: tuple[int, ...], density: float, where: str,
            errors: list[tuple[str, str]]) -> np.ndarray | None:
    if shape is None:
        errors.append((f"{where}.shape", f"required when a mask is given (expected "
                                         f"{list(expected)})"))
        return None
    if tuple(shape) != tuple(expected):
        errors.append((f"{where}.shape", f"mask shape {shape} does not match the layer dims "
                                         f"(expected {list(expected)})"))
        return None
    if key not in arrays:
        errors.append((f"{where}.mask", f"key {key!r} not found in {TENSORS}"))
        return None
    packed = arrays[key]
    n = math.prod(shape)
    if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != (n + 7) // 8:
        errors.append((f"{where}.mask", f"{TENSORS}[{key!r}] is not a packed mask of {n} bits "
                                        f"(dtype {packed.dtype}, {packed.size} bytes)"))
        return None
    mask = np.unpackbits(packed, count=n).astype(bool).reshape(shape)
    actual = float(mask.mean()) if n else 1.0
    if abs(actual - density) > _DENSITY_TOL + 0.5 / max(n, 1):
        errors.append((f"{where}.density", f"{density} disagrees with its mask "
                                           f"({int(mask.sum())}/{n} = {actual:.6g} nonzero)"))
    return mask


def _build(man: _Manifest, arrays: Mapping[str, np.ndarray], man_name: str, npz_name: str,
           path: str) -> Trace:
    spec_layers = []
    for lay in man.layers:
        spec: dict[str, Any] = {"name": lay.name, "op": lay.op, **lay.dims}
        if lay.op in _GEMM_OPS and lay.weight is not None:
            w = lay.weight
            # densities and bits are attached after lowering (they may be 0 / overridden)
            spec.update(weight_scheme=w.scheme, weight_structure=w.structure)
            if w.codebook_size is not None:
                spec["codebook_size"] = w.codebook_size
        spec_layers.append(spec)
    errors: list[tuple[str, str]] = []
    for i, lay in enumerate(man.layers):
        where = f"layers[{i}] ({lay.name})"
        if lay.op in _GEMM_OPS and lay.weight is None:
            errors.append((f"{where}.weight", f"required for a {lay.op} layer"))
        if lay.op not in _GEMM_OPS and lay.weight is not None:
            errors.append((f"{where}.weight", f"must be null for a {lay.op} layer"))
    if errors:
        raise _fail(man_name, errors)
    try:
        wl = parse_network({"name": man.model, "source": f"trace ({man.source})",
                            "batch_size": man.batch_size, "layers": spec_layers}, source=path)
    except WorkloadError as exc:
        raise _fail(man_name, [(f"{p} (dims)" if p else p, m) for p, m in exc.errors]
                    ) from None
    layers = []
    for i, (lay, layer) in enumerate(zip(man.layers, wl.layers, strict=True)):
        where = f"layers[{i}] ({lay.name})"
        w_shape, a_shape = operand_shapes(layer)
        weight, act = layer.weight, layer.activation
        if lay.weight is not None and w_shape is not None:
            weight = replace(weight, bits=lay.weight.bits if lay.weight.codebook_size is None
                             else weight.bits, density=lay.weight.density)
            if lay.weight.mask is not None:
                weight = replace(weight, mask=_unpack(arrays, lay.weight.mask, lay.weight.shape,
                                                      w_shape, lay.weight.density,
                                                      f"{where}.weight", errors))
        act = replace(act, bits=lay.activation.bits, density=lay.activation.density)
        if lay.activation.mask is not None:
            act = replace(act, mask=_unpack(arrays, lay.activation.mask, lay.activation.shape,
                                            a_shape, lay.activation.density,
                                            f"{where}.activation", errors))
        layers.append(replace(layer, weight=weight, activation=act))
    if errors:
        raise _fail(f"{man_name} / {npz_name}", errors)
    acc = man.accuracy
    return Trace(
        workload=replace(wl, layers=tuple(layers)), source=man.source, recipe=man.recipe,
        accuracy=None if acc is None else Accuracy(acc.baseline, acc.compressed, acc.dataset,
                                                   acc.samples),
        output_bits={lay.name: lay.output_bits for lay in man.layers},
        batch_size=man.batch_size,
        calibration_density={lay.name: lay.activation.calibration_density
                             for lay in man.layers})
