"""``PPOTrainer(cfg, run_dir)``: PPO on one of the two engines of ``agents.common.engines``.

* JAX-native env ids (``envs.make`` returns a ``JaxBatchedEnv``): the state is a ``RunnerState`` (params, optimiser,
  env states, keys, counters) and a train step is one jitted scan of ``updates_per_train_step`` PPO iterations.
  Resuming from a saved state continues bit-for-bit.
* Host env ids (Atari, Meta-World, SUMO), or ``ppo.host_loop``: the state is a ``HostState`` (params, optimiser, key,
  counters); the rollout is a Python loop over a jitted ``act``, the update is the same jitted pure ``update``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.common.engines import HostAgent, HostEngine, JaxAgent, JaxEngine
from agents.common.trainer_utils import experiment_envs, mean_metrics
from agents.ppo.config import ppo_config_from
from agents.ppo.jax_loop import RunnerState, make_jax_ppo
from agents.ppo.learner import PPOTrainState, Rollout, make_learner, num_updates_for
from envs.jax_env import JaxBatchedEnv
from omnitask.mesh import DataParallel
from omnitask.precision import precision_of


class HostState(NamedTuple):
    """Checkpointable part of a host-env PPO run."""

    train_state: PPOTrainState
    key: jax.Array  # [2] PRNG key for acting
    env_steps: jax.Array  # [] int32 env steps taken (summed over envs)


def PPOTrainer(cfg: Any, run_dir: Any = None) -> JaxEngine | HostEngine:  # noqa: N802 (the agents table's name)
    """PPO behind the omnitask run loop. ``cfg`` is the whole experiment config (``cfg.env``, ``cfg.run``,
    ``cfg.seed``, ``cfg.ppo``); ``run_dir`` is unused (the loop owns logging and checkpoints)."""
    pcfg = ppo_config_from(cfg.ppo)
    env, make_eval_env = experiment_envs(cfg)
    num_envs, det = env.num_envs, pcfg.eval_deterministic
    num_updates = num_updates_for(int(cfg.run.total_env_steps), num_envs, pcfg)
    steps_per_update = num_envs * pcfg.num_steps
    k = pcfg.updates_per_train_step
    dp = DataParallel.from_run(cfg.run)
    precision = precision_of(cfg.run)
    if isinstance(env, JaxBatchedEnv) and not pcfg.host_loop:
        learner, init, run = make_jax_ppo(pcfg, env.spec, env.fns, num_envs, num_updates, precision)
        agent = JaxAgent(init, lambda runner: run(runner, k), k * steps_per_update,
                         act=lambda params, obs, key: learner.act(params, obs, key, det)[1],
                         params_of=lambda state: state.train_state.params,
                         batch_axes=RunnerState(None, 0, 0, 0, None, None))  # env batch split, learner replicated
        return JaxEngine(env, agent, mesh=dp, cfg=pcfg, learner=learner)

    learner = make_learner(pcfg, env.spec, num_envs, num_updates, precision)
    update = jax.jit(learner.update)

    @jax.jit
    def act(params, obs, key):
        key, k_act = jax.random.split(key)
        return key, learner.act(params, obs, k_act)

    def init(key):
        k_learn, k_env, k_act = jax.random.split(key, 3)
        return HostState(learner.init(k_learn), k_act, jnp.zeros((), jnp.int32)), k_env

    def iteration(state: HostState, engine: HostEngine):
        """One rollout of ``num_steps`` vector steps on the host envs and one PPO update."""
        params, key = state.train_state.params, state.key
        cols = {name: [] for name in Rollout._fields}
        obs = engine.observation(state)
        for _ in range(pcfg.num_steps):
            key, (action, to_env, log_prob, value) = act(params, jnp.asarray(obs), key)
            ts = engine.step(np.array(to_env))  # a writable host copy (some envs clip in place)
            for name, x in (("obs", obs), ("action", action), ("log_prob", log_prob), ("value", value),
                            ("reward", ts.reward), ("terminated", ts.terminated), ("truncated", ts.truncated),
                            ("final_obs", ts.info["final_observation"])):
                cols[name].append(np.asarray(x))
            obs = ts.observation
        batch = Rollout(**{name: np.stack(v) for name, v in cols.items()})  # [T, B, ...]
        train_state, metrics = update(state.train_state, batch)
        metrics = {name: float(v) for name, v in jax.device_get(metrics).items()}
        metrics.update(engine.episode_metrics())
        return HostState(train_state, key, state.env_steps + steps_per_update), metrics

    def chunk(state: HostState, engine: HostEngine):
        all_metrics = []
        for _ in range(k):
            state, metrics = iteration(state, engine)
            all_metrics.append(metrics)
        merged = {name: np.array([m.get(name, np.nan) for m in all_metrics]) for name in all_metrics[0]}
        return state, mean_metrics(merged), k * steps_per_update

    def eval_act(params, obs, key):  # the key split of the training ``act``
        return learner.act(params, obs, jax.random.split(key)[1], det)[1]

    agent = HostAgent(init, chunk, eval_act, params_of=lambda state: state.train_state.params,
                      env_steps_of=lambda state: state.env_steps)
    return HostEngine(env, agent, int(cfg.seed), make_eval_env, int(env.spec.max_episode_steps or 27_000),
                      mesh=dp, cfg=pcfg, learner=learner)
