"""Static descriptions of a batched environment: observations, actions, tasks and context variables.

Specs are frozen dataclasses so they can be compared, printed by ``omnitask envs`` and closed over by jitted code.
"""
from __future__ import annotations

import dataclasses
import difflib
import textwrap
from typing import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """Shape/dtype/bounds of one (un-batched) array, e.g. one observation."""

    shape: tuple[int, ...]
    dtype: str
    low: float | None = None
    high: float | None = None

    def check(self, batch: np.ndarray, batch_dims: int = 1, what: str = "array") -> None:
        """Raise ValueError unless ``batch`` is ``[*batch, *shape]`` of this dtype within bounds."""
        batch = np.asarray(batch)
        if tuple(batch.shape[batch_dims:]) != tuple(self.shape):
            raise ValueError(f"{what}: shape {batch.shape[batch_dims:]} != spec {self.shape}")
        if np.dtype(batch.dtype) != np.dtype(self.dtype):
            raise ValueError(f"{what}: dtype {batch.dtype} != spec {self.dtype}")
        if self.low is not None and batch.size and batch.min() < self.low:
            raise ValueError(f"{what}: min {batch.min()} < spec low {self.low}")
        if self.high is not None and batch.size and batch.max() > self.high:
            raise ValueError(f"{what}: max {batch.max()} > spec high {self.high}")


@dataclasses.dataclass(frozen=True)
class DiscreteActionSpec:
    """``num_actions`` discrete actions; ``names`` are human-readable meanings (e.g. ALE's 'UPFIRE')."""

    num_actions: int
    names: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self) -> str:
        return "int32"


@dataclasses.dataclass(frozen=True)
class BoxActionSpec:
    """Continuous actions in ``[low, high]^shape``."""

    shape: tuple[int, ...]
    low: float = -1.0
    high: float = 1.0

    @property
    def dtype(self) -> str:
        return "float32"


ActionSpec = DiscreteActionSpec | BoxActionSpec


@dataclasses.dataclass(frozen=True)
class ContextVar:
    """One context variable (an environment parameter a contextual-RL study varies)."""

    name: str
    low: float
    high: float
    default: float
    description: str = ""

    def __post_init__(self) -> None:
        if not self.low <= self.default <= self.high:
            raise ValueError(f"context var {self.name}: default {self.default} outside [{self.low}, {self.high}]")


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Everything an agent needs to know about a batched environment before it starts."""

    env_id: str
    observation: ArraySpec
    action: ActionSpec
    task_names: tuple[str, ...] = ("default",)
    context_vars: tuple[ContextVar, ...] = ()
    max_episode_steps: int | None = None

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def context_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.context_vars)

    @property
    def default_context(self) -> dict[str, float]:
        return {v.name: v.default for v in self.context_vars}

    def resolve_context(self, context: Mapping[str, float | Sequence[float]] | None, num_envs: int) -> np.ndarray:
        """Validate a user context and return it as a ``[num_envs, num_context_vars]`` float32 array.

        Each value is a scalar (same for every env) or a sequence of ``num_envs`` values (one per env).
        Unknown names and out-of-range values are refused with the allowed names/ranges in the message.
        """
        context = dict(context or {})
        unknown = [k for k in context if k not in self.context_names]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, self.context_names, n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            allowed = ", ".join(self.context_names) or "none"
            raise ValueError(f"{self.env_id}: unknown context variable(s) {', '.join(hints)}; allowed: {allowed}")
        out = np.empty((num_envs, len(self.context_vars)), np.float32)
        for j, var in enumerate(self.context_vars):
            value = np.asarray(context.get(var.name, var.default), np.float64)
            if value.ndim == 0:
                value = np.full((num_envs,), value)
            if value.shape != (num_envs,):
                raise ValueError(
                    f"{self.env_id}: context {var.name!r} must be a scalar or have {num_envs} values (one per env), "
                    f"got shape {value.shape}")
            if not np.all(np.isfinite(value)) or value.min() < var.low or value.max() > var.high:
                bad = value[(~np.isfinite(value)) | (value < var.low) | (value > var.high)][0]
                raise ValueError(
                    f"{self.env_id}: context {var.name}={bad:g} is outside its allowed range "
                    f"[{var.low:g}, {var.high:g}] (default {var.default:g})")
            out[:, j] = value
        return out

    def describe(self) -> str:
        """Multi-line human-readable summary (used by ``omnitask envs``)."""
        act = (f"discrete({self.action.num_actions})" if isinstance(self.action, DiscreteActionSpec)
               else f"box{self.action.shape} in [{self.action.low}, {self.action.high}]")
        tasks = textwrap.wrap(", ".join(self.task_names), width=100, break_on_hyphens=False)  # all of them
        lines = [f"{self.env_id}", f"  observation: {self.observation.shape} {self.observation.dtype}",
                 f"  action: {act}", f"  tasks: {len(self.task_names)}"]
        lines += [f"    {line}" for line in tasks]
        for v in self.context_vars:
            lines.append(f"  context {v.name}: [{v.low:g}, {v.high:g}] default {v.default:g}  {v.description}")
        return "\n".join(lines)
