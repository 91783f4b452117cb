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
    y_test: torch.Tensor | None
    calibration: torch.Tensor
    x_train: torch.Tensor | None = None
    y_train: torch.Tensor | None = None
    #: the dimension of the inputs that indexes examples (1: sequence-first models)
    batch_dim: int = 0


def unlabelled(x: object, name: str) -> TaskData:
    """Inputs without labels (a ``.npy`` array): the compression reports agreement with the
    uncompressed model on them, and their perplexity when they are token ids of a language
    model."""
    t = torch.as_tensor(x)
    return TaskData(name=f"unlabelled inputs {name}", x_test=t, y_test=None, calibration=t)


def logits(out: object) -> torch.Tensor:
    """A model's output as a tensor: Hugging Face ``ModelOutput.logits``, a tuple's first."""
    if hasattr(out, "logits"):
        out = out.logits
    if isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    assert isinstance(out, torch.Tensor), type(out).__name__
    return out


def outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The model's outputs on ``x`` (batched), as one tensor."""
    model.eval()
    with torch.no_grad():
        return torch.cat([logits(model(x[i:i + batch_size])).float()
                          for i in range(0, len(x), batch_size)])


def agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Top-1 agreement (argmax over the last axis: classes, or vocabulary per token) and the
    cosine similarity of two output tensors."""
    agree = float((a.argmax(-1) == b.argmax(-1)).double().mean())
    fa, fb = a.reshape(-1).double(), b.reshape(-1).double()
    den = float(fa.norm() * fb.norm())
    return agree, float(fa @ fb) / den if den else 1.0


def perplexity(out: torch.Tensor, ids: torch.Tensor) -> float:
    """``exp`` of the mean next-token cross-entropy of ``(batch, tokens, vocab)`` logits."""
    loss = nn.functional.cross_entropy(out[:, :-1].reshape(-1, out.shape[-1]).double(),
                                       ids[:, 1:].reshape(-1))
    return float(torch.exp(loss))


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
    correct = total = 0
    n = len(x)
    with torch.no_grad():
        for i in range(0, n, batch_size):
            pred = logits(model(x[i:i + batch_size])).argmax(-1)  # classes: the last axis
            correct += int((pred.reshape(-1) == y[i:i + batch_size].reshape(-1)).sum())
            total += int(pred.numel())
            progress(phase, min(i + batch_size, n), n)
    return correct / total if total else math.nan


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
          batch_size: int = 64, seed: int = 0, masks: dict[str, torch.Tensor] | None = None,
          progress: Progress = noop, phase: str = "train",
          quantise: Callable[[], dict[str, torch.Tensor]] | None = None,
          after_step: Callable[[], None] | None = None,
          loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          params: list[torch.Tensor] | None = None) -> None:
    """Adam on cross-entropy, deterministic for a seed; ``masks`` (by parameter name) keep
    pruned weights at zero.

    ``quantise`` (quantisation-aware training): called before each forward pass, it
    quantises weights in place and returns their float copies by parameter name, restored
    before the optimiser
    step -- the straight-through estimator (Bengio et al. 2013; as in BWN/TWN training).
    ``after_step``: called after every optimiser step (a projection that keeps a structure,
    e.g. circulant blocks). ``loss(outputs, labels, index)``: the objective instead of
    cross-entropy (``index``: the batch's rows of ``x``, e.g. for a teacher's soft labels).
    ``params``: the parameters to train (default: all of the model's).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters() if params is None else params, lr=lr)
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
            out = model(x[idx])
            (loss(out, y[idx], idx) if loss is not None
             else nn.functional.cross_entropy(out, y[idx])).backward()
            with torch.no_grad():  # straight-through: the step updates the float weights
                for key, w in shadow.items():
                    model.get_parameter(key).copy_(w)
            opt.step()
            if masks:
                with torch.no_grad():
                    for name, m in masks.items():
                        model.get_parameter(name).mul_(m)
            if after_step is not None:
                after_step()
            done += 1
            progress(phase, done, steps)
    model.eval()


def param(mod: nn.Module, attr: str = "weight") -> torch.Tensor:
    value = getattr(mod, attr)
    assert isinstance(value, torch.Tensor), f"{type(mod).__name__}.{attr}"
    return value
