"""Compressed workload traces, format ``approxsim-trace/1`` (DESIGN.md section 5).

A trace is a directory (or the same two files in a ``.zip``):

* ``manifest.yaml``: ``format``, ``model``, ``source`` (``torch``, ``onnx`` or ``spec``),
  ``batch_size``, the ``recipe`` that produced it (embedded verbatim), the measured ``accuracy``
  (``baseline``, ``compressed``, ``dataset``, ``samples``) and one entry per layer: ``name``,
  ``op``, ``dims`` (the network-spec fields of that op, see :mod:`simulator.workload.layer`),
  ``weight`` (``scheme``, ``bits``, ``density``, ``structure``, ``codebook_size``,
  ``scale_bits``, ``dequantize`` (both optional on reading, default 0 / false), ``block``
  (circulant block side), ``filter_bits`` (bits per output filter; both optional on
  reading), ``mask``, ``shape``; ``null`` for vector ops), ``activation`` (``bits``,
  ``density`` -- of its mask when there is one --, ``calibration_density`` over the whole
  calibration batch, ``mask``, ``shape``, and optionally ``mask_set`` / ``mask_set_shape``:
  the masks of several calibration samples, ``(samples, *shape)``), ``output_bits`` and
  ``approx`` (a vector layer's approximated function, :mod:`simulator.workload.approx`;
  optional on reading). The manifest may carry ``early_exit`` (exits with their measured
  rates, :mod:`simulator.workload.dynamic`). Every field is written (``null`` where
  unknown).
* ``tensors.npz``: the nonzero masks named by the ``mask`` keys, each ``np.packbits`` of the
  C-order flattened boolean mask; its shape is the entry's ``shape``. Layouts are those of
  :class:`~simulator.workload.layer.Operand`: weights in their tensor layout, activations as one
  example of the layer input (``(C, H, W)``, ``(tokens, features)``, ``(batch, M, K)``).

Reading is strict: a wrong version, a missing or unknown field, a mask of the wrong shape, a
density that disagrees with its mask, or a truncated / corrupt file raise one
:class:`~simulator.errors.TraceError` naming the file, the layer and the field
(:mod:`simulator.workload.trace_reader`). Writing is atomic: the files are
written under a temporary name beside the target and renamed into place.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from simulator.errors import OutputError, TraceError
from simulator.files import check_output_dir, replace_dir_atomic, write_atomic
from simulator.workload.approx import approx_fields
from simulator.workload.dynamic import exit_fields
from simulator.workload.geometry import pair
from simulator.workload.layer import Layer, Operand, Workload

FORMAT = "approxsim-trace/1"
MANIFEST = "manifest.yaml"
TENSORS = "tensors.npz"
GEMM_OPS = ("conv2d", "linear", "matmul")


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Top-1 accuracy (fractions in [0, 1]) before and after compression, on ``dataset``."""

    baseline: float | None
    compressed: float | None
    dataset: str
    samples: int
    #: without labels: top-1 agreement of the compressed with the uncompressed model's outputs
    #: and the cosine similarity of the outputs, on ``samples`` inputs (labelled so)
    agreement: float | None = None
    output_cosine: float | None = None
    #: perplexity of a language model on the supplied token sequences (baseline, compressed)
    perplexity: tuple[float, float] | None = None
    warning: str | None = None


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


def operand_shapes(layer: Layer) -> tuple[tuple[int, ...] | None, tuple[int, ...]]:
    """Mask shapes of (weight, activation) for one example, in the :class:`Operand` layouts."""
    d = layer.dims
    if layer.op == "conv2d":
        kh, kw = pair(d["kernel"])
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
    if layer.op == "vector":
        return None, (int(d["in_elements"]),)
    if layer.op == "embedding":
        return None, (int(d.get("tokens", 1)), int(d["dim"]))
    return None, (d["channels"], d["in_h"], d["in_w"])


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
                               "scale_bits": float(w.scale_bits), "dequantize": w.dequantize,
                               "block": w.block, "filter_bits": None if w.filter_bits is None
                               else [int(b) for b in w.filter_bits],
                               "mask": key, "shape": shape}
        a = layer.activation
        key, shape = _mask_entry(a, _safe_key(layer.name, "activation"), a_shape, layer.name,
                                 tensors)
        cal = trace.calibration_density.get(layer.name)
        set_key, set_shape = (None, None) if a.mask_set is None else _mask_entry(
            Operand(mask=a.mask_set), _safe_key(layer.name, "activation_set"),
            (len(a.mask_set), *a_shape), layer.name, tensors)
        entry["activation"] = {"bits": a.bits, "density": float(a.density),
                               "calibration_density": None if cal is None else float(cal),
                               "mask": key, "shape": shape, "mask_set": set_key,
                               "mask_set_shape": set_shape}
        entry["output_bits"] = trace.output_bits.get(layer.name)
        entry["approx"] = None if layer.approx is None else approx_fields(layer.approx)
        layers.append(entry)
    acc = trace.accuracy
    manifest = {
        "format": FORMAT, "model": trace.workload.name, "source": trace.source,
        "batch_size": trace.batch_size,
        "recipe": dict(trace.recipe) if trace.recipe is not None else None,
        "accuracy": None if acc is None else {
            "baseline": acc.baseline, "compressed": acc.compressed, "dataset": acc.dataset,
            "samples": acc.samples, "agreement": acc.agreement,
            "output_cosine": acc.output_cosine,
            "perplexity": None if acc.perplexity is None else list(acc.perplexity),
            "warning": acc.warning},
        "early_exit": (None if trace.workload.exits is None
                       else exit_fields(trace.workload.exits)),
        "layers": layers,
    }
    return manifest, tensors


def check_trace_target(path: str | Path) -> Path:
    """Raise :class:`~simulator.errors.OutputError` unless a trace can be written at ``path``
    (a ``.zip`` file, or a directory that is absent or already a trace), checked before any
    work so a long compression never ends in a refusal."""
    target = Path(path)
    if target.suffix.lower() == ".zip":
        if target.is_dir():
            raise OutputError(f"{target}: is a directory; a .zip trace must be a file path")
    elif target.exists() and not (target / MANIFEST).is_file():
        raise OutputError(f"{target}: exists and is not a trace directory (no {MANIFEST}); "
                          f"not replaced")
    check_output_dir(target.parent)
    return target


def write_trace(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` to the directory ``path`` (or a ``.zip``), atomically; return the path.

    An existing trace at ``path`` is replaced only once the new one is complete; on any
    error nothing is left behind.
    """
    target = check_trace_target(path)
    manifest, tensors = manifest_dict(trace)
    text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=100)
    buf = io.BytesIO()
    np.savez_compressed(buf, **tensors)  # type: ignore[arg-type]
    if target.suffix.lower() == ".zip":
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(MANIFEST, text)
            zf.writestr(TENSORS, buf.getvalue())
        return write_atomic(target, archive.getvalue())
    def fill(tmp: Path) -> None:
        write_atomic(tmp / MANIFEST, text)
        write_atomic(tmp / TENSORS, buf.getvalue())

    replace_dir_atomic(target, fill, lambda old: (old / MANIFEST).is_file())
    return target


