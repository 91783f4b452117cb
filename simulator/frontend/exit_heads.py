"""The classifiers early exits attach to a backbone (:mod:`simulator.frontend.input_dependent`),
as torch modules: pooling to a small feature vector, then one linear layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TokenMean(nn.Module):
    """The mean over the token axis of a ``(batch, tokens, features)`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class ExitHead(nn.Module):
    """``pool`` then ``fc``: an ``AdaptiveAvgPool2d(side)`` + flatten of a ``(B, C, H, W)``
    feature map (``C side^2`` features), the token mean of ``(B, T, F)``, or nothing for
    ``(B, F)``; then ``Linear(features, classes)``."""

    def __init__(self, example: torch.Tensor, classes: int, side: int) -> None:
        super().__init__()
        if example.dim() == 4:
            self.pool: nn.Module = nn.Sequential(nn.AdaptiveAvgPool2d(side), nn.Flatten())
        elif example.dim() == 3:
            self.pool = TokenMean()
        else:
            self.pool = nn.Flatten()
        with torch.no_grad():
            features = self.pool(example[:1]).shape[-1]
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x))


def attach(model: nn.Module, heads: dict[str, ExitHead]) -> tuple[list[Any], list[Any]]:
    """Register each head as ``model.exit<i>`` and a forward hook on its branch module that
    runs it; returns (the hook handles, the list every forward appends the exits' logits to)."""
    store: list[Any] = []
    handles = []
    for i, (branch, head) in enumerate(heads.items()):
        model.add_module(f"exit{i}", head)

        def hook(mod: nn.Module, args: Any, out: Any, head: ExitHead = head) -> None:
            store.append(head(out))

        handles.append(model.get_submodule(branch).register_forward_hook(hook))
    return handles, store
