"""Evaluation of any policy on a JAX-native env: one episode per context row, inside jit."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from envs.jax_env import JaxEnvFunctions


def run_episodes(policy: Callable[[jax.Array, jax.Array], jax.Array], fns: JaxEnvFunctions, contexts: jax.Array,
                 key: jax.Array, max_steps: int) -> dict[str, jax.Array]:
    """Play one episode per row of ``contexts [E, C]`` with ``policy(obs [E, ...], key) -> env actions [E, ...]``.

    Runs up to ``max_steps`` vector steps (the env's time limit), stopping once every env has finished an episode,
    and keeps the first episode of every env. Returns ``{'return', 'length', 'success'}``, each ``[E]``.
    """
    num = contexts.shape[0]
    env_params = jax.vmap(fns.params_from_context)(contexts)
    k_reset, k_run = jax.random.split(key)
    env_state, ts = jax.vmap(fns.reset)(jax.random.split(k_reset, num), env_params)
    keys = jax.random.split(k_run, max_steps)  # step t uses keys[t], however early the loop stops

    def running(carry):
        t, _, _, alive, *_ = carry
        return (t < max_steps) & jnp.any(alive)

    def body(carry):
        t, env_state, obs, alive, ret, length, success = carry
        k_act, k_env = jax.random.split(keys[t])
        env_state, ts = jax.vmap(fns.step)(jax.random.split(k_env, num), env_state, policy(obs, k_act), env_params)
        ret = ret + alive * ts.reward
        length = length + alive.astype(jnp.int32)
        success = jnp.where(alive & ts.done, ts.info["success"].astype(jnp.float32), success)
        alive = alive & ~ts.done
        return t + 1, env_state, ts.observation, alive, ret, length, success

    init = (jnp.zeros((), jnp.int32), env_state, ts.observation, jnp.ones(num, bool), jnp.zeros(num),
            jnp.zeros(num, jnp.int32), jnp.zeros(num))
    _, _, _, _, ret, length, success = jax.lax.while_loop(running, body, init)
    return {"return": ret, "length": length, "success": success}
