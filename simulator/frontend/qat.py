"""Quantisation-aware fine-tuning (the straight-through estimator: Bengio, Leonard, Courville,
arXiv:1308.3432, 2013; as BWN / TWN / XNOR-Net train) of weights and activations.

Weights: before each forward pass the weight steps' functions quantise their targets in place,
their float copies are restored before the optimiser step (:func:`qat`). Activations: a
forward pre-hook replaces a module's input by its calibrated fake-quantised value
(:func:`install_act_quant`), through :class:`_Ste`, whose backward passes the gradient
unchanged, so a recipe with ``finetune: {qat: true}`` also fine-tunes through its activation
quantisation (e.g. XNOR-Net's binary inputs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from simulator.errors import SimulatorError
from simulator.frontend.imported import ImportedLayer
from simulator.frontend.methods import quantise_activation
from simulator.frontend.recipe import Step
from simulator.frontend.training import Progress, TaskData, train
from simulator.frontend.work import weight_view


class _Ste(torch.autograd.Function):
    """``q(x)`` forward (numpy, no autograd), identity backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, q: Callable[[np.ndarray], np.ndarray]
                ) -> torch.Tensor:
        # contiguous, as the module's own output would be (a strided result changes the
        # next operator's ATen form, e.g. linear's addmm into mm + add)
        out = q(x.detach().numpy())
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def install_act_quant(model: nn.Module, targets: list[ImportedLayer], step: Step,
                       calibration: torch.Tensor) -> None:
    """Fake-quantise the inputs of the modules that own the targets' weights (calibrated)."""
    mods = sorted({la.param.rpartition(".")[0] for la in targets if la.param})
    seen: dict[str, np.ndarray] = {}
    handles = []
    for n in mods:
        def grab(mod: nn.Module, args: tuple[Any, ...], n: str = n) -> None:
            seen.setdefault(n, args[0].detach().numpy())
        handles.append(model.get_submodule(n).register_forward_pre_hook(grab))
    with torch.no_grad():
        model(calibration)
    for h in handles:
        h.remove()
    params: Any = step.params
    for n in mods:
        if n not in seen:
            continue
        calibrated = step.method.fn(seen[n], params)
        if callable(calibrated):  # a quantiser of its own (binary inputs)
            quantiser = calibrated
        else:  # (scale, unsigned) of a fixed-point scheme
            def quantiser(x: np.ndarray, sc: tuple[float, bool] = calibrated) -> np.ndarray:
                return quantise_activation(x, sc[0], sc[1], params.bits)

        def fake_quant(mod: nn.Module, args: tuple[Any, ...],
                       q: Any = quantiser) -> tuple[Any, ...]:
            return (_Ste.apply(args[0], q), *args[1:])

        model.get_submodule(n).register_forward_pre_hook(fake_quant)


def qat(model: nn.Module, data: TaskData, ft: Any,
        steps: list[tuple[Step, list[ImportedLayer]]], masks: dict[str, torch.Tensor],
        progress: Progress, seed: int, phase: str) -> None:
    """Quantisation-aware fine-tuning through every weight step of ``steps`` (each with its
    targets) at once, and through the activation hooks installed (module docstring)."""
    if data.x_train is None or data.y_train is None:
        raise SimulatorError(f"recipe asks for quantisation-aware fine-tuning but the data "
                             f"{data.name!r} has no training set")

    def quantise() -> dict[str, torch.Tensor]:
        shadow: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for step, targets in steps:
                for la in targets:
                    assert la.param is not None
                    shadow.setdefault(la.param, model.get_parameter(la.param).detach().clone())
                    w = weight_view(model, la)
                    w.copy_(torch.from_numpy(step.method.fn(w.detach().numpy().copy(),
                                                            step.params).weight))
        return shadow

    train(model, data.x_train, data.y_train, epochs=ft.epochs, lr=ft.lr,
          batch_size=ft.batch_size, seed=seed, masks=masks, progress=progress,
          phase=phase, quantise=quantise)
