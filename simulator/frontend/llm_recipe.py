"""A compression recipe applied to an LLM spec: its steps become the spec's ``quantisation``.

An LLM spec has no weights to change, so a step sets what the hardware sees of the layers it
selects (:meth:`~simulator.frontend.recipe.Step.targets` over the spec's weight layers:
``attn.q_proj`` ... ``mlp.down_proj``, ``lm_head``): ``weight_only`` -> group-quantised weights
de-quantised before the MAC (W4A16); ``fixed_point`` -> integer weights computed at their
width (W8A8 with ``act_fixed_point``); ``act_fixed_point`` -> the activation bits; ``n_m`` ->
``N:M`` structured weights; ``magnitude`` -> unstructured density; ``kv_cache`` -> the KV
cache's bits and scales. Any other method needs real weights: a :class:`RecipeError` says so.
"""

from __future__ import annotations

from typing import Any

from simulator.frontend.recipe import Recipe, RecipeError
from simulator.workload.llm import LLMSpec


def apply_recipe(spec: LLMSpec, recipe: Recipe) -> LLMSpec:
    """``spec`` with ``recipe``'s steps in its ``quantisation`` (module docstring)."""
    names = [n for n, _, _ in spec.weight_layers()]
    ops = dict.fromkeys(names, "linear")
    q: dict[str, Any] = spec.quantisation.model_dump()
    act_bits = spec.act_bits
    errors = []
    for step in recipe.steps:
        picked = step.targets(names, recipe.source, ops=ops)
        skip = [n for n in names if n not in picked]
        p = step.params.model_dump()
        m = step.method.name
        if m == "weight_only":
            q["weights"] = {**p, "dequantize": True, "exclude": skip}
        elif m == "fixed_point":
            q["weights"] = {"bits": p["bits"], "group_size": None, "symmetric": True,
                            "scale_bits": 32, "dequantize": False, "exclude": skip}
        elif m == "act_fixed_point":
            act_bits = p["bits"]
        elif m == "n_m":
            q["weight_structure"] = {"structure": f"{p['n']}:{p['m']}", "exclude": skip}
        elif m == "magnitude":
            q["weight_structure"] = {"structure": "unstructured",
                                     "density": 1.0 - p["sparsity"], "exclude": skip}
        elif m == "kv_cache":
            q["kv_cache"] = p
        else:
            errors.append((f"{step.path}.method", f"{m!r} needs the model's weights; an LLM "
                                                  f"spec has none (compress the model itself)"))
    if errors:
        raise RecipeError(recipe.source, errors)
    return LLMSpec.model_validate({**spec.model_dump(), "quantisation": q, "act_bits": act_bits,
                                   "name": f"{spec.name}+{recipe.name}"})
