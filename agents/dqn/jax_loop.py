"""DQN on JAX-native envs: acting, env stepping, replay writes and updates in one jitted ``lax.scan``."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from agents.dqn.agent import DQNAgent, DQNState, make_dqn_agent
from agents.dqn.config import DQNConfig
from envs.jax_env import JaxEnvFunctions
from envs.spec import EnvSpec
from omnitask.nonfinite import FINITE_KEY


class DQNRunner(NamedTuple):
    """Complete state of a jitted DQN run (enough to resume exactly)."""

    agent: DQNState
    env_state: Any  # pytree, leaves [B, ...]
    obs: jax.Array  # [B, *obs_shape] observation to act on next
    env_params: Any  # pytree, leaves [B]


def make_jax_dqn(cfg: DQNConfig, spec: EnvSpec, fns: JaxEnvFunctions, num_envs: int, network: Any = None,
                 precision: str = "float32", store_features: bool = False):
    """Closures ``(agent, init(key, contexts [B, C]) -> DQNRunner, run(runner, n) -> (runner, metrics [n]))``.

    ``run`` does ``n`` (static) vector steps; per-step metrics come back stacked, with episode returns of the
    episodes finished at each step (``episode_return`` weighted by ``episode_done``). ``store_features``: see
    ``make_dqn_agent``.
    """
    agent = make_dqn_agent(cfg, spec, num_envs, network, precision, store_features)

    def init(key, contexts):
        k_agent, k_env = jax.random.split(key)
        env_params = jax.vmap(fns.params_from_context)(jnp.asarray(contexts, jnp.float32))
        env_state, ts = jax.vmap(fns.reset)(jax.random.split(k_env, num_envs), env_params)
        return DQNRunner(agent.init(k_agent), env_state, ts.observation, env_params)

    def vector_step(runner: DQNRunner, _):
        state = runner.agent
        key, k_act, k_env = jax.random.split(state.key, 3)
        epsilon = agent.epsilon(state.env_steps)
        action = agent.act(state.train_state.params, runner.obs, k_act, epsilon)
        env_state, ts = jax.vmap(fns.step)(jax.random.split(k_env, num_envs), runner.env_state, action,
                                           runner.env_params)
        state, metrics = agent.observe(state._replace(key=key), runner.obs, action, ts.reward, ts.terminated,
                                       ts.truncated, ts.info["final_observation"])
        metrics["epsilon"] = epsilon
        metrics["episode_done"] = jnp.sum(ts.done).astype(jnp.float32)
        metrics["episode_return_sum"] = jnp.sum(ts.info["episode_return"] * ts.done)
        return DQNRunner(state, env_state, ts.observation, runner.env_params), metrics

    def run(runner: DQNRunner, num_steps: int):
        return jax.lax.scan(vector_step, runner, None, num_steps)

    return agent, init, run


def summarize(metrics: dict) -> dict:
    """Reduce stacked per-step metrics ``[n]`` to scalars (update metrics averaged over steps that learned)."""
    learned = metrics["learned"]
    n_learn = jnp.maximum(jnp.sum(learned), 1.0)
    out = {}
    for name, value in metrics.items():
        if name.startswith("loss/") or name == "grad_norm":
            out[name] = jnp.where(jnp.sum(learned) > 0, jnp.sum(value * learned) / n_learn, jnp.nan)
    out[FINITE_KEY] = jnp.where(jnp.sum(learned) > 0, jnp.sum(metrics[FINITE_KEY] * learned) / n_learn, jnp.nan)
    episodes = jnp.sum(metrics["episode_done"])
    out["train/episodes"] = episodes
    out["train/episode_return"] = jnp.where(episodes > 0, jnp.sum(metrics["episode_return_sum"])
                                            / jnp.maximum(episodes, 1.0), jnp.nan)
    out["epsilon"] = metrics["epsilon"][-1]
    out["updates_fraction"] = jnp.mean(learned)
    return out
