"""Reading compressed workload traces (format in :mod:`simulator.workload.trace`), strictly.

A wrong version, a missing or unknown field, a mask of the wrong shape, a density that
disagrees with its mask, or a truncated / corrupt file raise one
:class:`~simulator.errors.TraceError` naming the file, the layer and the field. Layers are
rebuilt through the same lowering as network specs (:func:`~simulator.workload.spec.
parse_network`), so a trace and a spec with the same dims give identical GEMMs.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import TraceError, WorkloadError
from simulator.files import yaml_problems
from simulator.registry import pydantic_errors
from simulator.workload.spec import label_layer_paths, parse_network
from simulator.workload.trace import (
    FORMAT,
    GEMM_OPS,
    MANIFEST,
    TENSORS,
    Accuracy,
    Trace,
    operand_shapes,
)

#: Density may differ from its mask's nonzero fraction by rounding only.
_DENSITY_TOL = 1e-9
#: Largest uncompressed member of a trace archive (and of its npz): a manifest of a
#: 10,000-layer model is a few MB; packed masks of a 7B-parameter model are ~0.9 GB.
MAX_MEMBER_BYTES = 4 << 30
#: Largest expansion ratio of a compressed member (bit-packed masks compress ~10x at most;
#: a zip bomb reaches 1000x and more).
MAX_ZIP_RATIO = 200


def _check_members(zf: zipfile.ZipFile, source: str) -> None:
    """Reject archives with members that would escape a directory they were extracted to
    (absolute paths, ``..``: "zip slip") or that expand beyond :data:`MAX_MEMBER_BYTES` or
    :data:`MAX_ZIP_RATIO` (zip bombs), before anything is decompressed."""
    problems = []
    for info in zf.infolist():
        name = info.filename
        parts = Path(name).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            problems.append((name, "member path escapes the trace directory (zip slip): "
                                   "refused"))
        elif info.file_size > MAX_MEMBER_BYTES:
            problems.append((name, f"expands to {info.file_size:,} bytes, over the "
                                   f"{MAX_MEMBER_BYTES:,}-byte limit: refused"))
        elif info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO:
            problems.append((name, f"compressed {info.file_size / info.compress_size:,.0f}:1, "
                                   f"over {MAX_ZIP_RATIO}:1 (a zip bomb?): refused"))
    if problems:
        raise _fail(source, problems)


class _Strict(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


_Bits = Annotated[int, Field(gt=0, le=64, strict=True)]
_Density = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
_Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _WeightEntry(_Strict):
    scheme: Literal["int", "fp", "pow2", "binary", "ternary", "bfp", "lutnet"]
    bits: _Bits | None
    density: _Density
    structure: str
    codebook_size: Annotated[int, Field(ge=2, strict=True)] | None
    scale_bits: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0
    dequantize: bool = False
    block: Annotated[int, Field(ge=2, strict=True)] | None = None
    filter_bits: list[_Bits] | None = None
    mask: str | None
    shape: list[int] | None


class _ActEntry(_Strict):
    bits: _Bits | None
    density: _Density
    calibration_density: _Density | None
    mask: str | None
    shape: list[int] | None
    mask_set: str | None = None
    mask_set_shape: list[int] | None = None


class _LayerEntry(_Strict):
    name: str = Field(min_length=1)
    op: str
    dims: dict[str, Any]
    weight: _WeightEntry | None
    activation: _ActEntry
    output_bits: _Bits | None
    approx: dict[str, Any] | None = None


class _AccuracyEntry(_Strict):
    baseline: _Fraction | None
    compressed: _Fraction | None
    dataset: str
    samples: int = Field(ge=0, strict=True)
    agreement: _Fraction | None = None
    output_cosine: Annotated[float, Field(ge=-1.0, le=1.0)] | None = None
    perplexity: list[float] | None = None
    warning: str | None = None


class _Manifest(_Strict):
    format: str
    model: str = Field(min_length=1)
    source: Literal["torch", "onnx", "spec"]
    batch_size: int = Field(gt=0, strict=True)
    recipe: dict[str, Any] | None
    accuracy: _AccuracyEntry | None
    early_exit: dict[str, Any] | None = None
    layers: list[_LayerEntry] = Field(min_length=1)


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
            _check_members(zf, str(p))
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
    raw, problems = yaml_problems(text)
    if problems:
        raise _fail(source, problems)
    if not isinstance(raw, Mapping):
        raise _fail(source, [("", f"must be a mapping (got {type(raw).__name__})")])
    if raw.get("format") != FORMAT:
        raise _fail(source, [("format", f"unsupported trace format {raw.get('format')!r}; "
                                        f"this reader understands {FORMAT!r}")])
    try:
        return _Manifest.model_validate(raw)
    except ValidationError as exc:
        raise _fail(source, label_layer_paths(pydantic_errors(exc), raw)) from None


def _load_npz(data: bytes | None, source: str, manifest: _Manifest) -> dict[str, np.ndarray]:
    keys = [e.mask for lay in manifest.layers for e in (lay.weight, lay.activation)
            if e is not None and e.mask is not None]
    keys += [lay.activation.mask_set for lay in manifest.layers
             if lay.activation.mask_set is not None]
    if not keys:
        return {}
    if data is None:
        raise _fail(source, [("", f"file not found, but the manifest names masks ({keys[0]!r})")])
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _check_members(zf, source)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except TraceError:
        raise
    except Exception as exc:  # numpy raises many types (BadZipFile, ValueError, EOFError, ...)
        raise _fail(source, [("", f"corrupt or truncated npz: {type(exc).__name__}: {exc}")]
                    ) from None


def _unpack(arrays: Mapping[str, np.ndarray], key: str, shape: list[int] | None,
            expected: tuple[int, ...], density: float | None, where: str,
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
    if density is not None and abs(actual - density) > _DENSITY_TOL + 0.5 / max(n, 1):
        errors.append((f"{where}.density", f"{density} disagrees with its mask "
                                           f"({int(mask.sum())}/{n} = {actual:.6g} nonzero)"))
    return mask


def _build(man: _Manifest, arrays: Mapping[str, np.ndarray], man_name: str, npz_name: str,
           path: str) -> Trace:
    spec_layers = []
    for lay in man.layers:
        spec: dict[str, Any] = {"name": lay.name, "op": lay.op, **lay.dims}
        if lay.op in GEMM_OPS and lay.weight is not None:
            w = lay.weight
            # densities and bits are attached after lowering (they may be 0 / overridden)
            spec.update(weight_scheme=w.scheme, weight_structure=w.structure,
                        weight_scale_bits=w.scale_bits, weight_dequantize=w.dequantize)
            if w.codebook_size is not None:
                spec["codebook_size"] = w.codebook_size
            if w.block is not None:
                spec["weight_block"] = w.block
            if w.filter_bits is not None:
                spec["weight_filter_bits"] = w.filter_bits
        if lay.approx is not None:
            spec["approx"] = lay.approx
        spec_layers.append(spec)
    errors: list[tuple[str, str]] = []
    for i, lay in enumerate(man.layers):
        where = f"layers[{i}] ({lay.name})"
        if lay.op in GEMM_OPS and lay.weight is None:
            errors.append((f"{where}.weight", f"required for a {lay.op} layer"))
        if lay.op not in GEMM_OPS and lay.weight is not None:
            errors.append((f"{where}.weight", f"must be null for a {lay.op} layer"))
    if errors:
        raise _fail(man_name, errors)
    try:
        net: dict[str, Any] = {"name": man.model, "source": f"trace ({man.source})",
                               "batch_size": man.batch_size, "layers": spec_layers}
        if man.early_exit is not None:
            net["early_exit"] = man.early_exit
        wl = parse_network(net, source=path)
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
        a_set = lay.activation
        if a_set.mask_set is not None:
            shape = a_set.mask_set_shape
            n = shape[0] if shape else 0
            masks = _unpack(arrays, a_set.mask_set, shape, (n, *a_shape), None,
                            f"{where}.activation.mask_set", errors)
            if masks is not None and n < 1:
                errors.append((f"{where}.activation.mask_set_shape", "needs at least one "
                                                                    "sample"))
            act = replace(act, mask_set=masks if masks is not None and n else None)
        layers.append(replace(layer, weight=weight, activation=act))
    if errors:
        raise _fail(f"{man_name} / {npz_name}", errors)
    acc = man.accuracy
    return Trace(
        workload=replace(wl, layers=tuple(layers)), source=man.source, recipe=man.recipe,
        accuracy=None if acc is None else Accuracy(
            acc.baseline, acc.compressed, acc.dataset, acc.samples, acc.agreement,
            acc.output_cosine, None if acc.perplexity is None else (
                float(acc.perplexity[0]), float(acc.perplexity[-1])), acc.warning),
        output_bits={lay.name: lay.output_bits for lay in man.layers},
        batch_size=man.batch_size,
        calibration_density={lay.name: lay.activation.calibration_density
                             for lay in man.layers})
