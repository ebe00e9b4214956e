"""``AtariVectorEnv``-based backend: one ale-py vector env per game, stepped asynchronously (send all, recv all).

ale-py does the frame skip (``frameskip=4``, ALE's per-frame sticky actions inside it), max-pooling, INTER_AREA
resize, grayscale and stacking in C++ threads. Its own episodic-life and reward-clipping switches stay OFF
(``AtariEnv`` applies both on top, so raw scores stay available; ale-py 0.12.1's ``episodic_life=True`` also resets
the whole game on the first life loss under ``SameStep``), as does ``use_fire_reset`` (not part of either
protocol).
"""
from __future__ import annotations

import numpy as np

from envs.atari.backend import Backend, BackendStep
from envs.atari.protocol import AtariProtocol


def vector_env_kwargs(proto: AtariProtocol, full_action_space: bool, num_threads: int = 0) -> dict:
    """The ``AtariVectorEnv`` keyword arguments that implement ``proto`` (also used by the benchmark's raw side)."""
    return dict(
        frameskip=proto.frame_skip, maxpool=True, stack_num=proto.stack, img_height=proto.size,
        img_width=proto.size, grayscale=proto.grayscale, noop_max=proto.noop_max,
        repeat_action_probability=proto.sticky_actions, full_action_space=full_action_space,
        max_num_frames_per_episode=proto.max_episode_frames, episodic_life=False, reward_clipping=False,
        use_fire_reset=False, autoreset_mode="SameStep", num_threads=num_threads)


class VectorBackend(Backend):
    """``games[k]`` gets ``counts[k]`` consecutive envs (env order = the concatenation of the groups)."""

    def __init__(self, games: list[str], counts: list[int], proto: AtariProtocol, full_action_space: bool,
                 num_threads: int = 0):
        from ale_py.vector_env import AtariVectorEnv  # lazy: the atari extra

        self.proto = proto
        self.num_envs = int(sum(counts))
        self._groups = []  # [(AtariVectorEnv, slice)]
        start = 0
        for game, n in zip(games, counts):
            env = AtariVectorEnv(game, int(n), **vector_env_kwargs(proto, full_action_space, num_threads))
            self._groups.append((env, slice(start, start + int(n))))
            start += int(n)

    def _join(self, parts: list[np.ndarray]) -> np.ndarray:
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def reset(self, seeds):
        obs, lives, frames = [], [], []
        for env, sl in self._groups:
            o, info = env.reset(seed=None if seeds is None else np.asarray(seeds[sl], np.int64))
            obs.append(o)
            lives.append(info["lives"])
            frames.append(info["episode_frame_number"])
        return (self._join(obs), self._join(lives).astype(np.int32, copy=False),
                self._join(frames).astype(np.int32, copy=False))

    def step(self, actions):
        for env, sl in self._groups:
            env.send(actions[sl])
        outs = [env.recv() for env, _ in self._groups]
        obs = self._join([o[0] for o in outs])  # [B, stack, H, W(, 3)] uint8
        terminated = self._join([o[2] for o in outs])
        truncated = self._join([o[3] for o in outs]) & ~terminated
        final = obs
        if any("final_obs" in o[4] for o in outs):
            # ale-py fills final_obs only for the envs that ended; other rows hold stale data.
            done = terminated | truncated
            final = obs.copy()
            raw_final = self._join([o[4]["final_obs"] if "final_obs" in o[4] else o[0] for o in outs])
            final[done] = raw_final[done]
        return BackendStep(
            frames=obs, reward=self._join([o[1] for o in outs]).astype(np.float32), terminated=terminated,
            truncated=truncated, final_frames=final,
            lives=self._join([o[4]["lives"] for o in outs]).astype(np.int32, copy=False),
            episode_frame=self._join([o[4]["episode_frame_number"] for o in outs]).astype(np.int32, copy=False))

    def close(self):
        groups, self._groups = getattr(self, "_groups", []), []
        for env, _ in groups:
            try:
                env.close()
            except Exception:  # already torn down
                pass
