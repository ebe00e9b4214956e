"""JAX-native MinAtar (gymnax): ``minatar/<Game>`` for Asterix, Breakout, Freeway, Seaquest, SpaceInvaders.

MinAtar (Young & Tian, 2019) shrinks five Atari games to 10x10 grids of object channels, so image agents learn
them on a CPU in minutes. Observations are uint8 0/1 planes ``[10, 10, C]`` (C = 4, 4, 7, 10, 6 in the order
above); actions are gymnax's minimal set per game. Same-step autoreset with ``final_observation`` (envs.timestep).
No context variables: the games' parameters are integers used as static shapes in places, so they are not
exposed as continuous contexts. Episodes truncate at ``max_steps_in_episode`` (1000; Freeway 2500).
"""
from __future__ import annotations

import functools

import jax.numpy as jnp

from envs.jax_env import JaxBatchedEnv, JaxEnvFunctions
from envs.registry import register
from envs.spec import ArraySpec, DiscreteActionSpec, EnvSpec
from envs.timestep import TimeStep

GAMES = {"Asterix": "Asterix-MinAtar", "Breakout": "Breakout-MinAtar", "Freeway": "Freeway-MinAtar",
         "Seaquest": "Seaquest-MinAtar", "SpaceInvaders": "SpaceInvaders-MinAtar"}


@functools.lru_cache(maxsize=None)
def minatar_functions(game: str) -> tuple[EnvSpec, JaxEnvFunctions]:
    """Spec and pure single-env functions of one MinAtar game (cached: stable jit identity)."""
    import gymnax  # lazy: keeps `import envs` light

    env_id = f"minatar/{game}"
    env, default_params = gymnax.make(GAMES[game])
    num_actions = int(env.num_actions)
    obs_shape = tuple(env.observation_space(default_params).shape)
    spec = EnvSpec(env_id, ArraySpec(obs_shape, "uint8", 0, 1), DiscreteActionSpec(num_actions), ("default",), (),
                   int(default_params.max_steps_in_episode))

    def make_ts(obs, reward, term, trunc, final_obs, ret, length):
        return TimeStep(obs.astype(jnp.uint8), jnp.asarray(reward, jnp.float32), jnp.asarray(term, bool),
                        jnp.asarray(trunc, bool), jnp.zeros((), jnp.int32), jnp.zeros((0,), jnp.float32),
                        {"final_observation": final_obs.astype(jnp.uint8), "episode_return": ret,
                         "episode_length": length, "success": jnp.zeros((), bool)})

    def reset(key, params):
        obs, env_state = env.reset(key, params)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        return (env_state, zero_f, zero_i), make_ts(obs, 0.0, False, False, obs, zero_f, zero_i)

    def step(key, state, action, params):
        env_state, ret, length = state
        action = jnp.clip(jnp.asarray(action).astype(jnp.int32), 0, num_actions - 1)  # in-jit clamp (envs.jax_env)
        obs, env_state, reward, term, trunc, info = env.step(key, env_state, action, params)
        ret, length = ret + reward.astype(jnp.float32), length + 1
        ts = make_ts(obs, reward, term, trunc, info["final_observation"], ret, length)
        done = jnp.logical_or(term, trunc)
        return (env_state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length)), ts

    return spec, JaxEnvFunctions(reset, step, lambda context: default_params)


def _factory(game: str):
    def make(num_envs: int, seed: int, context=None, **options) -> JaxBatchedEnv:
        if options:
            raise ValueError(f"minatar/{game}: unknown option(s) {sorted(options)}; MinAtar envs take none")
        spec, fns = minatar_functions(game)
        return JaxBatchedEnv(spec, fns, spec.resolve_context(context, num_envs), seed)
    return make


def _spec_fn(game: str):
    def spec(**options) -> EnvSpec:
        if options:
            raise ValueError(f"minatar/{game}: unknown option(s) {sorted(options)}; MinAtar envs take none")
        return minatar_functions(game)[0]
    return spec


for _game in GAMES:
    register(f"minatar/{_game}", _factory(_game), family="minatar", spec_fn=_spec_fn(_game),
             description=f"gymnax {GAMES[_game]}: 10x10 object planes, JAX-native")
