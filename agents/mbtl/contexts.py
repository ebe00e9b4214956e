"""Context grids for MBTL: which context variables vary, over which range, on how many points.

A grid of N contexts is returned two ways:
  values [N, C]  full context rows in the env spec's ``context_vars`` order (unvaried variables at their default)
  u      [N, D]  normalised coordinates of the D varied axes in [0, 1]: ``index / (num - 1)`` along each axis,
                 so distance = number of grid steps / (num - 1) whatever the spacing (linear or log)
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Optional

import numpy as np

from envs.spec import EnvSpec

SPACINGS = ("linear", "log")


@dataclasses.dataclass
class ContextAxis:
    """One varied context variable."""

    name: str = "length"  # context variable name (see ``omnitask envs <id>``)
    num: int = 10  # number of grid points along this axis
    low_factor: Optional[float] = 0.1  # lower end as a multiple of the default (``low`` wins; both None: var.low)
    high_factor: Optional[float] = 10.0  # upper end as a multiple of the default (``high`` wins; both None: var.high)
    low: Optional[float] = None  # absolute lower end (overrides low_factor)
    high: Optional[float] = None  # absolute upper end (overrides high_factor)
    spacing: str = "log"  # 'log' (geometric, natural for 0.1x-10x ranges) or 'linear'


def axis_values(spec: EnvSpec, axis: ContextAxis) -> np.ndarray:
    """[num] grid values of one axis, validated against the spec's allowed range."""
    if axis.name not in spec.context_names:
        raise ValueError(f"{spec.env_id}: unknown context variable {axis.name!r}; allowed: "
                         f"{', '.join(spec.context_names) or 'none'}")
    if axis.spacing not in SPACINGS:
        raise ValueError(f"context axis {axis.name}: spacing {axis.spacing!r}; allowed: {', '.join(SPACINGS)}")
    if axis.num < 2:
        raise ValueError(f"context axis {axis.name}: num must be >= 2, got {axis.num}")
    var = spec.context_vars[spec.context_names.index(axis.name)]
    low = axis.low if axis.low is not None else (
        var.default * float(axis.low_factor) if axis.low_factor is not None else var.low)
    high = axis.high if axis.high is not None else (
        var.default * float(axis.high_factor) if axis.high_factor is not None else var.high)
    if not low < high:
        raise ValueError(f"context axis {axis.name}: low {low:g} must be < high {high:g}")
    if low < var.low - 1e-9 * abs(var.low) or high > var.high + 1e-9 * abs(var.high):
        raise ValueError(f"context axis {axis.name}: [{low:g}, {high:g}] outside the allowed range "
                         f"[{var.low:g}, {var.high:g}] of {spec.env_id}")
    low, high = max(low, var.low), min(high, var.high)
    if axis.spacing == "log":
        if low <= 0:
            raise ValueError(f"context axis {axis.name}: log spacing needs low > 0, got {low:g}")
        return np.geomspace(low, high, axis.num)
    return np.linspace(low, high, axis.num)


def make_grid(spec: EnvSpec, axes: list[ContextAxis]) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian grid over the axes -> (values [N, C] float32, u [N, D] float32), N = prod(num)."""
    if not axes:
        raise ValueError("MBTL needs at least one context axis (mbtl.axes)")
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise ValueError(f"context axes repeat a variable: {names}")
    per_axis = [axis_values(spec, a) for a in axes]
    default = np.array([v.default for v in spec.context_vars], np.float64)
    rows, coords = [], []
    for idx in itertools.product(*[range(a.num) for a in axes]):
        row = default.copy()
        for a, i, vals in zip(axes, idx, per_axis):
            row[spec.context_names.index(a.name)] = vals[i]
        rows.append(row)
        coords.append([i / (a.num - 1) for a, i in zip(axes, idx)])
    return np.asarray(rows, np.float32), np.asarray(coords, np.float32)
