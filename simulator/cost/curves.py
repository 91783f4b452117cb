"""Published numbers with their sources, and curves through published points.

**Fits** (:func:`power_law`): through published points ``(x_i, y_i)`` the value at ``x`` is
interpolated linearly in log-log space (a power law on each segment, so every published point
is reproduced exactly). Outside the points it follows ``y ~ x^exponent`` from the nearest
point: 2 for multipliers (the partial-product array grows with the square of the width),
1 for adders, and the slope of the nearest segment for SRAM capacity. A multiplier of unequal
operand widths ``w x a`` is costed at the geometric mean width ``sqrt(w a)`` (energy ~ w a).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from simulator.errors import EnergyError


class Sourced(BaseModel):
    """A number with its unit and citation."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    value: float = Field(ge=0, allow_inf_nan=False)
    unit: str
    source: str = Field(min_length=1)


class Curve(BaseModel):
    """Published points ``x -> y`` and the extrapolation exponent (``None``: nearest slope)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    points: dict[float, float] = Field(min_length=1)
    exponent: float | None = None
    unit: str
    source: str = Field(min_length=1)

    def at(self, x: float) -> float:
        return power_law(self.points, x, self.exponent)


def power_law(points: Mapping[float, float], x: float, exponent: float | None = None) -> float:
    """Log-log interpolation through ``points``; ``y ~ x^exponent`` outside (module docstring)."""
    if not (x > 0 and math.isfinite(x)):
        raise EnergyError(f"a size or bit width must be positive and finite (got {x})")
    xs = sorted(points)
    if x in points:
        return float(points[x])
    if len(xs) == 1 and exponent is None:
        raise EnergyError("a one-point curve needs an extrapolation exponent")

    def slope(a: float, b: float) -> float:
        return math.log(points[b] / points[a]) / math.log(b / a)

    if x < xs[0]:
        k = exponent if exponent is not None else slope(xs[0], xs[1])
        return float(points[xs[0]] * (x / xs[0]) ** k)
    if x > xs[-1]:
        k = exponent if exponent is not None else slope(xs[-2], xs[-1])
        return float(points[xs[-1]] * (x / xs[-1]) ** k)
    hi = next(v for v in xs if v > x)
    lo = max(v for v in xs if v < x)
    return float(points[lo] * (x / lo) ** slope(lo, hi))
