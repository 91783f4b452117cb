"""The workloads of a sweep: files loaded (with ``set`` applied), models compressed once.

A file workload's digest is that of its loaded content (:func:`workload_digest`), so two
files with the same layers are the same workload. A model x recipe workload's digest is
known *before* compressing (the model's identity, the recipe as data, the seed), so a resumed
sweep knows which points are done without compressing anything; the trace itself is cached in
the result store under that digest (``traces/<digest>.zip``, written atomically), so each
recipe is applied once per store, however many points and reruns use it.

Model identity: ``digits-lenet`` is its name (its weights follow from the code, which the
code version covers); an ``.onnx`` file its bytes; a ``package.module:factory`` its
reference only (change the name, or use a new store, when the factory's weights change).

``baseline`` is the uncompressed model, with the accuracy measured before compression as both
its baseline and its own accuracy (its layers carry no bit widths: they run at the
architecture's precision).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simulator.errors import SimulatorError, TraceError, WorkloadError
from simulator.files import read_yaml
from simulator.frontend import compress_loaded, load_model, load_recipe, parse_recipe
from simulator.frontend.recipe import Recipe
from simulator.sweep.hashing import digest, file_digest, workload_digest
from simulator.sweep.spec import BASELINE, WorkloadSpec
from simulator.workload.layer import Workload
from simulator.workload.loader import load_workload
from simulator.workload.spec import parse_network
from simulator.workload.trace import Accuracy, Trace, write_trace
from simulator.workload.trace_reader import read_trace

#: ``progress(phase, done, total)``, as the frontend's.
Progress = Callable[[str, int, int], None]
#: Cheap recipes whose by-product is the uncompressed baseline trace (torch / ONNX models).
_PROBE_TORCH = {"name": BASELINE, "steps": [{"method": "act_fixed_point", "bits": 8}]}
_PROBE_ONNX = {"name": BASELINE, "steps": [{"method": "fixed_point", "bits": 8}]}


@dataclass(frozen=True, slots=True)
class Loaded:
    """A workload ready to simulate, with the accuracy that goes with it (fractions)."""

    workload: Workload
    accuracy: float | None = None
    baseline_accuracy: float | None = None
    accuracy_source: str | None = None


def _noop(phase: str, done: int, total: int) -> None:
    return None


def _with_set(spec: WorkloadSpec) -> Workload:
    """A network spec with ``spec.set`` assigned to every conv2d / linear layer not kept."""
    assert spec.path is not None and spec.set is not None
    data = read_yaml(spec.path, WorkloadError)
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list):
        raise WorkloadError(str(spec.path), [("layers", "must be a list of layers")])
    names = [la.get("name") for la in layers if isinstance(la, dict)]
    missing = [k for k in spec.keep if k not in names]
    if missing:
        raise WorkloadError(str(spec.path), [("keep", f"no layer named {', '.join(missing)}; "
                                                      f"layers: {', '.join(map(str, names))}")])
    for la in layers:
        if isinstance(la, dict) and la.get("op") in ("conv2d", "linear") \
                and la.get("name") not in spec.keep:
            la.update(spec.set)
    data["name"] = spec.label
    return parse_network(data, source=f"{spec.path} with set {dict(spec.set)}")


class Sources:
    """Resolves a sweep's workloads: digests first, then the workloads points need.

    ``traces`` is the store's trace cache directory; ``cache_dir`` where bundled models keep
    their trained weights (``None``: train in memory). Models are loaded once per instance.
    """

    def __init__(self, seed: int, traces: Path, cache_dir: Path | None = None,
                 progress: Progress = _noop) -> None:
        self.seed = seed
        self.traces = traces
        self.cache_dir = cache_dir
        self.progress = progress
        self._files: dict[str, Loaded] = {}
        self._models: dict[str, tuple[Any, Any, str]] = {}

    # -- identity --------------------------------------------------------------------------
    def _recipe(self, spec: WorkloadSpec) -> Recipe:
        assert spec.recipe is not None
        if spec.recipe == BASELINE:
            onnx = spec.model is not None and spec.model.endswith(".onnx")
            return parse_recipe(_PROBE_ONNX if onnx else _PROBE_TORCH, source=BASELINE)
        return load_recipe(spec.recipe)

    def recipe_data(self, spec: WorkloadSpec) -> Any:
        """The recipe as data (part of the point hash); ``"baseline"`` for the baseline."""
        if spec.recipe is None:
            return None
        return BASELINE if spec.recipe == BASELINE else dict(self._recipe(spec).raw)

    def _model_identity(self, model: str) -> str:
        if model.endswith(".onnx"):
            if not Path(model).is_file():
                raise SimulatorError(f"{model}: file not found")
            return f"onnx:{file_digest(model)}"
        return f"model:{model}"

    def digest(self, spec: WorkloadSpec) -> str:
        """The workload's content digest (module docstring)."""
        if spec.model is None:
            return workload_digest(self.load(spec).workload)
        return digest({"model": self._model_identity(spec.model),
                       "recipe": self.recipe_data(spec), "seed": self.seed})

    # -- loading ---------------------------------------------------------------------------
    def load(self, spec: WorkloadSpec) -> Loaded:
        """The workload itself (a file read once; a trace compressed once per store)."""
        if spec.model is not None:
            return self._compressed(spec)
        if spec.label not in self._files:
            self._files[spec.label] = self._file(spec)
        return self._files[spec.label]

    def _file(self, spec: WorkloadSpec) -> Loaded:
        assert spec.path is not None
        acc, base, src = spec.accuracy, spec.baseline_accuracy, spec.accuracy_source
        p = spec.path
        if spec.set is not None:
            wl = _with_set(spec)
        elif p.is_dir() or p.suffix == ".zip":
            trace = read_trace(p)
            wl = trace.workload
            if trace.accuracy is not None and acc is None:
                acc, base = trace.accuracy.compressed, trace.accuracy.baseline
                src = f"measured: {trace.accuracy.dataset}, {trace.accuracy.samples} samples"
        else:
            wl = load_workload(p)
        return Loaded(wl, acc, base, src)

    def _compressed(self, spec: WorkloadSpec) -> Loaded:
        assert spec.model is not None
        path = self.traces / f"{self.digest(spec)[:20]}.zip"
        trace = None
        if path.is_file():
            try:
                trace = read_trace(path)
            except TraceError:
                trace = None  # unreadable cache entry: compress again and replace it
        if trace is None:
            trace = self._compress(spec)
            self.traces.mkdir(parents=True, exist_ok=True)
            write_trace(trace, path)
        acc = trace.accuracy
        if acc is None:
            return Loaded(trace.workload, accuracy_source="not measured (ONNX: weights only)")
        return Loaded(trace.workload, acc.compressed, acc.baseline,
                      f"measured: {acc.dataset}, {acc.samples} samples")

    def _compress(self, spec: WorkloadSpec) -> Trace:
        assert spec.model is not None
        recipe = self._recipe(spec)
        phase = f"compress {spec.label}"
        self.progress(phase, 0, 1)
        if spec.model not in self._models:
            self._models[spec.model] = load_model(spec.model, cache_dir=self.cache_dir)
        result = compress_loaded(self._models[spec.model], recipe, ref=spec.model,
                                 seed=self.seed)
        self.progress(phase, 1, 1)
        if spec.recipe != BASELINE:
            return result.trace
        acc = result.trace.accuracy
        base = None if acc is None else Accuracy(acc.baseline, acc.baseline, acc.dataset,
                                                 acc.samples)
        return replace(result.baseline, accuracy=base)
