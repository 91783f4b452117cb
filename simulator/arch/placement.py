"""Heterogeneous compute units: which PE array runs each GEMM layer (``placement:``).

An architecture may declare several PE arrays (``pe_arrays: {name: {impl: ...}, ...}``, e.g. an
XNOR array beside a small int8 array, or a systolic array beside an FFT unit) and a placement
rule, registered by name in :data:`PLACEMENTS`:

* ``by_precision``: each layer goes to the array whose datapath fits its precision with the
  least padding: an array fits when its PE kind accepts the layer's operands (its scheme and
  widths, e.g. an XNOR PE only 1-bit ones) and its widths are at least the layer's; the
  padding is the sum of the width differences (a bit-serial dimension pads nothing: it takes
  each layer's precision natively). Ties go to the array declared first; a layer without
  stated bits takes the first array's.
* ``by_op``: ``rules`` maps ``circulant`` (block-circulant weights), ``conv2d``, ``linear``,
  ``matmul`` or ``depthwise`` to an array (or ``vector_unit``, which computes block-circulant
  layers in the frequency domain); the first key that applies wins, in that order, else
  ``default``.
* ``explicit``: ``layers`` maps layer-name patterns to arrays (the first pattern that matches
  wins), else ``default``.

Pooling and element-wise layers always run on the vector unit. A layer the rule sends to an
array that cannot run it, or that no array fits, is a :class:`~simulator.errors.MappingError`
naming the layer and each unit with its reason. Layers run one after another: arrays never
overlap in time (the network's cycles are the sum over layers, as for one array), and idle
arrays still leak.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from simulator.errors import MappingError
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext, MappingCosts
from simulator.mapping.schedule import LayerMapping, check_mappable
from simulator.registry import ParamsModel, Registry
from simulator.workload.layer import Layer

PLACEMENTS: Registry[Any] = Registry("placement")
VECTOR = "vector_unit"


def refusal(unit: Any, layer: Layer) -> str | None:
    """Why ``unit`` cannot run ``layer`` at all (None: it may): its own ``accepts`` when it
    states one (e.g. an FFT unit runs block-circulant layers only), else its PE kind's check
    of the layer's operand precision and schemes."""
    accepts = getattr(unit, "accepts", None)
    if callable(accepts):
        return accepts(layer)
    kind = getattr(unit, "kind", None)
    if kind is None or not layer.filter_is_weight:
        return None
    w, a, ws = operand_bits(layer, unit)
    try:
        kind.check(layer.name, w, a, ws, layer.activation.scheme)
    except MappingError as exc:
        return str(exc)
    return None


def operand_bits(layer: Layer, unit: Any) -> tuple[int, int, str]:
    """The widths and weight scheme the unit's multiplier would see: the decoded codebook
    values, the activation width for de-quantised weights, else the layer's (or, unstated, the
    unit's own) bits."""
    a = layer.act_bits or unit.act_bits
    if layer.weight.codebook_size:
        return layer.weight.value_bits or unit.weight_bits, a, "int"
    if layer.weight.dequantize:
        return a, a, layer.activation.scheme
    return layer.weight_bits or unit.weight_bits, a, layer.weight.scheme


def padding(layer: Layer, unit: Any) -> int | None:
    """Bits of padding the unit spends on the layer (None: narrower than the layer)."""
    w, a, _ = operand_bits(layer, unit)
    kind = getattr(unit, "kind", None)
    serial_w = bool(getattr(kind, "serial_weights", False))
    serial_a = getattr(kind, "kind", "") == "bitserial" and not serial_w
    params = getattr(kind, "params", None)
    wide = {"w": getattr(params, "max_weight_bits", unit.weight_bits) if serial_w
            else unit.weight_bits,
            "a": getattr(params, "max_act_bits", unit.act_bits) if serial_a else unit.act_bits}
    if w > wide["w"] or a > wide["a"]:
        return None
    return (0 if serial_w else unit.weight_bits - w) + (0 if serial_a else unit.act_bits - a)


class _Rule:
    #: the rule's registered name; ``fit_by_width``: skip arrays narrower than the layer
    impl = ""
    fit_by_width = False

    def __init__(self, name: str, params: Any, **_: object) -> None:
        self.name, self.params = name, params

    def referenced(self) -> list[tuple[str, str]]:
        """``(param path, unit name)`` of every unit the rule names (checked on loading)."""
        return []


@PLACEMENTS.register("by_precision")
class ByPrecision(_Rule):
    """Module docstring (least padding; declaration order breaks ties)."""

    impl, fit_by_width = "by_precision", True

    class Params(ParamsModel):
        pass

    def candidates(self, layer: Layer, units: Mapping[str, Any]) -> list[str]:
        order = list(units)
        if layer.weight_bits is None and layer.act_bits is None and not layer.weight.dequantize:
            return order  # unstated precision: the first array's, as with one array
        pads = {n: padding(layer, u) for n, u in units.items()}
        fits = sorted((p, order.index(n), n) for n, p in pads.items() if p is not None)
        return [n for _, _, n in fits] + [n for n in order if pads[n] is None]


OpKey = Literal["circulant", "depthwise", "conv2d", "linear", "matmul"]


@PLACEMENTS.register("by_op")
class ByOp(_Rule):
    """Module docstring (``rules`` by op or structure, else ``default``)."""

    impl = "by_op"

    class Params(ParamsModel):
        rules: dict[OpKey, str] = Field(default_factory=dict)
        default: str

    def referenced(self) -> list[tuple[str, str]]:
        return [(f"rules.{k}", v) for k, v in self.params.rules.items()] + [
            ("default", self.params.default)]

    def candidates(self, layer: Layer, units: Mapping[str, Any]) -> list[str]:
        r = self.params.rules
        groups = int(layer.dims.get("groups", 1)) if layer.op == "conv2d" else 1
        keys = [k for k, hit in (("circulant", layer.weight.structure == "circulant"),
                                 ("depthwise", groups > 1 and layer.N == 1),
                                 (layer.op, True)) if hit and k in r]
        return [r[keys[0]] if keys else self.params.default]


@PLACEMENTS.register("explicit")
class Explicit(_Rule):
    """Module docstring (``layers``: pattern -> unit, the first match wins, else
    ``default``)."""

    impl = "explicit"

    class Params(ParamsModel):
        layers: dict[str, str] = Field(min_length=1)
        default: str | None = None

    def referenced(self) -> list[tuple[str, str]]:
        out = [(f"layers.{k}", v) for k, v in self.params.layers.items()]
        return out + ([("default", self.params.default)] if self.params.default else [])

    def candidates(self, layer: Layer, units: Mapping[str, Any]) -> list[str]:
        for pattern, unit in self.params.layers.items():
            if fnmatch.fnmatchcase(layer.name, pattern):
                return [unit]
        if self.params.default is None:
            raise MappingError(f"layer {layer.name!r}: no pattern of placement.layers "
                               f"({', '.join(self.params.layers)}) matches it and the "
                               f"placement has no default")
        return [self.params.default]


def place_and_map(layer: Layer, acc: Any, seed: int = 0, ctx: MappingContext = DEFAULT_CONTEXT,
                  unit_costs: Mapping[str, MappingCosts] | None = None) -> LayerMapping:
    """Map ``layer`` on the unit the placement rule chooses (module docstring): the first
    candidate that accepts it; a :class:`MappingError` naming every unit and its reason when
    none does.

    ``ctx`` (residency, buffer room left, the search's options) applies whichever unit runs
    the layer: every unit shares the one buffer hierarchy, so a tensor kept on chip by a layer
    on one array is the input of its consumer on another. ``unit_costs`` prices the tiling
    search of each PE array at its own energy entries (default: ``ctx.costs``)."""
    check_mappable(layer)

    def on(name: str, unit: Any) -> LayerMapping:
        c = ctx if unit_costs is None or name not in unit_costs else dataclasses.replace(
            ctx, costs=unit_costs[name])
        return unit.map_layer(layer, acc.buffers, seed, c)

    if layer.kind != "gemm":
        return on(VECTOR, acc.vector_unit)
    if acc.placement is None:
        return on(next(iter(acc.units)), acc.pe_array)
    reasons: dict[str, str] = {}
    names = acc.placement.candidates(layer, acc.units)
    for name in names:
        unit = acc.vector_unit if name == VECTOR else acc.units[name]
        if acc.placement.fit_by_width and padding(layer, unit) is None:
            w, a, _ = operand_bits(layer, unit)
            reasons[name] = (f"{w}-bit weights x {a}-bit activations are wider than its "
                             f"{unit.weight_bits} x {unit.act_bits}")
            continue
        why = refusal(unit, layer) if name != VECTOR else None
        if why is not None:
            reasons[name] = why
            continue
        try:
            return on(name, unit)
        except MappingError as exc:
            reasons[name] = str(exc)
    listed = "; ".join(f"{n}: {r}" for n, r in reasons.items())
    raise MappingError(f"layer {layer.name!r} can run on none of the units its placement "
                       f"({acc.placement.impl}) allows ({', '.join(names)}): {listed}")
