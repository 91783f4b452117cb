"""PyTorch importer: find a model's layers with forward hooks over a calibration batch.

Each supported leaf module becomes one network-spec layer with the *real* input shape it saw
(conv2d, linear, maxpool/avgpool, global_avgpool), and the real zeros of its input: the
activation density over the whole calibration batch and the nonzero mask of one representative
example (the one whose density is closest to the batch's)
(in the :class:`~simulator.workload.layer.Operand` layout). Weight masks are the module's zero
weights, exactly. ReLU, batch norm, dropout, flatten and identity are fused or move no data
and are listed in ``notes``; any other module holding parameters is an error (it would
otherwise be silently dropped). Functional calls inside ``forward`` are invisible to hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from simulator.errors import SimulatorError
from simulator.frontend.imported import ImportedLayer, ImportResult
from simulator.workload.geometry import compact

#: Modules folded into the preceding layer or moving no data (reported, not simulated).
FUSED = (nn.ReLU, nn.ReLU6, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Flatten,
         nn.Identity, nn.Softmax, nn.LogSoftmax)
WEIGHTED = (nn.Conv2d, nn.Linear)


class ModelTraceError(SimulatorError):
    """A model cannot be traced into layers (unsupported module, failed forward pass)."""


def layer_spec(name: str, mod: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """The network-spec dict of ``mod`` given its input ``x`` (a batch)."""
    if isinstance(mod, nn.Conv2d):
        if isinstance(mod.padding, str) or mod.padding_mode != "zeros":
            raise ModelTraceError(f"layer {name!r}: padding={mod.padding!r} / padding_mode="
                                  f"{mod.padding_mode!r} is not supported (use integer zero "
                                  f"padding)")
        return {"name": name, "op": "conv2d", "in_channels": mod.in_channels,
                "out_channels": mod.out_channels, "in_h": int(x.shape[-2]),
                "in_w": int(x.shape[-1]), "kernel": compact(mod.kernel_size),
                "stride": compact(mod.stride), "padding": compact(mod.padding),
                "dilation": compact(mod.dilation), "groups": mod.groups}
    if isinstance(mod, nn.Linear):
        tokens = int(np.prod(x.shape[1:-1])) if x.dim() > 2 else 1
        return {"name": name, "op": "linear", "in_features": mod.in_features,
                "out_features": mod.out_features, "tokens": tokens}
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        if getattr(mod, "ceil_mode", False) or getattr(mod, "dilation", 1) not in (1, (1, 1)):
            raise ModelTraceError(f"layer {name!r}: ceil_mode / dilation pooling is not "
                                  f"supported")
        op = "maxpool" if isinstance(mod, nn.MaxPool2d) else "avgpool"
        return {"name": name, "op": op, "channels": int(x.shape[1]), "in_h": int(x.shape[-2]),
                "in_w": int(x.shape[-1]), "kernel": compact(mod.kernel_size),
                "stride": compact(mod.stride if mod.stride is not None else mod.kernel_size),
                "padding": compact(mod.padding)}
    if isinstance(mod, nn.AdaptiveAvgPool2d) and mod.output_size in (1, (1, 1)):
        return {"name": name, "op": "global_avgpool", "channels": int(x.shape[1]),
                "in_h": int(x.shape[-2]), "in_w": int(x.shape[-1])}
    raise ModelTraceError(f"layer {name!r}: module type {type(mod).__name__} is not supported")


def _example_mask(spec: dict[str, Any], x: torch.Tensor) -> np.ndarray:
    """The nonzero mask of the example whose density is closest to the batch's (first on ties)."""
    nz = (x.detach() != 0).reshape(x.shape[0], -1).double().mean(dim=1)
    pick = int(torch.argmin((nz - nz.mean()).abs()).item())
    mask = x[pick].detach().cpu().numpy() != 0
    if spec["op"] == "linear":
        return mask.reshape(-1, spec["in_features"])
    return mask


def is_supported(mod: nn.Module) -> bool:
    return isinstance(mod, (*WEIGHTED, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d))


def import_torch(model: nn.Module, calibration: torch.Tensor,
                 on_batch: Callable[[], None] | None = None) -> ImportResult:
    """Run ``model`` on the calibration batch and record its layers in execution order."""
    found: list[ImportedLayer] = []
    notes: list[str] = []
    calls: dict[str, int] = {}
    errors: list[str] = []
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def record(mod: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            calls[name] = calls.get(name, 0) + 1
            label = name if calls[name] == 1 else f"{name}#{calls[name]}"
            try:
                spec = layer_spec(label, mod, x)
            except ModelTraceError as exc:
                errors.append(str(exc))
                return
            w = getattr(mod, "weight", None)
            found.append(ImportedLayer(
                label, spec, float(torch.count_nonzero(x).item() / x.numel()),
                _example_mask(spec, x),
                None if w is None else w.detach().cpu().numpy().copy()))

        return record

    for name, mod in model.named_modules():
        if any(True for _ in mod.children()):
            continue  # containers: their leaves are hooked
        if is_supported(mod):
            handles.append(mod.register_forward_pre_hook(hook(name)))
        elif isinstance(mod, FUSED):
            notes.append(f"{name} ({type(mod).__name__}): fused / no data movement, "
                         f"not simulated")
        elif any(True for _ in mod.parameters(recurse=False)):
            errors.append(f"layer {name!r}: module type {type(mod).__name__} has parameters "
                          f"but is not supported")
        else:
            notes.append(f"{name} ({type(mod).__name__}): not simulated (no supported op)")
    try:
        if errors:
            raise ModelTraceError("model cannot be traced:\n  " + "\n  ".join(errors))
        model.eval()
        with torch.no_grad():
            try:
                model(calibration)
            except Exception as exc:  # a user model may raise anything
                raise ModelTraceError(f"model failed on the calibration batch of shape "
                                      f"{list(calibration.shape)}: {type(exc).__name__}: "
                                      f"{exc}") from exc
        if on_batch is not None:
            on_batch()
    finally:
        for h in handles:
            h.remove()
    if errors:
        raise ModelTraceError("model cannot be traced:\n  " + "\n  ".join(errors))
    if not any(lay.spec["op"] in ("conv2d", "linear") for lay in found):
        raise ModelTraceError("model has no Conv2d or Linear layer reached by forward()")
    return ImportResult(found, notes)
