"""The one pytree every environment family returns.

Autoreset semantics (the same for every family, chosen once):
  *same-step autoreset*. When env ``i`` ends an episode on a ``step`` call (``terminated[i] or truncated[i]``),
  that same ``TimeStep`` carries the reward of the final transition and the done flags, while
  ``observation[i]`` is already the FIRST observation of the next episode. The last observation of the finished
  episode is in ``info['final_observation'][i]`` (equal to ``observation[i]`` on non-final steps) so agents can
  bootstrap through truncation. ``info['episode_return']`` / ``info['episode_length']`` hold the running totals of
  the episode that this step belongs to, i.e. the finished episode's totals on its final step.
  No step is ever wasted on a reset, and the next ``step`` acts in the new episode.

Learning episodes vs. games: a family may end a *learning* episode without ending the game (Atari episodic life:
a lost life sets ``terminated`` but play continues). Such families also report ``info['game_over']``, and the
episode totals run over the whole game. Code that logs returns should use ``episode_over(ts)``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

# Keys every family puts in ``TimeStep.info`` (more may be added per family, always batch-leading arrays).
INFO_KEYS = ("final_observation", "episode_return", "episode_length", "success")


class TimeStep(NamedTuple):
    """A batch of environment transitions. ``B`` = number of envs. Arrays are numpy for host envs, jax in jit."""

    observation: Any  # [B, *obs_shape] spec.observation.dtype
    reward: Any  # [B] float32
    terminated: Any  # [B] bool   -- true terminal state (no bootstrap)
    truncated: Any  # [B] bool   -- time limit / simulator restart (bootstrap from final_observation)
    task_id: Any  # [B] int32  -- index into spec.task_names
    context: Any  # [B, C] float32 -- context variable values, order of spec.context_vars
    info: dict  # see INFO_KEYS; every value batch-leading [B, ...]

    @property
    def done(self):
        return self.terminated | self.truncated


def episode_over(ts: TimeStep):
    """[B] bool: the steps on which ``info['episode_return']`` is a finished episode's (game's) total."""
    if "game_over" in ts.info:
        return np.asarray(ts.info["game_over"], bool)
    return np.asarray(ts.terminated) | np.asarray(ts.truncated)


def episode_success(ts: TimeStep):
    """[B] bool: whether each env's episode succeeded, read on the step that ends it. Meta-World counts an episode
    as a success if ``info['success']`` was 1 at any step (its evaluation methodology), which its env reports as
    ``info['episode_success']``; families without it give their per-step ``info['success']``."""
    return np.asarray(ts.info.get("episode_success", ts.info["success"]), bool)


def check_timestep(ts: TimeStep, spec, num_envs: int) -> None:
    """Assert a host TimeStep matches its spec (used by conformance tests and debug mode)."""
    spec.observation.check(np.asarray(ts.observation), what="observation")
    spec.observation.check(np.asarray(ts.info["final_observation"]), what="info.final_observation")
    for name, dtype, shape in (("reward", np.float32, (num_envs,)), ("terminated", np.bool_, (num_envs,)),
                               ("truncated", np.bool_, (num_envs,)), ("task_id", np.int32, (num_envs,)),
                               ("context", np.float32, (num_envs, len(spec.context_vars)))):
        arr = np.asarray(getattr(ts, name))
        if arr.shape != shape or arr.dtype != dtype:
            raise AssertionError(f"{name}: got {arr.shape} {arr.dtype}, want {shape} {np.dtype(dtype)}")
    for key in INFO_KEYS:
        if key not in ts.info:
            raise AssertionError(f"info is missing {key!r}")
        if np.asarray(ts.info[key]).shape[0] != num_envs:
            raise AssertionError(f"info[{key!r}] is not batch-leading")
    if np.any((np.asarray(ts.task_id) < 0) | (np.asarray(ts.task_id) >= spec.num_tasks)):
        raise AssertionError("task_id outside [0, num_tasks)")
