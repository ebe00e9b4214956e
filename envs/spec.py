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

    def check_actions(self, actions, num_envs: int) -> np.ndarray:
        """Host-side action check shared by the host adapters: one-line ValueError naming what is wrong.

        Discrete: shape ``[num_envs]``, an integer dtype, values in ``[0, num_actions)``. Continuous: shape
        ``[num_envs, *action.shape]``, real numbers, finite; values outside ``[low, high]`` are clipped by the env
        (agents sample unbounded Gaussians), NaN/inf are refused. Returns int32 / float32 actions (a new array).
        """
        act = np.asarray(actions)
        what = f"{self.env_id}: actions"
        if isinstance(self.action, DiscreteActionSpec):
            want, n = (num_envs,), self.action.num_actions
            if act.shape != want:
                raise ValueError(f"{what} must have shape {want} (one per env), got {act.shape}")
            if not np.issubdtype(act.dtype, np.integer):
                raise ValueError(f"{what} must be integers in [0, {n}), got dtype {act.dtype}")
            if act.size and (act.min() < 0 or act.max() >= n):
                raise ValueError(f"{what} must be in [0, {n}), got {act[(act < 0) | (act >= n)][0]}")
            return act.astype(np.int32)
        want = (num_envs, *self.action.shape)
        if act.shape != want:
            raise ValueError(f"{what} must have shape {want} [num_envs, *action_shape], got {act.shape}")
        if not (np.issubdtype(act.dtype, np.floating) or np.issubdtype(act.dtype, np.integer)):
            raise ValueError(f"{what} must be real numbers in [{self.action.low}, {self.action.high}], "
                             f"got dtype {act.dtype}")
        if not np.all(np.isfinite(act)):
            raise ValueError(f"{what} contain NaN/inf (allowed: finite values; [{self.action.low}, "
                             f"{self.action.high}], larger ones are clipped)")
        return act.astype(np.float32)

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
