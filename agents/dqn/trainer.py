"""``DQNTrainer(cfg, run_dir)``: double DQN on one of the two engines of ``agents.common.engines``.

* JAX-native env ids: the state is a ``DQNRunner`` (learner, replay, env states, keys, counters) and a train step
  is one jitted scan of ``steps_per_train_step`` vector steps; resuming continues bit-for-bit.
* Host env ids (Atari, SUMO), or ``dqn.host_loop``: the state is a ``DQNState`` (learner, replay, key, counters);
  each vector step is a jitted ``act``, a host ``env.step`` and a jitted ``observe`` that donates the state (the
  replay is updated in place, never copied). ``dqn_host_agent`` is also PVN's online learner on host envs.
* ``run.replay: host`` (``omnitask.replay_location``): the replay is numpy in host memory, minibatches are gathered
  on the host and copied per update; it runs on the host loop (also for JAX-native envs, stepped through their
  host API). ``auto``/``device``: the replay is part of the jitted state.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agents.common.engines import HostAgent, HostEngine, JaxAgent, JaxEngine
from agents.common.trainer_utils import experiment_envs, mean_metrics
from agents.dqn.agent import DQNAgent, DQNState, epsilon_greedy, jit_host_functions, make_dqn_agent
from agents.dqn.config import DQNConfig, dqn_config_from
from agents.common.replay import ReplayState
from agents.dqn.jax_loop import DQNRunner, make_jax_dqn, summarize
from envs.jax_env import JaxBatchedEnv
from omnitask.mesh import DataParallel
from omnitask.precision import precision_of
from omnitask.replay_location import replay_location


# Where the env batch sits in a DQN state (split over run.mesh): the replay's columns; the learner is replicated.
STATE_BATCH_AXES = DQNState(None, ReplayState(1, 1, 1, 1, 1, 1, None, None), None, None, None)


def dqn_host_agent(agent: DQNAgent, cfg: DQNConfig, episode_prefix: str = "train/") -> HostAgent:
    """The host engine's DQN: ``steps_per_train_step`` vector steps of act -> ``env.step`` -> observe per chunk."""
    host = jit_host_functions(agent, cfg.eval_epsilon)
    n = cfg.steps_per_train_step

    def init(key):
        k_agent, k_env = jax.random.split(key)
        return agent.init(k_agent), k_env

    def chunk(state: DQNState, engine: HostEngine):
        obs = engine.observation(state)
        step_metrics, epsilon = [], 0.0
        for _ in range(n):
            key, action, epsilon = host.act(state.train_state.params, jnp.asarray(obs), state.key, state.env_steps)
            ts = engine.step(np.array(action))  # a writable host copy
            state, metrics = host.observe(state._replace(key=key), jnp.asarray(obs), action, ts.reward,
                                          ts.terminated, ts.truncated, ts.info["final_observation"])
            step_metrics.append(metrics)
            obs = ts.observation
        stacked = jax.device_get(jax.tree.map(lambda *xs: jnp.stack(xs), *step_metrics))
        learned = stacked.pop("learned")
        out = mean_metrics({k: np.where(learned > 0, v, np.nan) for k, v in stacked.items()})
        out.update(engine.episode_metrics(episode_prefix))
        out.update(epsilon=float(epsilon), updates=float(state.train_state.num_updates),
                   updates_fraction=float(np.mean(learned)))
        return state, out, n * engine.env.num_envs

    return HostAgent(init, chunk, lambda params, obs, key: agent.act(params, obs, key, cfg.eval_epsilon),
                     params_of=lambda state: state.train_state.params, env_steps_of=lambda state: state.env_steps,
                     batch_axes=STATE_BATCH_AXES)


def DQNTrainer(cfg: Any, run_dir: Any = None) -> JaxEngine | HostEngine:  # noqa: N802 (the agents table's name)
    """Double DQN behind the omnitask run loop. ``cfg`` is the whole experiment config (``cfg.env``, ``cfg.run``,
    ``cfg.seed``, ``cfg.dqn``); ``run_dir`` is unused (the loop owns logging and checkpoints)."""
    dcfg = dqn_config_from(cfg.dqn)
    env, make_eval_env = experiment_envs(cfg)
    dp = DataParallel.from_run(cfg.run)
    precision = precision_of(cfg.run)
    replay = replay_location("dqn", str(getattr(cfg.run, "replay", "auto") or "auto"))
    if isinstance(env, JaxBatchedEnv) and not dcfg.host_loop and replay == "device":
        agent, init, run = make_jax_dqn(dcfg, env.spec, env.fns, env.num_envs, precision=precision)
        n = dcfg.steps_per_train_step

        def chunk(runner):
            runner, metrics = run(runner, n)
            return runner, summarize(metrics)

        def act(params, obs, key):
            return agent.act(params, obs, key, dcfg.eval_epsilon)

        return JaxEngine(env, JaxAgent(init, chunk, n * env.num_envs, act, lambda s: s.agent.train_state.params,
                                       DQNRunner(STATE_BATCH_AXES, 0, 0, 0)), mesh=dp, cfg=dcfg, agent_fns=agent)
    agent = make_dqn_agent(dcfg, env.spec, env.num_envs, precision=precision, replay=replay)
    return HostEngine(env, dqn_host_agent(agent, dcfg), int(cfg.seed), make_eval_env,
                      int(env.spec.max_episode_steps or 27_000), mesh=dp, cfg=dcfg, agent_fns=agent)
