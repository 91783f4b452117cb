"""Recipes that travel: selectors by pattern, type and position; every bundled recipe on models
that are not the digits LeNet; accuracy without labels (agreement, perplexity)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from simulator.frontend import compress  # noqa: E402
from simulator.frontend.recipe import RecipeError, load_recipe, parse_recipe  # noqa: E402
from simulator.frontend.training import TaskData, unlabelled  # noqa: E402

RECIPES = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "workloads"
                                  / "recipes").glob("*.yaml"))
NAMES = ["stem", "block.conv", "head.0", "head.1"]
OPS = {"stem": "conv2d", "block.conv": "conv2d", "head.0": "linear", "head.1": "linear"}


def step(**kw: Any) -> Any:
    return parse_recipe({"name": "r", "steps": [{"method": "magnitude", "sparsity": 0.5,
                                                 **kw}]}, "r.yaml").steps[0]


def test_selectors_by_position_type_and_pattern() -> None:
    assert step(exclude={"position": "first"}).targets(NAMES, "r", ops=OPS) == NAMES[1:]
    assert step(layers={"position": "last"}).targets(NAMES, "r", ops=OPS) == ["head.1"]
    assert step(layers={"type": "linear"}).targets(NAMES, "r", ops=OPS) == ["head.0", "head.1"]
    assert step(layers=["stem", {"pattern": "head.*"}], exclude={"type": "linear"}
                ).targets(NAMES, "r", ops=OPS) == ["stem"]
    assert step(layers={"type": "matmul", "optional": True}).targets(NAMES, "r", ops=OPS) == []


def test_unmatched_selectors_are_errors() -> None:
    with pytest.raises(RecipeError, match=r"(?s)r\.yaml.*steps\[0\]\.exclude.*'conv1' not found"):
        step(exclude="conv1").targets(NAMES, "r.yaml", ops=OPS)
    with pytest.raises(RecipeError, match=r"steps\[0\]\.layers.*\{type: matmul\} not found"):
        step(layers={"type": "matmul"}).targets(NAMES, "r.yaml", ops=OPS)
    with pytest.raises(RecipeError, match=r"steps\[0\]\.layers\[1\].*position: first \| last"):
        step(layers=["stem", {"position": "middle"}])


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x: Any) -> Any:
        return self.classifier(self.features(x))


class Former(nn.Module):
    """A transformer classifier: no convolutions at all."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 4)

    def forward(self, x: Any) -> Any:
        h = self.proj(x)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head((h + self.mlp(h)).mean(1))


def _data(shape: tuple[int, ...]) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, *shape, generator=g)
    y = torch.randint(0, 4, (48,), generator=g)
    return TaskData("random", x[32:], y[32:], x[:8], x[:32], y[:32])


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("kind", ["cnn", "transformer"])
def test_every_bundled_recipe_on_other_models(recipe: str, kind: str) -> None:
    torch.manual_seed(0)
    model, data = (Net(), _data((3, 6, 6))) if kind == "cnn" else (Former(), _data((5, 6)))
    rec = load_recipe(recipe)
    rec = rec.__class__(rec.name, rec.description, rec.finetune.model_copy(
        update={"epochs": min(rec.finetune.epochs, 1)}), rec.steps, rec.raw, rec.source)
    res = compress(model.eval(), rec, data, name=kind)
    assert any(la.kind == "gemm" for la in res.trace.workload.layers)


def test_prune80_keeps_the_first_layer_whatever_its_name() -> None:
    torch.manual_seed(0)
    rec = load_recipe("prune80")
    rec = rec.__class__(rec.name, rec.description, rec.finetune.model_copy(
        update={"epochs": 0}), rec.steps, rec.raw, rec.source)
    res = compress(Net().eval(), rec, _data((3, 6, 6)))
    dens = {la.name: la.weight.density for la in res.trace.workload.layers if la.kind == "gemm"}
    assert dens["features.0"] == 1.0
    assert all(d == pytest.approx(0.2, abs=0.01) for n, d in dens.items() if n != "features.0")


def test_agreement_without_labels_and_its_warning() -> None:
    torch.manual_seed(0)
    x = torch.randn(20, 3, 6, 6)
    res = compress(Net().eval(), load_recipe("int4"), unlabelled(x, "x.npy"))
    acc = res.trace.accuracy
    assert acc is not None and acc.baseline is None and acc.samples == 20
    assert acc.agreement is not None and 0.0 <= acc.agreement <= 1.0
    assert 0.9 < acc.output_cosine <= 1.0 + 1e-12
    assert acc.warning and "20 samples" in acc.warning and "agreement" in acc.dataset


def test_perplexity_on_token_inputs() -> None:
    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(30, 16)
            self.fc = nn.Linear(16, 16)
            self.head = nn.Linear(16, 30)

        def forward(self, ids: Any) -> Any:
            return self.head(torch.relu(self.fc(self.embed(ids))))

    torch.manual_seed(0)
    ids = torch.randint(0, 30, (8, 12))
    res = compress(LM().eval(), load_recipe("w8a16"), unlabelled(ids.numpy(), "ids.npy"))
    acc = res.trace.accuracy
    assert acc is not None and acc.perplexity is not None
    base, comp = acc.perplexity
    # an untrained model over 30 tokens: perplexity near the vocabulary size
    assert 10 < base < 100 and abs(comp - base) / base < 0.05
    fc = next(la for la in res.trace.workload.layers if la.name == "fc")
    assert (fc.weight.bits, fc.weight.dequantize) == (8, True)
    assert fc.weight.scale_bits == pytest.approx(16 / 16)  # an fp16 scale per 16-weight row
    assert np.isfinite(base)
