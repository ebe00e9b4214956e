"""``AtariEnv``: the omnitask ``BatchedEnv`` over an Atari backend (episodic life, reward clipping, statistics).

Semantics on top of ``envs.timestep`` (same-step autoreset):
  * ``terminated`` = game over, or (``episodic_life``) a life lost. On a life loss the game is NOT reset: the next
    observation continues the same game (``final_observation == observation`` on that step), as in DeepMind's
    EpisodicLifeEnv. ``info['game_over']`` [B] bool marks the steps that really ended a game (incl. truncation).
  * ``reward`` is ``sign(raw)`` when ``clip_rewards`` (train mode), else the raw score change.
  * ``info['episode_return']`` / ``info['episode_length']`` count the whole GAME in raw score, across lives, and
    restart after ``game_over``: on a ``game_over`` step they are the game's score and agent-step length. (With
    episodic life a training loop that logs returns should log them where ``info['game_over']``.)
  * ``info['lives']`` [B] int32, ``info['episode_frame_number']`` [B] int32 (emulator frames since the game
    began: +4 per step), ``info['success']`` [B] bool (always False: Atari has no success notion),
    ``info['rgb']`` [B, 210, 160, 3] uint8 raw screens when made with ``raw_rgb=True``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from envs.atari.backend import Backend
from envs.atari.protocol import AtariProtocol, stacked_to_api
from envs.base import BatchedEnv, EpisodeStats
from envs.spec import EnvSpec
from envs.timestep import TimeStep


def env_seeds(seed: int, num_envs: int) -> np.ndarray:
    """Per-env emulator seeds ``[B]`` int64 in [0, 2^31) derived from (``seed``, env index)."""
    return np.array([int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, i]).generate_state(1)[0]) & 0x7FFFFFFF
                     for i in range(num_envs)], np.int64)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class AtariEnv(BatchedEnv):
    """A batch of Atari games behind the omnitask API. Build it with ``envs.make('atari/<Game>', ...)``."""

    def __init__(self, spec: EnvSpec, backend: Backend, proto: AtariProtocol, task_id: np.ndarray,
                 context: np.ndarray, seed: int, raw_rgb: bool, backend_name: str):
        self.spec = spec
        self.num_envs = backend.num_envs
        self.protocol = proto
        self.backend_name = backend_name  # 'vector' or 'ale'
        self._backend = backend
        self._raw_rgb = bool(raw_rgb)
        self._seed = int(seed)
        self._task_id = _readonly(np.asarray(task_id, np.int32).copy())  # [B] int32
        self._context = _readonly(np.asarray(context, np.float32).copy())  # [B, C] float32
        self._stats = EpisodeStats(self.num_envs)
        self._lives = np.zeros(self.num_envs, np.int32)  # [B] lives after the previous step
        self._started = False
        self._closed = False

    # ---- helpers -----------------------------------------------------------------------------------------------
    def _timestep(self, frames, final_frames, reward, terminated, truncated, ep_return, ep_length, game_over,
                  lives, episode_frame) -> TimeStep:
        obs = stacked_to_api(frames, self.protocol)
        final = obs if final_frames is frames else stacked_to_api(final_frames, self.protocol)
        info: dict[str, Any] = {
            "final_observation": final, "episode_return": ep_return, "episode_length": ep_length,
            "success": np.zeros(self.num_envs, bool), "game_over": game_over, "lives": lives,
            "episode_frame_number": episode_frame,
        }
        if self._raw_rgb:
            info["rgb"] = self._backend.rgb()
        return TimeStep(observation=obs, reward=reward, terminated=terminated, truncated=truncated,
                        task_id=self._task_id, context=self._context, info=info)

    def _check_actions(self, actions) -> np.ndarray:
        a = np.asarray(actions)
        n = self.spec.action.num_actions
        if a.shape != (self.num_envs,):
            raise ValueError(f"{self.spec.env_id}: actions must have shape ({self.num_envs},) (one per env), "
                             f"got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{self.spec.env_id}: actions must be integers in [0, {n}), got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= n):
            bad = a[(a < 0) | (a >= n)][0]
            raise ValueError(f"{self.spec.env_id}: action {bad} outside [0, {n}) "
                             f"({', '.join(self.spec.action.names)})")
        return a.astype(np.int32, copy=False)

    # ---- BatchedEnv API ----------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TimeStep:
        """Start a new game in every env. ``seed`` re-seeds (env i from (seed, i)); the first reset uses the
        ``make`` seed; later resets without a seed continue the emulators' random streams."""
        self._assert_open()
        if seed is not None:
            self._seed = int(seed)
        seeds = env_seeds(self._seed, self.num_envs) if (seed is not None or not self._started) else None
        frames, lives, ep_frame = self._backend.reset(seeds)
        self._started = True
        self._stats.reset()
        self._lives = lives.copy()
        B = self.num_envs
        zeros_b = np.zeros(B, bool)
        return self._timestep(frames, frames, np.zeros(B, np.float32), zeros_b, zeros_b.copy(),
                              np.zeros(B, np.float32), np.zeros(B, np.int32), zeros_b.copy(), lives, ep_frame)

    def step(self, actions) -> TimeStep:
        """Step every env by one agent step (4 emulator frames); see the module docstring for the semantics."""
        self._assert_open()
        if not self._started:
            raise RuntimeError(f"{self.spec.env_id}: call reset() before step()")
        out = self._backend.step(self._check_actions(actions))
        game_over = out.terminated | out.truncated
        terminated = out.terminated
        if self.protocol.episodic_life:
            terminated = terminated | ((out.lives < self._lives) & ~game_over)
        self._lives = out.lives
        ep_return, ep_length = self._stats.update(out.reward, game_over)
        reward = np.sign(out.reward) if self.protocol.clip_rewards else out.reward
        return self._timestep(out.frames, out.final_frames, reward, terminated, out.truncated, ep_return,
                              ep_length, game_over, out.lives, out.episode_frame)

    @property
    def render_fps(self) -> float:
        """Real-time env steps per second: the console's 60 frames/s over the frame skip (videos play at it)."""
        return 60.0 / self.protocol.frame_skip

    def render(self) -> np.ndarray:
        """Raw screens ``[B, 210, 160, 3]`` uint8 (per-env backend only: make with ``backend='ale'`` or
        ``raw_rgb=True``)."""
        self._assert_open()
        if not self._backend.supports_rgb:
            raise NotImplementedError(f"{self.spec.env_id}: render() needs the per-env backend; make the env with "
                                      f"backend='ale' or raw_rgb=True (this one uses backend={self.backend_name!r})")
        return self._backend.rgb()

    # ---- branching rollouts ------------------------------------------------------------------------------------
    def clone_state(self) -> list:
        """One state per env (emulator incl. RNG, frame stack, no-op stream, episode stats, lives), for
        ``restore_state``. States are independent objects: restoring state j into env i works for the same game."""
        self._assert_open()
        if not self._backend.supports_clone:
            raise NotImplementedError(f"{self.spec.env_id}: clone_state() needs the per-env backend; make the env "
                                      f"with backend='ale' (this one uses backend={self.backend_name!r})")
        if not self._started:
            raise RuntimeError(f"{self.spec.env_id}: call reset() before clone_state()")
        emu = self._backend.clone()
        return [AtariEnvState(emulator=emu[i], episode_return=float(self._stats.returns[i]),
                              episode_length=int(self._stats.lengths[i]), lives=int(self._lives[i]))
                for i in range(self.num_envs)]

    def restore_state(self, states: Sequence["AtariEnvState"]) -> None:
        """Put ``states[i]`` (from ``clone_state`` of any env of the same game) into env i."""
        self._assert_open()
        if not self._backend.supports_clone:
            raise NotImplementedError(f"{self.spec.env_id}: restore_state() needs backend='ale' "
                                      f"(this one uses backend={self.backend_name!r})")
        states = list(states)
        if len(states) != self.num_envs:
            raise ValueError(f"{self.spec.env_id}: restore_state needs {self.num_envs} states (one per env), "
                             f"got {len(states)}")
        for i, st in enumerate(states):
            if not isinstance(st, AtariEnvState):
                raise TypeError(f"restore_state: item {i} is a {type(st).__name__}, not from clone_state()")
        self._backend.restore([st.emulator for st in states])
        self._stats.returns[:] = [st.episode_return for st in states]
        self._stats.lengths[:] = [st.episode_length for st in states]
        self._lives = np.array([st.lives for st in states], np.int32)
        self._started = True

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._backend.close()

    def _assert_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.spec.env_id}: the env is closed")


@dataclasses.dataclass(frozen=True, eq=False)
class AtariEnvState:
    """One env's branch point: the backend's emulator state plus ``AtariEnv``'s own bookkeeping."""

    emulator: Any  # envs.atari.ale_backend.EmulatorState (emulator incl. RNG, frame stack, no-op stream, screen)
    episode_return: float  # raw game score so far
    episode_length: int  # agent steps so far in this game
    lives: int  # lives after the last step (for episodic-life detection)
