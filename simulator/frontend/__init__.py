"""Model-compression frontend: trained models in, compressed workload traces out.

PyTorch (``simulator.frontend.torch``) and ONNX (``simulator.frontend.onnx``) importers, the
compression methods of the literature (:mod:`simulator.frontend.methods`) configured by
recipes (:mod:`simulator.frontend.recipe`), and :func:`compress`, which measures baseline and
compressed accuracy and returns a :class:`~simulator.workload.trace.Trace`. torch,
scikit-learn and onnx are optional extras, imported only here and only when used; without them a
:class:`~simulator.frontend._deps.MissingExtraError` names the extra to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.errors import SimulatorError
from simulator.frontend import lutmap  # noqa: F401  (registers the lutnet method)
from simulator.frontend._deps import MissingExtraError, require
from simulator.frontend.methods import METHODS
from simulator.frontend.recipe import Recipe, RecipeError, load_recipe, parse_recipe

if TYPE_CHECKING:
    from simulator.frontend.trace_builder import CompressionResult
    from simulator.frontend.training import Progress, TaskData

BUNDLED = ("digits-lenet", "digits-lenet-tanh", "digits-lenet-sigmoid", "digits-lenet-silu",
           "digits-vit")

__all__ = ["BUNDLED", "METHODS", "MissingExtraError", "Recipe", "RecipeError", "compress",
           "compress_loaded", "load_model", "load_recipe", "parse_recipe"]


def compress(model: Any, recipe: Recipe | str | Path, data: TaskData, *, name: str = "model",
             progress: Progress | None = None, seed: int = 0) -> CompressionResult:
    """Compress a PyTorch ``model`` with ``recipe`` (a :class:`Recipe` or a recipe file).

    Returns a :class:`~simulator.frontend.trace_builder.CompressionResult` whose ``trace`` can be
    written with :func:`simulator.trace.write_trace` and simulated.
    """
    require("torch")
    from simulator.frontend import pipeline, training

    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    return pipeline.compress(model, rec, data, name=name, seed=seed,
                             progress=progress or training.noop)


def compress_loaded(loaded: tuple[Any, TaskData | None, str], recipe: Recipe, *,
                    ref: str = "model", progress: Progress | None = None,
                    seed: int = 0) -> CompressionResult:
    """Compress what :func:`load_model` returned: an ONNX path through the weights-only
    route, a torch module (with its data) through :func:`compress`."""
    net, data, name = loaded
    if isinstance(net, Path):
        from simulator.frontend.onnx import compress_onnx

        return compress_onnx(net, recipe, seed=seed)
    if data is None:
        raise SimulatorError(f"model {ref!r}: the factory returned no data; return "
                             f"(module, simulator.frontend.training.TaskData)")
    return compress(net, recipe, data, name=name, progress=progress, seed=seed)


def load_model(ref: str, progress: Progress | None = None, *,
               cache_dir: Path | None = None) -> tuple[Any, TaskData | None, str]:
    """Resolve a model reference: bundled name, ``package.module:factory`` or ``.onnx`` file.

    Returns ``(model, data or None, name)``. A factory returns a ``torch.nn.Module`` or a
    ``(module, TaskData)`` pair. An ONNX file returns the path itself as the model. The
    bundled model caches its trained weights in ``cache_dir`` when one is given.
    """
    if ref in BUNDLED:
        require("torch")
        require("sklearn")
        from simulator.frontend import training
        from simulator.frontend.digits import digits_model

        model, data = digits_model(ref, progress or training.noop, cache_dir=cache_dir)
        return model, data, ref
    if ref.endswith(".onnx"):
        if not Path(ref).is_file():
            raise SimulatorError(f"{ref}: file not found")
        return Path(ref), None, Path(ref).stem
    if ":" in ref:
        require("torch")
        mod_name, _, attr = ref.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise SimulatorError(f"model {ref!r}: cannot import {attr!r} from {mod_name!r}: "
                                 f"{exc}") from None
        try:
            out = factory()
        except Exception as exc:  # user code
            raise SimulatorError(f"model {ref!r}: the factory raised {type(exc).__name__}: "
                                 f"{exc}") from exc
        model, data = out if isinstance(out, tuple) else (out, None)
        return model, data, attr
    raise SimulatorError(f"model {ref!r}: expected an .onnx file, 'package.module:factory' or "
                         f"a bundled name ({', '.join(BUNDLED)})")
