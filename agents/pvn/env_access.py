"""Pure-JAX access to the PVN experiment's environment: ``(EnvSpec, JaxEnvFunctions, batched params)``.

Registered JAX-native ids go through ``envs.functional.jax_functions`` (the suite's env API). If the registry has
no ``minatar/<Game>`` ids yet, a small fallback here wraps gymnax MinAtar (Breakout, Asterix, Freeway,
SpaceInvaders) with the suite's TimeStep semantics (same-step autoreset, ``final_observation``) and uint8 0/1
observation planes ``[10, 10, C]``, so PVN's CPU-sized reproduction runs either way.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from envs.jax_env import JaxEnvFunctions
from envs.spec import ArraySpec, DiscreteActionSpec, EnvSpec
from envs.timestep import TimeStep

MINATAR_GAMES = {"Breakout": "Breakout-MinAtar", "Asterix": "Asterix-MinAtar", "Freeway": "Freeway-MinAtar",
                 "SpaceInvaders": "SpaceInvaders-MinAtar"}


def minatar_functions(env_id: str) -> tuple[EnvSpec, JaxEnvFunctions]:
    """Fallback ``minatar/<Game>`` env: spec + single-env pure functions over gymnax MinAtar."""
    import gymnax

    game = env_id.split("/", 1)[1]
    if game not in MINATAR_GAMES:
        raise ValueError(f"unknown MinAtar game {game!r} in {env_id!r}; allowed: "
                         f"{', '.join('minatar/' + g for g in MINATAR_GAMES)}")
    env, default_params = gymnax.make(MINATAR_GAMES[game])
    obs_shape = tuple(env.observation_space(default_params).shape)
    spec = EnvSpec(env_id, ArraySpec(obs_shape, "uint8", 0, 1), DiscreteActionSpec(int(env.num_actions)),
                   ("default",), (), int(default_params.max_steps_in_episode))

    def ts_of(obs, reward, term, trunc, final_obs, ret, length):
        return TimeStep(obs.astype(jnp.uint8), jnp.asarray(reward, jnp.float32), jnp.asarray(term, bool),
                        jnp.asarray(trunc, bool), jnp.zeros((), jnp.int32), jnp.zeros((0,), jnp.float32),
                        {"final_observation": final_obs.astype(jnp.uint8), "episode_return": ret,
                         "episode_length": length, "success": jnp.zeros((), bool)})

    def reset(key, params):
        obs, st = env.reset(key, params)
        zf, zi = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        return (st, zf, zi), ts_of(obs, 0.0, False, False, obs, zf, zi)

    def step(key, state, action, params):
        st, ret, length = state
        obs, st, reward, term, trunc, info = env.step(key, st, action, params)
        ret, length = ret + reward.astype(jnp.float32), length + 1
        done = jnp.logical_or(term, trunc)
        ts = ts_of(obs, reward, term, trunc, info["final_observation"], ret, length)
        return (st, jnp.where(done, 0.0, ret), jnp.where(done, 0, length)), ts

    return spec, JaxEnvFunctions(reset, step, lambda context: default_params)


def jax_env(env_id: str, num_envs: int, context: dict | None = None, options: dict | None = None
            ) -> tuple[EnvSpec, JaxEnvFunctions, Any]:
    """Spec, pure functions and ``[num_envs]``-batched env params for a JAX-native env id.

    Raises ValueError naming the id when it is a host simulator (PVN's online phase runs inside jit).
    """
    options = dict(options or {})
    try:
        from envs.functional import jax_functions
        from envs.registry import list_ids
        registered = env_id in list_ids()
    except ImportError:  # older checkout without envs.functional
        registered = False
    if registered:
        out = jax_functions(env_id, **options)
        if out is None:
            raise ValueError(f"{env_id} is a host-simulator env; PVN's in-jit online loop needs a JAX-native env "
                             "(PVNTrainer runs host envs on the DQN baseline's host loop: agents.pvn.host)")
        spec, fns = out
    elif env_id.startswith("minatar/"):
        if options:
            raise ValueError(f"{env_id}: unknown option(s) {sorted(options)}; the MinAtar fallback takes none")
        spec, fns = minatar_functions(env_id)
    else:
        from envs.registry import entry
        entry(env_id)  # unknown id: the registry's error with close matches
        raise AssertionError("unreachable")
    ctx = spec.resolve_context(context, num_envs)  # [E, C]
    params = jax.vmap(fns.params_from_context)(jnp.asarray(ctx))
    return spec, fns, params


def observation_dtype_ok(spec: EnvSpec) -> None:
    """PVN stores and hashes uint8 pixels; float observations that are not pixels are refused early."""
    if np.dtype(spec.observation.dtype) not in (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(bool)):
        raise ValueError(f"{spec.env_id}: observation dtype {spec.observation.dtype} unsupported; PVN needs pixels")
    if len(spec.observation.shape) != 3:
        raise ValueError(f"{spec.env_id}: observation shape {spec.observation.shape} is not [H, W, C] pixels; "
                         "PVN's conv encoders need image observations")
