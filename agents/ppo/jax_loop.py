"""PPO on JAX-native envs: rollout + update as one jitted ``lax.scan``, vmappable over contexts and seeds.

Public entry points (used by the MBTL transfer-matrix code):
  ``train_over_contexts(cfg, env_id, contexts [N, C], key, num_envs=, total_env_steps=)`` -> params, leaves [N, ...]
  ``evaluate_over_contexts(cfg, params [N, ...], env_id, contexts [M, C], key, num_episodes)`` -> returns [N, M]
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.common.jax_eval import run_episodes
from agents.ppo.config import PPOConfig
from agents.ppo.learner import PPOLearner, PPOTrainState, Rollout, make_learner, num_updates_for
from envs.functional import jax_functions
from envs.jax_env import JaxEnvFunctions
from envs.spec import EnvSpec


class RunnerState(NamedTuple):
    """Complete state of a jitted PPO run (enough to resume exactly)."""

    train_state: PPOTrainState
    env_state: Any  # pytree, leaves [B, ...]
    obs: jax.Array  # [B, *obs_shape] observation to act on next
    env_params: Any  # pytree, leaves [B]: physical parameters from each env's context row
    key: jax.Array  # [2] PRNG key for acting and env stepping
    env_steps: jax.Array  # [] int32 env steps taken (summed over envs)


def make_jax_ppo(cfg: PPOConfig, spec: EnvSpec, fns: JaxEnvFunctions, num_envs: int, num_updates: int,
                 precision: str = "float32"):
    """Closures ``(learner, init(key, contexts [B, C]) -> RunnerState, run(runner, n) -> (runner, metrics [n]))``.

    ``run`` does ``n`` (static) PPO iterations, each ``num_envs * cfg.num_steps`` env steps plus one update, in a
    single ``lax.scan``; metrics come back stacked over iterations.
    """
    learner = make_learner(cfg, spec, num_envs, num_updates, precision)

    def init(key, contexts, train_state=None):
        """Fresh run; ``train_state`` (default ``learner.init`` of this key's learner stream) may be precomputed."""
        k_learn, k_env, k_run = jax.random.split(key, 3)
        if train_state is None:
            train_state = learner.init(k_learn)
        env_params = jax.vmap(fns.params_from_context)(jnp.asarray(contexts, jnp.float32))
        env_state, ts = jax.vmap(fns.reset)(jax.random.split(k_env, num_envs), env_params)
        return RunnerState(train_state, env_state, ts.observation, env_params, k_run, jnp.zeros((), jnp.int32))

    def env_step(runner: RunnerState, _):
        key, k_act, k_env = jax.random.split(runner.key, 3)
        action, to_env, log_prob, value = learner.act(runner.train_state.params, runner.obs, k_act)
        env_state, ts = jax.vmap(fns.step)(jax.random.split(k_env, num_envs), runner.env_state, to_env,
                                           runner.env_params)
        transition = Rollout(runner.obs, action, log_prob, value, ts.reward, ts.terminated, ts.truncated,
                             ts.info["final_observation"])
        episode = (ts.done, ts.info["episode_return"], ts.info["episode_length"])
        runner = runner._replace(env_state=env_state, obs=ts.observation, key=key,
                                 env_steps=runner.env_steps + num_envs)
        return runner, (transition, episode)

    def iteration(runner: RunnerState, _):
        runner, (batch, (done, ep_ret, ep_len)) = jax.lax.scan(env_step, runner, None, cfg.num_steps)
        train_state, metrics = learner.update(runner.train_state, batch)
        n_done = jnp.sum(done)
        metrics["train/episodes"] = n_done.astype(jnp.float32)
        metrics["train/episode_return"] = jnp.where(n_done > 0, jnp.sum(ep_ret * done) / jnp.maximum(n_done, 1),
                                                    jnp.nan)
        metrics["train/episode_length"] = jnp.where(
            n_done > 0, jnp.sum(ep_len * done) / jnp.maximum(n_done, 1), jnp.nan)
        return runner._replace(train_state=train_state), metrics

    def run(runner: RunnerState, num_iterations: int):
        return jax.lax.scan(iteration, runner, None, num_iterations)

    return learner, init, run


def evaluate_params(learner: PPOLearner, fns: JaxEnvFunctions, max_steps: int, params, contexts, key,
                    deterministic: bool = True):
    """One episode per context row ``contexts [E, C]`` with one PPO policy -> dict of ``[E]`` arrays."""

    def policy(obs, k):
        return learner.act(params, obs, k, deterministic)[1]

    return run_episodes(policy, fns, contexts, key, max_steps)


def _functional(env_id: str) -> tuple[EnvSpec, JaxEnvFunctions]:
    out = jax_functions(env_id)
    if out is None:
        raise ValueError(f"{env_id} is not a JAX-native environment; train_over_contexts/evaluate_over_contexts "
                         "need one (e.g. classic/CartPole-v1)")
    return out


def _check_contexts(spec: EnvSpec, contexts) -> jax.Array:
    contexts = np.asarray(contexts, np.float32)
    if contexts.ndim != 2 or contexts.shape[1] != len(spec.context_vars):
        raise ValueError(f"{spec.env_id}: contexts must be [N, {len(spec.context_vars)}] in the order "
                         f"{spec.context_names}, got shape {contexts.shape}")
    for j, var in enumerate(spec.context_vars):  # same range checks as envs.make
        spec.resolve_context({var.name: contexts[:, j]}, contexts.shape[0])
    return jnp.asarray(contexts)


def train_over_contexts(cfg: PPOConfig, env_id: str, contexts, key: jax.Array, *, num_envs: int,
                        total_env_steps: int, return_metrics: bool = False):
    """Train one independent PPO policy per context row, all at once (``vmap`` inside one ``jit``).

    ``contexts``: ``[N, C]`` in ``spec.context_vars`` order; policy ``i`` trains on ``num_envs`` copies of
    context ``i`` for ``total_env_steps`` env steps (rounded up to whole PPO updates). ``key`` is one PRNG key
    (split per row) or ``[N, 2]`` keys, one per row (equal keys isolate the effect of the context). Returns the params
    pytree with a leading ``[N]`` axis (and, with ``return_metrics``, the per-update metrics ``[N, U]``).
    """
    spec, fns = _functional(env_id)
    contexts = _check_contexts(spec, contexts)
    n = contexts.shape[0]
    num_updates = num_updates_for(total_env_steps, num_envs, cfg)
    learner, init, run = make_jax_ppo(cfg, spec, fns, num_envs, num_updates)

    def train_one(key, context, train_state):
        runner = init(key, jnp.broadcast_to(context, (num_envs, context.shape[0])), train_state)
        runner, metrics = run(runner, num_updates)
        return runner.train_state.params, metrics

    def train_all(keys, contexts):
        # Network init runs sequentially (lax.map), not under vmap: vmapped orthogonal init is a batched LAPACK
        # QR, which can deadlock on CPU in jaxlib 0.10.2 (ParallelBatchMap). Same keys as init(key, ...) uses.
        train_states = jax.lax.map(lambda k: learner.init(jax.random.split(k, 3)[0]), keys)
        return jax.vmap(train_one)(keys, contexts, train_states)

    keys = jnp.asarray(key)
    if keys.ndim == 1:
        keys = jax.random.split(keys, n)
    elif keys.shape[0] != n:
        raise ValueError(f"key must be one PRNG key or one per context row [{n}, 2], got shape {keys.shape}")
    params, metrics = jax.jit(train_all)(keys, contexts)
    return (params, metrics) if return_metrics else params


def evaluate_over_contexts(cfg: PPOConfig, params, env_id: str, contexts, key: jax.Array,
                           num_episodes: int = 10, deterministic: bool = True) -> np.ndarray:
    """Zero-shot transfer: mean episode return of every policy on every context.

    ``params``: pytree with leading ``[N]`` axis (as returned by ``train_over_contexts``); ``contexts [M, C]``.
    Returns a numpy ``[N, M]`` matrix, entry ``(i, j)`` = mean return of policy ``i`` over ``num_episodes``
    episodes of context ``j``. Every policy is evaluated on the same episode seeds (common random numbers).
    """
    spec, fns = _functional(env_id)
    contexts = _check_contexts(spec, contexts)
    learner = make_learner(cfg, spec, num_envs=cfg.num_minibatches, num_updates=1)  # network only
    max_steps = int(spec.max_episode_steps or 1000)

    def one(params_i, context, key):
        rows = jnp.broadcast_to(context, (num_episodes, context.shape[0]))
        return evaluate_params(learner, fns, max_steps, params_i, rows, key, deterministic)["return"].mean()

    keys = jax.random.split(key, contexts.shape[0])  # common random numbers: every policy sees the same episodes
    over_contexts = jax.vmap(one, in_axes=(None, 0, 0))
    return np.asarray(jax.jit(jax.vmap(over_contexts, in_axes=(0, None, None)))(params, contexts, keys))
