"""``PPOTrainer``: the run-loop contract (init / train_step / evaluate / close) over both execution paths.

* JAX-native env ids (``envs.make`` returns a ``JaxBatchedEnv``): the state is a ``RunnerState`` (params, optimiser,
  env states, keys, counters) and ``train_step`` is one jitted scan of ``updates_per_train_step`` PPO iterations.
  Resuming from a saved state continues bit-for-bit.
* Host env ids (Atari, Meta-World, SUMO): the state is a ``HostState`` (params, optimiser, key, counters); the
  rollout is a Python loop over a jitted ``act``, the update is the same jitted pure ``update``. Simulator state is
  not checkpointable: on resume the host envs are reset (seeded from the run seed), everything else continues.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.common.trainer_utils import env_settings, eval_env_options, evaluate_host, mean_metrics, seed_from_key
from agents.ppo.config import ppo_config_from
from agents.ppo.jax_loop import evaluate_params, make_jax_ppo
from agents.ppo.learner import PPOTrainState, Rollout, make_learner, num_updates_for
from envs.jax_env import JaxBatchedEnv
from envs.timestep import episode_over


class HostState(NamedTuple):
    """Checkpointable part of a host-env PPO run."""

    train_state: PPOTrainState
    key: jax.Array  # [2] PRNG key for acting
    env_steps: jax.Array  # [] int32 env steps taken (summed over envs)


class PPOTrainer:
    """PPO behind the omnitask run loop. ``cfg`` is the whole experiment config (``cfg.env``, ``cfg.run``,
    ``cfg.seed``, ``cfg.ppo``); ``run_dir`` is unused (the loop owns logging and checkpoints)."""

    def __init__(self, cfg: Any, run_dir: Any = None):
        self.cfg = ppo_config_from(cfg.ppo)
        self.seed = int(cfg.seed)
        self.env_id, self.num_envs, self.context, self.options = env_settings(cfg)
        self.eval_options = eval_env_options(cfg)
        self.env = envs.make(self.env_id, num_envs=self.num_envs, seed=self.seed, context=self.context,
                             **self.options)
        self.spec = self.env.spec
        num_updates = num_updates_for(int(cfg.run.total_env_steps), self.num_envs, self.cfg)
        self.jax_native = isinstance(self.env, JaxBatchedEnv) and not self.cfg.host_loop
        self.steps_per_update = self.num_envs * self.cfg.num_steps
        self._eval_env = None
        if self.jax_native:
            self.learner, self._init, run = make_jax_ppo(self.cfg, self.spec, self.env.fns, self.num_envs,
                                                         num_updates)
            k = self.cfg.updates_per_train_step
            self._run = jax.jit(lambda runner: run(runner, k))
            max_steps = int(self.spec.max_episode_steps or 1000)
            self._evaluate = jax.jit(
                lambda params, contexts, key: evaluate_params(self.learner, self.env.fns, max_steps, params,
                                                              contexts, key, self.cfg.eval_deterministic))
        else:
            self.learner = make_learner(self.cfg, self.spec, self.num_envs, num_updates)
            self._update = jax.jit(self.learner.update)

            def act(params, obs, key, deterministic):
                key, k_act = jax.random.split(key)
                return key, self.learner.act(params, obs, k_act, deterministic)

            self._act = jax.jit(act, static_argnums=3)
            self._obs = None

    # ----------------------------------------------------------------------------------------------- contract
    def init(self, key: jax.Array):
        """Fresh state; for host envs also resets the simulators (seeded from ``key``)."""
        if self.jax_native:
            return self._init(key, self.env.context)
        k_learn, k_env, k_act = jax.random.split(key, 3)
        self._obs = self.env.reset(seed=seed_from_key(k_env)).observation
        return HostState(self.learner.init(k_learn), k_act, jnp.zeros((), jnp.int32))

    def train_step(self, state):
        """One chunk: ``updates_per_train_step`` x (``num_envs * num_steps`` env steps + one PPO update)."""
        if self.jax_native:
            state, metrics = self._run(state)
            return state, mean_metrics(metrics), self.cfg.updates_per_train_step * self.steps_per_update
        all_metrics = []
        for _ in range(self.cfg.updates_per_train_step):
            state, metrics = self._host_iteration(state)
            all_metrics.append(metrics)
        merged = {k: np.array([m.get(k, np.nan) for m in all_metrics]) for k in all_metrics[0]}
        return state, mean_metrics(merged), self.cfg.updates_per_train_step * self.steps_per_update

    def evaluate(self, state, num_episodes: int, key: jax.Array) -> dict[str, float]:
        """Mean return (and length, success rate) over ``num_episodes`` fresh episodes of the training contexts."""
        params = state.train_state.params
        if self.jax_native:
            rows = np.asarray(self.env.context)[np.arange(num_episodes) % self.num_envs]  # [E, C]
            out = jax.device_get(self._evaluate(params, jnp.asarray(rows), key))
            return {"return_mean": float(out["return"].mean()), "return_std": float(out["return"].std()),
                    "length_mean": float(out["length"].mean()), "success_rate": float(out["success"].mean())}
        if self._eval_env is None:
            self._eval_env = envs.make(self.env_id, num_envs=min(self.num_envs, num_episodes), seed=self.seed + 1,
                                       context=self.context, **self.eval_options)
        det = self.cfg.eval_deterministic

        def policy(obs, k):
            _, (_, to_env, _, _) = self._act(params, jnp.asarray(obs), k, det)
            return np.array(to_env)

        max_steps = int(self.spec.max_episode_steps or 27_000)
        return evaluate_host(self._eval_env, policy, num_episodes, key, max_steps)

    def policy(self, state):
        """The evaluation policy as ``(observation [B, ...], key) -> env actions [B, ...]`` (eval videos)."""
        params, det = state.train_state.params, self.cfg.eval_deterministic
        act = jax.jit(lambda obs, k: self.learner.act(params, obs, k, det)[1])
        return lambda obs, k: np.array(act(jnp.asarray(obs), k))

    def close(self) -> None:
        self.env.close()
        if self._eval_env is not None:
            self._eval_env.close()

    # ------------------------------------------------------------------------------------------- host path
    def _host_iteration(self, state: HostState):
        if self._obs is None:  # resumed from a checkpoint: simulators restart from a seeded reset
            self._obs = self.env.reset(seed=self.seed + int(state.env_steps)).observation
        params, key = state.train_state.params, state.key
        cols = {name: [] for name in Rollout._fields}
        done_returns, done_lengths = [], []
        obs = self._obs
        for _ in range(self.cfg.num_steps):
            key, (action, to_env, log_prob, value) = self._act(params, jnp.asarray(obs), key, False)
            ts = self.env.step(np.array(to_env))  # a writable host copy (some envs clip in place)
            for name, value_ in (("obs", obs), ("action", action), ("log_prob", log_prob), ("value", value),
                                 ("reward", ts.reward), ("terminated", ts.terminated),
                                 ("truncated", ts.truncated), ("final_obs", ts.info["final_observation"])):
                cols[name].append(np.asarray(value_))
            done = np.asarray(ts.terminated) | np.asarray(ts.truncated)
            ended = episode_over(ts)  # game over, not a lost life (Atari episodic life)
            done_returns.extend(np.asarray(ts.info["episode_return"])[ended].tolist())
            done_lengths.extend(np.asarray(ts.info["episode_length"])[ended].tolist())
            obs = ts.observation
        self._obs = obs
        batch = Rollout(**{name: np.stack(v) for name, v in cols.items()})  # [T, B, ...]
        train_state, metrics = self._update(state.train_state, batch)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        metrics["train/episodes"] = float(len(done_returns))
        if done_returns:
            metrics["train/episode_return"] = float(np.mean(done_returns))
            metrics["train/episode_length"] = float(np.mean(done_lengths))
        steps = state.env_steps + self.steps_per_update
        return HostState(train_state, key, steps), metrics
