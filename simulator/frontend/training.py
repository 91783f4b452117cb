"""Training and evaluation of the frontend's PyTorch models: the data a compression needs
(:class:`TaskData`), top-1 accuracy, and (masked, quantisation-aware) fine-tuning."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

#: ``progress(phase, done, total)``: called as training / calibration / evaluation advance.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TaskData:
    """Inputs for :func:`compress`: a held-out test set, a calibration batch, optional training
    data (needed only for fine-tuning). Tensors: inputs ``x`` as the model takes them, integer
    class labels ``y``."""

    name: str
    x_test: torch.Tensor
    y_test: torch.Tensor
    calibration: torch.Tensor
    x_train: torch.Tensor | None = None
    y_train: torch.Tensor | None = None


def noop(phase: str, done: int, total: int) -> None:
    return None


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: these models are tiny, and intra-op threads on a shared
    2-core machine cost 20x in contention (measured 3.4 ms vs 68 ms per training step)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, progress: Progress = noop,
             batch_size: int = 256, phase: str = "evaluate") -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    model.eval()
    correct = 0
    n = len(x)
    with torch.no_grad():
        for i in range(0, n, batch_size):
            correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
            progress(phase, min(i + batch_size, n), n)
    return correct / n if n else math.nan


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
          batch_size: int = 64, seed: int = 0, masks: dict[str, torch.Tensor] | None = None,
          progress: Progress = noop, phase: str = "train",
          quantise: Callable[[], dict[str, torch.Tensor]] | None = None) -> None:
    """Adam on cross-entropy, deterministic for a seed; ``masks`` keep pruned weights at zero.

    ``quantise`` (quantisation-aware training): called before each forward pass, it
    quantises weights in place and returns their float copies, restored before the optimiser
    step -- the straight-through estimator (Bengio et al. 2013; as in BWN/TWN training).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    mods = dict(model.named_modules())
    n = len(x)
    steps = epochs * math.ceil(n / batch_size)
    done = 0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            shadow = quantise() if quantise is not None else {}
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            with torch.no_grad():  # straight-through: the step updates the float weights
                for key, w in shadow.items():
                    param(mods[key]).copy_(w)
            opt.step()
            if masks:
                with torch.no_grad():
                    for name, m in masks.items():
                        param(mods[name]).mul_(m)
            done += 1
            progress(phase, done, steps)
    model.eval()


def param(mod: nn.Module, attr: str = "weight") -> torch.Tensor:
    value = getattr(mod, attr)
    assert isinstance(value, torch.Tensor), f"{type(mod).__name__}.{attr}"
    return value
