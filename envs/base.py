"""The batched environment interface shared by every family (host simulators and JAX-native envs alike)."""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

from envs.spec import EnvSpec
from envs.timestep import TimeStep


class BatchedEnv(abc.ABC):
    """``num_envs`` environments stepped together; see ``envs.timestep`` for the autoreset semantics.

    Host families (ALE, MuJoCo, SUMO) implement this directly and return numpy arrays. JAX-native families also
    expose pure ``reset_fn/step_fn`` (see ``envs.jax_env``) so whole training loops can be jitted.
    """

    spec: EnvSpec
    num_envs: int

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> TimeStep:
        """Reset every env. ``seed`` re-seeds the batch (env ``i`` gets a stream derived from ``seed`` and ``i``)."""

    @abc.abstractmethod
    def step(self, actions: Any) -> TimeStep:
        """Step every env. ``actions``: ``[B]`` int for discrete specs, ``[B, *shape]`` float for box specs."""

    def render(self) -> np.ndarray:
        """RGB frames ``[B, H, W, 3]`` uint8 of the current states (families that can render override this)."""
        raise NotImplementedError(f"{self.spec.env_id} does not render")

    def close(self) -> None:
        """Release simulators/processes. Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: never raise from __del__
            pass


class EpisodeStats:
    """Running episode return/length bookkeeping for host families (numpy, [B])."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs, np.float32)
        self.lengths = np.zeros(num_envs, np.int32)

    def update(self, reward: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add this step; return (episode_return, episode_length) including it, and zero the finished ones."""
        self.returns += reward
        self.lengths += 1
        out = (self.returns.copy(), self.lengths.copy())
        self.returns[done] = 0.0
        self.lengths[done] = 0
        return out

    def reset(self) -> None:
        self.returns[:] = 0.0
        self.lengths[:] = 0
