"""What ``AtariEnv`` needs from an emulator backend: batched reset/step of raw games with frame preprocessing.

Two implementations behind this one interface:
  ``VectorBackend`` (``vector_backend.py``): ale-py's ``AtariVectorEnv`` (native C++ preprocessing and threads),
      one per game; fastest; no clone/restore, no raw RGB, ROM-default game mode/difficulty only.
  ``AleBackend`` (``ale_backend.py``): one ``ale_py.ALEInterface`` per env with the same preprocessing done in
      numpy/opencv; supports clone/restore, raw RGB frames, per-env game modes/difficulties and any game mix.
Backends know nothing about episodic life, reward clipping or episode statistics: ``AtariEnv`` adds those on top,
identically for both.
"""
from __future__ import annotations

import abc
from typing import Any, NamedTuple

import numpy as np


class BackendStep(NamedTuple):
    """One batched backend step with same-step autoreset of finished games."""

    frames: np.ndarray  # [B, stack, H, W(, 3)] uint8 -- first frames of the new game where game_end
    reward: np.ndarray  # [B] float32 raw (unclipped) game reward summed over the skipped frames
    terminated: np.ndarray  # [B] bool -- game over
    truncated: np.ndarray  # [B] bool -- max_episode_frames reached (and not game over)
    final_frames: np.ndarray  # [B, stack, H, W(, 3)] uint8 -- last frames of the finished game (== frames elsewhere)
    lives: np.ndarray  # [B] int32 -- lives left (of the new game where it was reset)
    episode_frame: np.ndarray  # [B] int32 -- emulator frames since the (new) game began


class Backend(abc.ABC):
    """A batch of ``num_envs`` raw Atari games with max-and-skip, resize and frame stacking."""

    num_envs: int
    supports_clone: bool = False
    supports_rgb: bool = False

    @abc.abstractmethod
    def reset(self, seeds: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reset every game; ``seeds`` [B] re-seeds env i's emulator and no-op stream (None: keep streams).

        Returns ``(frames [B, stack, H, W(, 3)] uint8, lives [B] int32, episode_frame [B] int32)``."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> BackendStep:
        """``actions`` [B] int32 indices into the action set; finished games are reset in the same call."""

    def rgb(self) -> np.ndarray:
        """``[B, 210, 160, 3]`` uint8 raw screens of the current states."""
        raise NotImplementedError

    def clone(self) -> list[Any]:
        """One opaque emulator+preprocessing state per env."""
        raise NotImplementedError

    def restore(self, states: list[Any]) -> None:
        """Inverse of ``clone``; ``states[i]`` goes into env i."""
        raise NotImplementedError

    def close(self) -> None:
        """Release emulators. Idempotent."""
