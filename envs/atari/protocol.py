"""The two Atari preprocessing protocols (by name) and the frame preprocessing both backends share.

``world_model`` (ScaleZero/UniZero, LightZero's Atari wrappers): NoFrameskip semantics, max-and-skip 4, no-op reset
    up to 30, 64x64 RGB, no frame stack, no sticky actions; episodic life and reward clipping in ``mode='train'``
    only.
``dqn`` (Dopamine / PVN, Machado et al. 2018): max-and-skip 4, no-op reset up to 30, 84x84 grayscale, 4-frame
    stack, sticky actions 0.25 in BOTH train and eval mode (Dopamine and the PVN paper use 0.25 always), reward
    clipping in ``mode='train'``, no episodic life (Machado et al. recommend against it; Dopamine's default).

In every protocol the frame skip is done exactly once (ALE's own ``frame_skip`` setting stays 1 in the per-env
backend; ``AtariVectorEnv`` gets ``frameskip=4`` and nothing skips on top of it). Rewards reported in
``info['episode_return']`` are always the raw game score, clipping affects ``TimeStep.reward`` only.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping

import numpy as np

PROTOCOLS = ("world_model", "dqn")
MODES = ("train", "eval")
FRAME_SKIP = 4  # max-and-skip 4 in both protocols
MAX_EPISODE_FRAMES = 108_000  # 30 minutes of play = 27,000 agent steps (ALE v5's limit)


@dataclasses.dataclass(frozen=True)
class AtariProtocol:
    """Resolved preprocessing settings of one Atari env batch (protocol defaults plus user overrides)."""

    name: str  # 'world_model' or 'dqn'
    mode: str  # 'train' or 'eval'
    size: int  # observation height = width in pixels (64 world_model, 84 dqn)
    grayscale: bool  # True: luminance (ALE's palette grayscale); False: RGB
    stack: int  # frames stacked along the last axis (1 world_model, 4 dqn)
    frame_skip: int  # emulator frames per agent step, max-pooled over the last two
    noop_max: int  # reset takes a uniform 0..noop_max-1 raw NOOP frames (ale-py's range; 0: none)
    sticky_actions: float  # ALE repeat_action_probability per emulator frame
    episodic_life: bool  # a lost life ends the agent's episode (terminated=True) without resetting the game
    clip_rewards: bool  # TimeStep.reward = sign(raw reward)
    max_episode_frames: int  # emulator frames of play (no-ops excluded) before truncation

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """Per-env observation shape: ``[H, W, stack]`` grayscale or ``[H, W, 3]`` RGB (stack 1 only)."""
        if self.grayscale:
            return (self.size, self.size, self.stack)
        if self.stack == 1:
            return (self.size, self.size, 3)
        return (self.size, self.size, self.stack, 3)


def _choose(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"Atari {what} {value!r} is not supported{hint}; allowed: {', '.join(map(repr, allowed))}")
    return value


def make_protocol(protocol: str = "dqn", mode: str = "train", *, sticky_actions: float | None = None,
                  noop_max: int | None = None, episodic_life: bool | None = None, clip_rewards: bool | None = None,
                  max_episode_frames: int = MAX_EPISODE_FRAMES) -> AtariProtocol:
    """Protocol defaults for (``protocol``, ``mode``); any override that is not None replaces its default."""
    protocol = _choose(protocol, PROTOCOLS, "protocol")
    mode = _choose(mode, MODES, "mode")
    train = mode == "train"
    if protocol == "world_model":
        base = dict(size=64, grayscale=False, stack=1, sticky_actions=0.0, episodic_life=train, clip_rewards=train)
    else:
        base = dict(size=84, grayscale=True, stack=4, sticky_actions=0.25, episodic_life=False, clip_rewards=train)
    overrides: Mapping[str, Any] = dict(sticky_actions=sticky_actions, noop_max=noop_max,
                                        episodic_life=episodic_life, clip_rewards=clip_rewards)
    for key, value in overrides.items():
        if value is not None:
            base[key] = value
    base.setdefault("noop_max", 30)
    if not 0.0 <= float(base["sticky_actions"]) <= 1.0:
        raise ValueError(f"sticky_actions must be a probability in [0, 1], got {base['sticky_actions']}")
    if int(base["noop_max"]) < 0:
        raise ValueError(f"noop_max must be >= 0, got {base['noop_max']}")
    if int(max_episode_frames) < FRAME_SKIP:
        raise ValueError(f"max_episode_frames must be >= {FRAME_SKIP}, got {max_episode_frames}")
    return AtariProtocol(name=protocol, mode=mode, frame_skip=FRAME_SKIP, sticky_actions=float(base["sticky_actions"]),
                         noop_max=int(base["noop_max"]), episodic_life=bool(base["episodic_life"]),
                         clip_rewards=bool(base["clip_rewards"]), max_episode_frames=int(max_episode_frames),
                         size=base["size"], grayscale=base["grayscale"], stack=base["stack"])


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """``[210, 160]`` or ``[210, 160, 3]`` uint8 -> ``[size, size(, 3)]`` uint8 with area interpolation.

    INTER_AREA is what ``AtariVectorEnv`` uses internally: the per-env backend and the vector backend agree
    bit-for-bit (tested).
    """
    import cv2  # lazy: the atari extra

    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def stacked_to_api(frames: np.ndarray, proto: AtariProtocol) -> np.ndarray:
    """Backend frame stacks ``[B, stack, H, W(, 3)]`` -> API observations (a view, no copy).

    Grayscale: ``[B, H, W, stack]`` (channels last, what flax convs take). RGB with stack 1: ``[B, H, W, 3]``.
    """
    if proto.grayscale:
        return frames.transpose(0, 2, 3, 1)
    if proto.stack == 1:
        return frames[:, 0]
    return frames.transpose(0, 2, 3, 1, 4)
