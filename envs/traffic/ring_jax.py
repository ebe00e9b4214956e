"""``traffic/ring-jax``: the ring road with IDM car-following written in jax.numpy (jittable, vmappable).

Pure single-env functions (``JaxEnvFunctions``); the context is a pytree argument so batches of different rings
vmap. Cars are padded to ``MAX_VEHICLES``; the first ``num_vehicles`` are real. The car-following update mirrors
SUMO's IDM (``MSCFModel_IDM::_v`` with one iteration at a 0.1 s step, then ``MSCFModel::finalizeSpeed`` bounds and
an Euler position update), so it can be cross-validated against ``traffic/ring-sumo``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.jax_env import JaxBatchedEnv, JaxEnvFunctions
from envs.timestep import TimeStep
from envs.traffic import ring as R


class RingParams(NamedTuple):
    """One ring (a context row). Leaves are scalars; vmapped they become [B]."""

    ring_length: jax.Array  # () f32, m
    num_vehicles: jax.Array  # () i32
    hold_steps: jax.Array  # () i32, simulation steps per agent step
    horizon_steps: jax.Array  # () i32, simulation steps per episode
    context: jax.Array  # [C] f32, the context row as given


class RingState(NamedTuple):
    x: jax.Array  # [N_MAX] f32 cumulative front-bumper positions (m); car i+1 leads car i, car 0 leads car n-1
    v: jax.Array  # [N_MAX] f32 speeds (m/s)
    t: jax.Array  # () i32 simulation steps since the episode began
    episode_return: jax.Array  # () f32
    episode_length: jax.Array  # () i32


def idm_step(x, v, n, ring_length, av_accel, p: R.IDMParams = R.IDM, dt: float = R.DT):
    """One synchronous simulation step of all cars. ``x, v`` [N_MAX]; ``n`` real cars; car 0 follows advice.

    Returns the new (x, v). Padded cars (index >= n) stay where they are.
    """
    idx = jnp.arange(x.shape[0])
    mask = idx < n
    last = idx == n - 1  # the last real car follows car 0 one lap ahead
    x_lead = jnp.where(last, x[0] + ring_length, jnp.roll(x, -1))  # roll, not a gather: cheaper on CPU
    v_lead = jnp.where(last, v[0], jnp.roll(v, -1))
    gap = jnp.maximum(x_lead - x - p.length, 1e-6)  # bumper-to-bumper gap (SUMO: gap2pred + minGap)
    s_star = p.s0 + jnp.maximum(0.0, v * p.T + v * (v - v_lead) / (2.0 * math.sqrt(p.a * p.b)))
    delta = int(p.delta) if float(p.delta).is_integer() else p.delta  # integer power: no exp/log
    acc = p.a * (1.0 - (v / p.v0) ** delta - (s_star / gap) ** 2)
    v_idm = jnp.maximum(0.0, v + dt * acc)
    # SUMO finalizeSpeed: decel bounded by max(b, 1.5) unless the safe (IDM) speed needs emergency braking
    v_min = jnp.minimum(jnp.maximum(v - dt * max(p.b, min(p.emergency_decel, 1.5)), 0.0),
                        jnp.maximum(v_idm, v - dt * p.emergency_decel))
    v_max = jnp.minimum(jnp.minimum(v_idm, v + dt * p.a), p.v0)
    v_new = jnp.maximum(v_min, v_max)
    # the AV: commanded speed, kept within [v - b*dt, safe IDM speed] (SUMO speed mode 31)
    v_cmd = jnp.maximum(jnp.maximum(v[0] + dt * av_accel, v[0] - dt * p.b), 0.0)
    v_new = v_new.at[0].set(jnp.minimum(v_cmd, v_new[0]))
    v_new = jnp.where(mask, v_new, 0.0)
    x_new = jnp.where(mask, x + dt * v_new, x)
    return x_new, v_new


def params_from_context(context) -> RingParams:
    context = jnp.asarray(context, jnp.float32)
    return RingParams(ring_length=context[0], num_vehicles=jnp.round(context[1]).astype(jnp.int32),
                      hold_steps=jnp.maximum(1, jnp.round(context[2] / R.DT)).astype(jnp.int32),
                      horizon_steps=jnp.asarray(round(R.DEFAULT_HORIZON / R.DT), jnp.int32), context=context)


def init_state(x0, params: RingParams) -> RingState:
    """State at rest from positions ``x0`` [N_MAX] (entries >= num_vehicles ignored)."""
    mask = jnp.arange(R.MAX_VEHICLES) < params.num_vehicles
    return RingState(jnp.where(mask, x0, 0.0).astype(jnp.float32), jnp.zeros(R.MAX_VEHICLES, jnp.float32),
                     jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))


def _fmix32(h):
    """MurmurHash3's 32-bit finaliser (a bijective avalanche mix of uint32)."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _hash_uniform(key, n: int):
    """[n] uniforms in [0, 1) from a PRNG key by counter-based hashing (key words + index, MurmurHash3 mix).

    Used for the autoreset perturbation, which runs (masked) on every vmapped step: ~10x cheaper than threefry
    for these few numbers and plenty for a position perturbation. Deterministic in the key.
    """
    k = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    k = k.astype(jnp.uint32).reshape(-1)
    h = _fmix32(jnp.arange(n, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9) ^ k[0])
    h = _fmix32(h ^ k[-1])
    return (h >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def sample_positions(key, params: RingParams):
    """[N_MAX] equal spacing + U(-p, p) noise (p = 10% of the free gap), car 0 unperturbed.

    The same distribution as ``ring.initial_positions`` (numpy, used by the SUMO ring); here drawn by hashing.
    """
    n = params.num_vehicles
    spacing = params.ring_length / n
    p = 0.1 * (spacing - R.IDM.length)
    noise = (2.0 * _hash_uniform(key, R.MAX_VEHICLES) - 1.0) * p
    noise = noise.at[0].set(0.0)
    return jnp.arange(R.MAX_VEHICLES) * spacing + R.IDM.length + noise


def _timestep(state, obs, final_obs, reward, truncated, params, mean_v, std_v):
    return TimeStep(observation=obs, reward=jnp.asarray(reward, jnp.float32),
                    terminated=jnp.zeros((), bool), truncated=jnp.asarray(truncated, bool),
                    task_id=jnp.zeros((), jnp.int32), context=params.context,
                    info={"final_observation": final_obs, "episode_return": state.episode_return,
                          "episode_length": state.episode_length, "success": jnp.zeros((), bool),
                          "mean_speed": jnp.asarray(mean_v, jnp.float32), "speed_std": jnp.asarray(std_v, jnp.float32)})


def reset(key, params: RingParams):
    state = init_state(sample_positions(key, params), params)
    obs = R.observe(jnp, state.x, state.v, params.num_vehicles, params.ring_length)
    return state, _timestep(state, obs, obs, 0.0, False, params, 0.0, 0.0)


def step(key, state: RingState, action, params: RingParams):
    # in-jit clamp policy (envs/jax_env.py): NaN -> 0 (hold), inf/out of range -> the bound
    av_accel = jnp.clip(jnp.nan_to_num(jnp.reshape(action, ()), nan=0.0), -1.0, 1.0) * R.AV_ACCEL

    def body(_, xv):
        return idm_step(xv[0], xv[1], params.num_vehicles, params.ring_length, av_accel)

    x, v = jax.lax.fori_loop(0, params.hold_steps, body, (state.x, state.v))
    t = state.t + params.hold_steps
    mean_v, std_v = R.speed_stats(jnp, v, params.num_vehicles)
    reward = (mean_v - std_v) / R.REWARD_SCALE
    obs = R.observe(jnp, x, v, params.num_vehicles, params.ring_length)
    truncated = t >= params.horizon_steps
    ret, length = state.episode_return + reward, state.episode_length + 1
    ts = _timestep(RingState(x, v, t, ret, length), obs, obs, reward, truncated, params, mean_v, std_v)
    # same-step autoreset
    new_state, new_ts = reset(key, params)
    state = jax.tree.map(lambda a, b: jnp.where(truncated, a, b), new_state, RingState(x, v, t, ret, length))
    ts = ts._replace(observation=jnp.where(truncated, new_ts.observation, obs))
    return state, ts


FUNCTIONS = JaxEnvFunctions(reset, step, params_from_context)


def make_ring_jax(num_envs: int, seed: int, context=None, **options) -> JaxBatchedEnv:
    env_id = "traffic/ring-jax"
    if options:
        raise ValueError(f"{env_id}: unknown option(s) {sorted(options)}; ring-jax takes none")
    spec = R.ring_spec(env_id)
    ctx = spec.resolve_context(context, num_envs)
    R.validate_ring_context(env_id, ctx)
    return JaxBatchedEnv(spec, FUNCTIONS, ctx, seed)
