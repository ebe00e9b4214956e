"""``SumoBatchedEnv``: the BatchedEnv over a pool of SUMO worker processes.

``N`` simulations, each with ``A`` agents (lights of a grid, or 1), give a batch of ``B = N * A`` agents; agent
``b`` belongs to simulation ``b // A``. All agents of a simulation end their episodes together. Numpy in, numpy out.
``context`` is given per simulation ``[N, C]`` and reported per agent ``[B, C]``. ``inline=True`` runs a single
simulation in the calling process instead of a worker (see ``worker.InlinePool`` for the trade-offs).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from envs.base import BatchedEnv, EpisodeStats
from envs.spec import EnvSpec
from envs.timestep import TimeStep
from envs.traffic.worker import InlinePool, WorkerPool, step_layout, unpack_step


def episode_seed(base: int, sim_index: int, episode: int) -> int:
    """Seed of episode ``episode`` of simulation ``sim_index`` (a deterministic function of the batch seed)."""
    ss = np.random.SeedSequence([int(base) & 0xFFFFFFFF, int(sim_index), int(episode)])
    return int(ss.generate_state(1)[0] % (2**31 - 1))


class SumoBatchedEnv(BatchedEnv):
    """Host-side batch of SUMO simulations (see module docstring for the batch layout)."""

    def __init__(self, spec: EnvSpec, cfgs: Sequence[Any], agents_per_sim: int, context: np.ndarray, seed: int,
                 info_shapes: dict | None = None, step_timeout_s: float = 60.0, inline: bool = False):
        self.spec = spec
        self.num_sims = len(cfgs)
        self.agents_per_sim = int(agents_per_sim)
        self.num_envs = self.num_sims * self.agents_per_sim
        self.context = np.repeat(np.asarray(context, np.float32), self.agents_per_sim, axis=0)  # [B, C]
        self._info_shapes = dict(info_shapes or {})  # name -> per-agent shape
        self._layout = step_layout(self.agents_per_sim, spec.observation.shape, self._info_shapes)
        self._seed = int(seed)
        self._episode = np.zeros(self.num_sims, np.int64)  # episode index per simulation
        self._seed_memo: dict[tuple[int, int, int], int] = {}
        self._stats = EpisodeStats(self.num_envs)
        self._obs: np.ndarray | None = None  # [B, *obs_shape] last observation
        self._task_id = np.zeros(self.num_envs, np.int32)
        self.sim_index = np.repeat(np.arange(self.num_sims, dtype=np.int32), self.agents_per_sim)  # [B]
        self.agent_index = np.tile(np.arange(self.agents_per_sim, dtype=np.int32), self.num_sims)  # [B]
        self.pool = InlinePool(cfgs) if inline else WorkerPool(cfgs, timeout_s=step_timeout_s)

    # -------------------------------------------------------------------------------------------------- helpers
    def _seeds(self, offset: int = 0) -> list[int]:
        """Seeds of each simulation's current (offset 0) or next (offset 1) episode (memoised: SeedSequence is slow)."""
        out = []
        for i in range(self.num_sims):
            k = (self._seed, i, int(self._episode[i]) + offset)
            if k not in self._seed_memo:
                if len(self._seed_memo) > 4 * self.num_sims:
                    self._seed_memo.clear()
                self._seed_memo[k] = episode_seed(*k)
            out.append(self._seed_memo[k])
        return out

    def _flat(self, per_sim: Sequence[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate([np.asarray(x, dtype).reshape(self.agents_per_sim, *np.shape(x)[1:])
                               for x in per_sim], axis=0)

    def _empty_info(self) -> dict:
        return {k: np.zeros((self.num_envs, *shape), np.float32) for k, shape in self._info_shapes.items()}

    @property
    def restarts(self) -> np.ndarray:
        """[N] how often each simulation's worker was restarted."""
        return self.pool.restarts.copy()

    # ------------------------------------------------------------------------------------------------------ API
    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is not None:
            self._seed = int(seed)
            self._episode[:] = 0
        obs = self.pool.reset(self._seeds())
        self._obs = self._flat(obs, self.spec.observation.dtype)
        self._stats.reset()
        zeros_f = np.zeros(self.num_envs, np.float32)
        zeros_b = np.zeros(self.num_envs, bool)
        info = {"final_observation": self._obs.copy(), "episode_return": zeros_f.copy(),
                "episode_length": np.zeros(self.num_envs, np.int32), "success": zeros_b.copy(),
                "worker_restarted": zeros_b.copy(), **self._empty_info()}
        return TimeStep(self._obs.copy(), zeros_f, zeros_b, zeros_b.copy(), self._task_id.copy(),
                        self.context.copy(), info)

    def _check_actions(self, actions) -> np.ndarray:
        """[N, A, *action_shape]: one row per simulation (the pool iterates over the rows)."""
        act = self.spec.check_actions(actions, self.num_envs)  # shape, dtype, range, finiteness
        return act.reshape(self.num_sims, self.agents_per_sim, *act.shape[1:])

    def step(self, actions) -> TimeStep:
        if self._obs is None:
            raise RuntimeError(f"{self.spec.env_id}: call reset() before step()")
        per_sim = self._check_actions(actions)
        next_seeds = self._seeds(offset=1)
        answers, restarted = self.pool.step(per_sim, next_seeds)
        A, N, B = self.agents_per_sim, self.num_sims, self.num_envs
        if restarted:
            vecs = np.zeros((N, self._layout[-1][2]), np.float32)  # restarted rows are filled in below
            for i, ans in enumerate(answers):
                if i not in restarted:
                    vecs[i] = ans[0]
        else:
            vecs = np.stack([ans[0] for ans in answers]) if N > 1 else np.array(answers[0][0])[None]  # own copy
        if vecs.shape[1] != self._layout[-1][2]:
            unpack_step(vecs[0], self._layout)  # raises the clear size error
        # [N, V] -> one [B, ...] array per field (obs, reward, final_obs, info keys), in one slice each
        parts = {name: vecs[:, a:b].reshape(B, *shape[1:]) for name, a, b, shape in self._layout}
        obs, final_obs, reward = parts.pop("obs"), parts.pop("final_obs"), parts.pop("reward")
        te = np.array([False if i in restarted else bool(ans[1]) for i, ans in enumerate(answers)])
        tr = np.array([True if i in restarted else bool(ans[2]) for i, ans in enumerate(answers)])
        worker_restarted = np.zeros(B, bool)
        for i in restarted:  # crashed/hung: the episode is cut here; the answer is the new episode's first obs
            sl = slice(i * A, (i + 1) * A)
            obs[sl] = np.asarray(answers[i], obs.dtype).reshape(A, *obs.shape[1:])
            final_obs[sl] = self._obs[sl]
            reward[sl] = 0.0
            for k in parts:
                parts[k][sl] = 0.0
            worker_restarted[sl] = True
        self._episode[te | tr] += 1
        term = np.repeat(te, A) if A > 1 else te
        trunc = np.repeat(tr & ~te, A) if A > 1 else tr & ~te
        done = term | trunc
        ep_ret, ep_len = self._update_stats(reward, done)
        self._obs = obs
        success = parts.pop("success", np.zeros(B, np.float32)).astype(bool)
        info = parts
        info.update({"final_observation": final_obs, "episode_return": ep_ret, "episode_length": ep_len,
                     "success": success, "worker_restarted": worker_restarted})
        return TimeStep(obs.copy(), reward, term, trunc, self._task_id.copy(), self.context.copy(), info)

    def _update_stats(self, reward: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``EpisodeStats.update`` without the masked writes on the (usual) steps where nothing ended."""
        st = self._stats
        st.returns += reward
        st.lengths += 1
        out = (st.returns.copy(), st.lengths.copy())
        if done.any():
            st.returns[done] = 0.0
            st.lengths[done] = 0
        return out

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
