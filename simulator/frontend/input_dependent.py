"""Input-dependent computation: early-exit branches with measured exit rates (BranchyNet) and
activation masks measured per input sample.

**Early exits** (Teerapittayanon, McDanel, Kung, "BranchyNet: fast inference via early exiting
from deep neural networks", ICPR 2016). A classifier head (:class:`~simulator.frontend.
exit_heads.ExitHead`: average pooling to ``pool x pool`` and one linear layer) is attached
after each selected layer and trained on the training set with the backbone frozen (on the
backbone's features, cross-entropy; BranchyNet trains jointly, which changes the backbone:
frozen keeps the final exit's accuracy the compressed model's). At test time a sample leaves
at the first exit whose softmax ``p`` is confident enough: its entropy
``-sum_c p_c log p_c`` below the threshold (BranchyNet section III-B) or, with ``criterion:
confidence``, its top probability at least the threshold; else it runs to the network's output.
For every threshold the held-out set gives the exit rates and the accuracy of the predictions
taken where the samples left; the trace carries them (:class:`~simulator.workload.dynamic.
ExitPlan`) and the simulator weights each exit's cycles and energy by them
(:mod:`simulator.dynamic`). The trace's compressed accuracy is the one at the operating
``threshold``.

**Per-sample masks** (``sample_masks``): the input-activation masks of the selected GEMM
layers over the first ``samples`` calibration examples, each traced on its own, so the
simulator reports the spread of load imbalance and cycles over inputs (runtime activation
sparsity varies per input: Albericio et al., "Cnvlutin", ISCA 2016; Rhu et al.,
"Compressing DMA engine: leveraging activation sparsity for training deep neural networks",
HPCA 2018, which measures it per input).

Registered in :data:`simulator.frontend.methods.METHODS` as model-level methods (torch is
imported only when they run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from simulator.errors import SimulatorError
from simulator.frontend.methods import Params, method


@dataclass
class Exits:
    """Early exits attached to the model (:func:`early_exit`): each exit's
    head module name, and the measured plan fields (by threshold)."""

    heads: list[str]
    criterion: str
    thresholds: list[float]
    rates: list[list[float]]
    accuracy: list[float | None]
    samples: int
    operating: int


class ExitParams(Params):
    criterion: Literal["entropy", "confidence"] = "entropy"
    thresholds: Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0.01, 0.05, 0.1, 0.2, 0.4, 0.8])
    #: the operating threshold (one of ``thresholds``; default the first)
    threshold: Annotated[float, Field(ge=0.0)] | None = None
    pool: Annotated[int, Field(ge=1, le=16, strict=True)] = 2
    epochs: Annotated[int, Field(ge=1, le=1000, strict=True)] = 20
    lr: Annotated[float, Field(gt=0.0)] = 3e-3
    seed: int = 0

    @model_validator(mode="after")
    def _operating(self) -> ExitParams:
        if self.threshold is not None and self.threshold not in self.thresholds:
            raise ValueError(f"threshold {self.threshold} must be one of thresholds "
                             f"{self.thresholds}")
        return self


def exit_decisions(probs: list[np.ndarray], criterion: str, threshold: float) -> np.ndarray:
    """Per sample, the exit it leaves at: the first of the early exits (all but the last of
    ``probs``, each ``(samples, classes)`` softmax outputs) that is confident enough (module
    docstring), else the last."""
    n = probs[0].shape[0]
    leave = np.full(n, len(probs) - 1)
    for i in range(len(probs) - 2, -1, -1):
        p = probs[i]
        if criterion == "entropy":
            ok = -(p * np.log(np.clip(p, 1e-30, None))).sum(axis=1) < threshold
        else:
            ok = p.max(axis=1) >= threshold
        leave = np.where(ok, i, leave)
    return leave


def _features(model: Any, branches: list[str], x: Any) -> tuple[list[Any], Any]:
    """The branch modules' outputs on ``x`` (batched, no grad) and the model's own output."""
    import torch

    from simulator.frontend.training import logits

    got: dict[str, list[Any]] = {b: [] for b in branches}
    handles = [model.get_submodule(b).register_forward_hook(
        lambda m, a, out, b=b: got[b].append(out.detach())) for b in branches]
    outs = []
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(x), 256):
                outs.append(logits(model(x[i:i + 256])).float())
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(got[b]) for b in branches], torch.cat(outs)


@method("early_exit", "exit", "Teerapittayanon, McDanel, Kung, 'BranchyNet: fast inference "
        "via early exiting from deep neural networks', ICPR 2016 (entropy threshold)",
        ExitParams, model_level=True)
def early_exit(work: Any, step: Any) -> None:
    """Attach, train and measure exits after the selected layers (module docstring)."""
    import torch

    from simulator.frontend.exit_heads import ExitHead, attach
    from simulator.frontend.training import train

    p: ExitParams = step.params
    data, model = work.data, work.model
    layers = work.imported.layers
    calls = {la.module: sum(1 for other in layers if other.module == la.module)
             for la in layers}
    # a branch point is a module whose output is one layer's (a module called once, that
    # produced one layer), before the network's last layer
    cands = {la.name: la.spec["op"] for la in layers[:-1] if la.module and calls[la.module] == 1}
    names = work.select(step, cands)
    branches = [next(la.module for la in layers if la.name == n) for n in names]
    if not branches:
        return
    if data.x_train is None:
        raise SimulatorError(f"{step.path} (early_exit): the exits are trained on a training "
                             f"set, and the data {data.name!r} has none")
    feats, final = _features(model, branches, data.x_train)
    y = data.y_train if data.y_train is not None else final.argmax(-1)
    torch.manual_seed(p.seed)
    heads = {b: ExitHead(f[:1], final.shape[-1], p.pool) for b, f in zip(branches, feats,
                                                                          strict=True)}
    for i, (head, f) in enumerate(zip(heads.values(), feats, strict=True)):
        train(head, f, y, epochs=p.epochs, lr=p.lr, seed=p.seed + i, progress=work.progress,
              phase=f"train exit {i} of {step.path}")
        head.eval()
    attach(model, heads)
    test_feats, test_final = _features(model, branches, data.x_test)
    with torch.no_grad():
        probs = [torch.softmax(h(f), -1).numpy() for h, f in zip(heads.values(), test_feats,
                                                                 strict=True)]
    probs.append(torch.softmax(test_final, -1).numpy())
    preds = [q.argmax(1) for q in probs]
    truth = None if data.y_test is None else data.y_test.numpy().reshape(-1)
    rates, accs = [], []
    for t in p.thresholds:
        leave = exit_decisions(probs, p.criterion, t)
        rates.append([float((leave == i).mean()) for i in range(len(probs))])
        pred = np.choose(leave, preds)
        accs.append(None if truth is None else float((pred == truth).mean()))
    op = p.thresholds.index(p.threshold) if p.threshold is not None else 0
    work.exits = Exits([f"exit{i}" for i in range(len(heads))], p.criterion,
                       list(p.thresholds), rates, accs, len(test_final), op)
    work.accuracy = accs[op]


class SampleParams(Params):
    samples: Annotated[int, Field(ge=2, le=4096, strict=True)] = 16


@method("sample_masks", "measure", "Albericio et al., 'Cnvlutin: ineffectual-neuron-free deep "
        "neural network computing', ISCA 2016 (runtime activation zeros); Rhu et al., HPCA "
        "2018 (activation sparsity measured per input)", SampleParams, model_level=True)
def sample_masks(work: Any, step: Any) -> None:
    """Keep the selected GEMM layers' input masks over the first ``samples`` calibration
    examples (module docstring; the trace's ``mask_set``)."""
    cands = {la.name: la.spec["op"] for la in work.imported.layers
             if la.spec.get("op") in ("conv2d", "linear", "matmul")}
    names = work.select(step, cands)
    work.mask_samples = max(work.mask_samples, step.params.samples)
    work.mask_layers.update(names)
