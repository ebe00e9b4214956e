"""JAX-native classic control (gymnax) with context variables = physical parameters.

Ids: classic/CartPole-v1, classic/Pendulum-v1, classic/Acrobot-v1, classic/MountainCar-v0.
Context ranges are 0.1x-10x of the defaults (the CARL / MBTL protocol); derived parameters (CartPole total mass and
pole-mass*length) are recomputed from the context so a context row is a complete, consistent variant.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from envs.jax_env import JaxBatchedEnv, JaxEnvFunctions
from envs.registry import register
from envs.spec import ArraySpec, BoxActionSpec, ContextVar, DiscreteActionSpec, EnvSpec
from envs.timestep import TimeStep


def _scaled(name: str, default: float, description: str) -> ContextVar:
    return ContextVar(name, round(0.1 * default, 10), round(10.0 * default, 10), default, description)


@dataclasses.dataclass(frozen=True)
class ClassicDef:
    env_id: str
    gymnax_name: str
    context_vars: tuple[ContextVar, ...]
    set_params: Callable[[Any, jax.Array], Any]  # (default EnvParams, context[C]) -> EnvParams
    success: Callable[[jax.Array, jax.Array], jax.Array]  # (terminated, truncated) -> success flag
    continuous: bool = False


def _cartpole_params(p, c):
    masscart, masspole, length, gravity, force_mag = (c[i] for i in range(5))
    return p.replace(masscart=masscart, masspole=masspole, length=length, gravity=gravity, force_mag=force_mag,
                     total_mass=masscart + masspole, polemass_length=masspole * length)


CLASSIC = {
    "classic/CartPole-v1": ClassicDef(
        "classic/CartPole-v1", "CartPole-v1",
        (_scaled("masscart", 1.0, "cart mass (kg)"), _scaled("masspole", 0.1, "pole mass (kg)"),
         _scaled("length", 0.5, "pole half-length (m)"), _scaled("gravity", 9.8, "gravity (m/s^2)"),
         _scaled("force_mag", 10.0, "push force (N)")),
        _cartpole_params, lambda term, trunc: trunc & ~term),
    "classic/Pendulum-v1": ClassicDef(
        "classic/Pendulum-v1", "Pendulum-v1",
        (_scaled("dt", 0.05, "integration step (s)"), _scaled("l", 1.0, "pendulum length (m)"),
         _scaled("m", 1.0, "pendulum mass (kg)"), _scaled("g", 10.0, "gravity (m/s^2)"),
         _scaled("max_torque", 2.0, "torque bound")),
        lambda p, c: p.replace(dt=c[0], l=c[1], m=c[2], g=c[3], max_torque=c[4]),
        lambda term, trunc: jnp.zeros_like(term), continuous=True),
    "classic/Acrobot-v1": ClassicDef(
        "classic/Acrobot-v1", "Acrobot-v1",
        (_scaled("link_length_1", 1.0, "first link length"), _scaled("link_length_2", 1.0, "second link length"),
         _scaled("link_mass_1", 1.0, "first link mass"), _scaled("link_mass_2", 1.0, "second link mass"),
         _scaled("dt", 0.2, "integration step (s)")),
        lambda p, c: p.replace(link_length_1=c[0], link_length_2=c[1], link_mass_1=c[2], link_mass_2=c[3],
                               dt=c[4]),
        lambda term, trunc: term),
    "classic/MountainCar-v0": ClassicDef(
        "classic/MountainCar-v0", "MountainCar-v0",
        (_scaled("force", 0.001, "engine force"), _scaled("gravity", 0.0025, "gravity")),
        lambda p, c: p.replace(force=c[0], gravity=c[1]),
        lambda term, trunc: term),
}


@functools.lru_cache(maxsize=None)
def classic_functions(defn: ClassicDef) -> tuple[EnvSpec, JaxEnvFunctions]:
    """Spec and pure single-env functions for one gymnax classic-control env (cached: stable jit identity)."""
    import gymnax  # lazy: keeps `import envs` light

    env, default_params = gymnax.make(defn.gymnax_name)
    obs_shape = tuple(env.observation_space(default_params).shape)
    if defn.continuous:
        high = float(default_params.max_torque)
        action = BoxActionSpec((1,), -1.0, 1.0)  # agents act in [-1, 1]; scaled to the context's torque bound
    else:
        action = DiscreteActionSpec(int(env.num_actions))
        high = None
    spec = EnvSpec(defn.env_id, ArraySpec(obs_shape, "float32"), action, ("default",), defn.context_vars,
                   int(default_params.max_steps_in_episode))
    del high

    def params_from_context(context):
        return defn.set_params(default_params, jnp.asarray(context, jnp.float32))

    def to_env_action(action, params):  # the in-jit clamp policy (envs/jax_env.py)
        if defn.continuous:  # [-1,1] -> [-max_torque, max_torque]; gymnax pendulum expects shape ()/(1,)
            return jnp.clip(jnp.nan_to_num(action, nan=0.0), -1.0, 1.0).reshape(()) * params.max_torque
        return jnp.clip(jnp.asarray(action).astype(jnp.int32), 0, env.num_actions - 1)

    def make_ts(obs, reward, term, trunc, final_obs, ret, length, context):
        return TimeStep(
            observation=obs.astype(jnp.float32), reward=jnp.asarray(reward, jnp.float32),
            terminated=jnp.asarray(term, bool), truncated=jnp.asarray(trunc, bool),
            task_id=jnp.zeros((), jnp.int32), context=context,
            info={"final_observation": final_obs.astype(jnp.float32), "episode_return": ret,
                  "episode_length": length, "success": defn.success(jnp.asarray(term, bool),
                                                                     jnp.asarray(trunc, bool))})

    def context_of(params):
        return jnp.stack([_field(params, v.name) for v in defn.context_vars]).astype(jnp.float32)

    def reset(key, params):
        obs, env_state = env.reset(key, params)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        ts = make_ts(obs, 0.0, False, False, obs, zero_f, zero_i, context_of(params))
        return (env_state, zero_f, zero_i), ts

    def step(key, state, action, params):
        env_state, ret, length = state
        obs, env_state, reward, term, trunc, info = env.step(key, env_state, to_env_action(action, params), params)
        ret, length = ret + reward.astype(jnp.float32), length + 1
        ts = make_ts(obs, reward, term, trunc, info["final_observation"], ret, length, context_of(params))
        done = jnp.logical_or(term, trunc)
        return (env_state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length)), ts

    return spec, JaxEnvFunctions(reset, step, params_from_context)


def _field(params, name):
    return jnp.asarray(getattr(params, name), jnp.float32)


def _factory(defn: ClassicDef):
    def make(num_envs: int, seed: int, context=None, **options) -> JaxBatchedEnv:
        if options:
            raise ValueError(f"{defn.env_id}: unknown option(s) {sorted(options)}; classic envs take none")
        spec, fns = classic_functions(defn)
        return JaxBatchedEnv(spec, fns, spec.resolve_context(context, num_envs), seed)
    return make


for _defn in CLASSIC.values():
    register(_defn.env_id, _factory(_defn), family="classic",
             description=f"gymnax {_defn.gymnax_name} with contexts {', '.join(v.name for v in _defn.context_vars)}")
