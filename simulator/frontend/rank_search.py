"""Low rank as a choice: each layer's SVD rank chosen by an accuracy or an energy budget.

Candidates are the ranks that make the two layers cheaper than the dense one,
``r (K + N) < K N`` (so ``r < K N / (K + N)``): the powers of two below that bound and the
bound itself.

* ``max_energy_fraction: f`` on ``arch`` (a file, or a bundled one such as
  ``arch_configs/edge_8x8.yaml`` wherever the recipe runs): each layer gets the largest
  candidate rank whose two layers (``conv k x k C -> r`` + ``conv 1 x 1 r -> N``, or ``linear
  K -> r`` + ``linear r -> N``) simulate on ``arch`` to at most ``f`` times the energy of the
  dense layer there, both at the architecture's precision (later quantisation steps are not
  known yet); no candidate within the budget leaves the layer whole. Largest rank: the most
  accurate factorisation the budget allows.
* ``max_accuracy_drop: d``: on ``samples`` training examples (never the held-out set the
  result is reported on), each layer alone gets the smallest candidate rank whose top-1
  accuracy is within ``d / L`` of the unsplit model's (binary search, ``L`` layers); then all
  are applied together and, while the joint drop exceeds ``d``, the per-layer share is halved
  and the search repeated (at most 4 rounds; the last choice is kept, and said so). The drop is
  measured before fine-tuning, so the fine-tuned result is usually better (a conservative
  choice). The greedy per-layer split of the budget follows the per-layer rank selection of
  Denton et al. (NeurIPS 2014) and Zhang et al. ("Accelerating very deep
  convolutional networks for classification and detection", TPAMI 2016, rank selection by a
  per-layer criterion under a whole-model budget).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from simulator.errors import SimulatorError
from simulator.frontend.imported import ImportedLayer
from simulator.frontend.lowrank import split_layer
from simulator.frontend.recipe import Step
from simulator.frontend.structured import LowRankParams
from simulator.frontend.training import evaluate
from simulator.workload.geometry import conv_out, pair


def candidate_ranks(la: ImportedLayer) -> list[int]:
    """Ranks at which the split is cheaper than the dense layer (module docstring)."""
    assert la.weight is not None
    n, k = la.weight.shape[0], int(la.weight.size // la.weight.shape[0])
    bound = (k * n - 1) // (k + n)
    out = [1 << i for i in range(bound.bit_length()) if 1 << i <= bound]
    return sorted({*out, bound} - {0})


def factor_specs(la: ImportedLayer, r: int) -> list[dict[str, Any]]:
    """The network-spec layers the split at rank ``r`` becomes."""
    s = la.spec
    if s["op"] == "conv2d":
        (kh, kw), (sh, sw) = pair(s["kernel"]), pair(s.get("stride", 1))
        (ph, pw), (dh, dw) = pair(s.get("padding", 0)), pair(s.get("dilation", 1))
        ho, wo = conv_out(s["in_h"], kh, sh, ph, dh), conv_out(s["in_w"], kw, sw, pw, dw)
        return [{**s, "name": f"{la.name}.0", "out_channels": r},
                {"name": f"{la.name}.1", "op": "conv2d", "in_channels": r,
                 "out_channels": s["out_channels"], "in_h": ho, "in_w": wo, "kernel": 1}]
    return [{**s, "name": f"{la.name}.0", "out_features": r},
            {**s, "name": f"{la.name}.1", "in_features": r}]


def _energy_pj(arch: Any, specs: list[dict[str, Any]]) -> float:
    from simulator.simulation import simulate
    from simulator.workload.spec import parse_network

    rep = simulate(arch, parse_network({"name": "rank-search", "layers": specs}))
    return float(rep.totals["energy_pj"])


def _by_energy(p: LowRankParams, layers: list[ImportedLayer]) -> dict[str, int | None]:
    from simulator.arch.loader import load_arch

    assert p.arch is not None and p.max_energy_fraction is not None
    path = Path(p.arch)
    bundled = Path(__file__).resolve().parents[2] / path  # a recipe names a bundled file
    arch = load_arch(path if path.is_file() or not bundled.is_file() else bundled)
    out: dict[str, int | None] = {}
    for la in layers:
        dense = _energy_pj(arch, [la.spec])
        fits = [r for r in candidate_ranks(la)
                if _energy_pj(arch, factor_specs(la, r)) <= p.max_energy_fraction * dense]
        out[la.name] = max(fits) if fits else None
    return out


def _by_accuracy(model: nn.Module, step: Step, layers: list[ImportedLayer], x: Any,
                 y: Any, source: Any) -> tuple[dict[str, int | None], float, float]:
    p = step.params
    assert isinstance(p, LowRankParams) and p.max_accuracy_drop is not None

    def accuracy(ranks: dict[str, int | None]) -> float:
        m = copy.deepcopy(model)
        for la in layers:
            r = ranks.get(la.name)
            if r is not None:
                split_layer(m, la, step, source, {}, r)
        return evaluate(m, x, y)

    base = accuracy({})
    share = p.max_accuracy_drop / max(len(layers), 1)
    chosen: dict[str, int | None] = {}
    joint = base
    for _ in range(4):
        chosen = {}
        for la in layers:
            cands, pick = candidate_ranks(la), None
            lo, hi = 0, len(cands) - 1
            while lo <= hi:  # smallest rank within the share (accuracy grows with rank)
                mid = (lo + hi) // 2
                if base - accuracy({la.name: cands[mid]}) <= share:
                    pick, hi = cands[mid], mid - 1
                else:
                    lo = mid + 1
            chosen[la.name] = pick
        joint = accuracy(chosen)
        if base - joint <= p.max_accuracy_drop:
            break
        share /= 2
    return chosen, base, joint


def choose_ranks(work: Any, step: Step,
                 layers: list[ImportedLayer]) -> dict[str, int | None] | None:
    """Each layer's rank under the step's budget (None: the step fixes the rank itself);
    a layer mapped to None is left whole. The choice is added to ``work.notes``."""
    p = step.params
    if not isinstance(p, LowRankParams) or (p.max_accuracy_drop is None
                                            and p.max_energy_fraction is None):
        return None
    if p.max_energy_fraction is not None:
        ranks = _by_energy(p, layers)
        how = f"energy on {p.arch} at most {p.max_energy_fraction:g} of the dense layer's"
    else:
        data = work.data
        if data.x_train is None or data.y_train is None:
            raise SimulatorError(f"{step.path} (svd): max_accuracy_drop needs a training set "
                                 f"to choose ranks on (the held-out set is for the result)")
        ranks, base, joint = _by_accuracy(work.model, step, layers, data.x_train[:p.samples],
                                          data.y_train[:p.samples], work.recipe)
        budget = p.max_accuracy_drop or 0.0
        over = "; over the budget after 4 rounds" if base - joint > budget else ""
        how = (f"top-1 drop at most {p.max_accuracy_drop:g} on {min(p.samples, len(data.x_train))}"
               f" training samples (before fine-tuning: {base:.4f} -> {joint:.4f}{over})")
    chosen = ", ".join(f"{n} {'whole' if r is None else r}" for n, r in ranks.items())
    work.notes.append(f"{step.path} (svd): ranks chosen by {how}: {chosen}")
    return ranks
