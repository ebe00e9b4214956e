"""``DQNTrainer``: the run-loop contract (init / train_step / evaluate / close) over both execution paths.

* JAX-native env ids: the state is a ``DQNRunner`` (learner, replay, env states, keys, counters) and
  ``train_step`` is one jitted scan of ``steps_per_train_step`` vector steps; resuming continues bit-for-bit.
* Host env ids (Atari, SUMO): the state is a ``DQNState`` (learner, replay, key, counters); each vector step is
  a jitted ``act``, a host ``env.step`` and a jitted ``observe`` that donates the state (the replay is updated in
  place, never copied). Simulator state is not checkpointable: on resume the host envs are reset (seeded from
  the run seed and step counter); learner, replay, keys and counters continue exactly.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.common.jax_eval import run_episodes
from agents.common.trainer_utils import env_settings, eval_env_options, evaluate_host, mean_metrics, seed_from_key
from agents.dqn.agent import DQNState, epsilon_greedy, jit_host_functions, make_dqn_agent
from agents.dqn.config import dqn_config_from
from agents.dqn.jax_loop import make_jax_dqn, summarize
from envs.jax_env import JaxBatchedEnv
from envs.timestep import episode_over


class DQNTrainer:
    """Double DQN behind the omnitask run loop. ``cfg`` is the whole experiment config (``cfg.env``,
    ``cfg.run``, ``cfg.seed``, ``cfg.dqn``); ``run_dir`` is unused (the loop owns logging and checkpoints)."""

    def __init__(self, cfg: Any, run_dir: Any = None):
        self.cfg = dqn_config_from(cfg.dqn)
        self.seed = int(cfg.seed)
        self.env_id, self.num_envs, self.context, self.options = env_settings(cfg)
        self.eval_options = eval_env_options(cfg)
        self.env = envs.make(self.env_id, num_envs=self.num_envs, seed=self.seed, context=self.context,
                             **self.options)
        self.spec = self.env.spec
        self.jax_native = isinstance(self.env, JaxBatchedEnv) and not self.cfg.host_loop
        self._eval_env = None
        n = self.cfg.steps_per_train_step
        if self.jax_native:
            self.agent, self._init, run = make_jax_dqn(self.cfg, self.spec, self.env.fns, self.num_envs)

            def chunk(runner):
                runner, metrics = run(runner, n)
                return runner, summarize(metrics)

            self._run = jax.jit(chunk)
            max_steps = int(self.spec.max_episode_steps or 1000)
            eps = self.cfg.eval_epsilon

            def evaluate(params, contexts, key):
                def policy(obs, k):
                    return epsilon_greedy(self.agent.network.apply(params, obs), k, eps)
                return run_episodes(policy, self.env.fns, contexts, key, max_steps)

            self._evaluate = jax.jit(evaluate)
        else:
            self.agent = make_dqn_agent(self.cfg, self.spec, self.num_envs)
            self._act, self._observe, self._greedy = jit_host_functions(self.agent, self.cfg.eval_epsilon)
            self._obs = None

    # ----------------------------------------------------------------------------------------------- contract
    def init(self, key: jax.Array):
        """Fresh state; for host envs also resets the simulators (seeded from ``key``)."""
        if self.jax_native:
            return self._init(key, self.env.context)
        k_agent, k_env = jax.random.split(key)
        self._obs = self.env.reset(seed=seed_from_key(k_env)).observation
        return self.agent.init(k_agent)

    def train_step(self, state):
        """``steps_per_train_step`` vector steps (``num_envs`` env steps each) with their updates."""
        n = self.cfg.steps_per_train_step
        if self.jax_native:
            state, metrics = self._run(state)
            return state, mean_metrics(jax.device_get(metrics)), n * self.num_envs
        return self._host_chunk(state, n)

    def evaluate(self, state, num_episodes: int, key: jax.Array) -> dict[str, float]:
        """Mean return (and length, success rate) of the ``eval_epsilon``-greedy policy over ``num_episodes``."""
        if self.jax_native:
            params = state.agent.train_state.params
            rows = np.asarray(self.env.context)[np.arange(num_episodes) % self.num_envs]  # [E, C]
            out = jax.device_get(self._evaluate(params, jnp.asarray(rows), key))
            return {"return_mean": float(out["return"].mean()), "return_std": float(out["return"].std()),
                    "length_mean": float(out["length"].mean()), "success_rate": float(out["success"].mean())}
        params = state.train_state.params
        if self._eval_env is None:
            self._eval_env = envs.make(self.env_id, num_envs=min(self.num_envs, num_episodes), seed=self.seed + 1,
                                       context=self.context, **self.eval_options)

        def policy(obs, k):
            return np.array(self._greedy(params, jnp.asarray(obs), k))

        max_steps = int(self.spec.max_episode_steps or 27_000)
        return evaluate_host(self._eval_env, policy, num_episodes, key, max_steps)

    def policy(self, state):
        """The ``eval_epsilon``-greedy policy as ``(observation [B, ...], key) -> actions [B]`` (eval videos)."""
        params, eps = (state.agent if self.jax_native else state).train_state.params, self.cfg.eval_epsilon
        act = jax.jit(lambda obs, k: epsilon_greedy(self.agent.network.apply(params, obs), k, eps))
        return lambda obs, k: np.array(act(jnp.asarray(obs), k))

    def close(self) -> None:
        self.env.close()
        if self._eval_env is not None:
            self._eval_env.close()

    # ------------------------------------------------------------------------------------------- host path
    def _host_chunk(self, state: DQNState, n: int):
        if self._obs is None:  # resumed from a checkpoint: simulators restart from a seeded reset
            self._obs = self.env.reset(seed=self.seed + int(state.env_steps)).observation
        obs = self._obs
        step_metrics, returns = [], []
        epsilon = 0.0
        for _ in range(n):
            key, action, epsilon = self._act(state.train_state.params, jnp.asarray(obs), state.key, state.env_steps)
            ts = self.env.step(np.array(action))  # a writable host copy
            state, metrics = self._observe(state._replace(key=key), jnp.asarray(obs), action, ts.reward,
                                           ts.terminated, ts.truncated, ts.info["final_observation"])
            step_metrics.append(metrics)
            done = np.asarray(ts.terminated) | np.asarray(ts.truncated)
            returns.extend(np.asarray(ts.info["episode_return"])[episode_over(ts)].tolist())
            obs = ts.observation
        self._obs = obs
        stacked = jax.device_get(jax.tree.map(lambda *xs: jnp.stack(xs), *step_metrics))
        learned = stacked.pop("learned")
        out = {k: np.where(learned > 0, v, np.nan) for k, v in stacked.items()}
        out = mean_metrics(out)
        out["train/episodes"] = float(len(returns))
        if returns:
            out["train/episode_return"] = float(np.mean(returns))
        out["epsilon"] = float(epsilon)
        out["updates_fraction"] = float(np.mean(learned))
        return state, out, n * self.num_envs
