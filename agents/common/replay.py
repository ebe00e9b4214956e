"""Uniform replay as plain arrays (so it lives in the checkpointable state), with n-step sampling.

Layout is time-major per env: row ``t`` holds the transitions of all ``B`` envs from one vector step, so the
``n`` steps following a sampled ``(t, b)`` are rows ``t+1 .. t+n-1`` of column ``b`` (wrapping around the ring).
Each transition stores its successor ``next_obs`` (``info['final_observation']`` under same-step autoreset), so
n-step targets bootstrap correctly through truncations and never cross an episode boundary.
Memory: observations are stored twice (obs and next_obs); keep uint8 observations uint8.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp


class ReplayState(NamedTuple):
    """Ring buffer of ``R`` rows x ``B`` envs."""

    obs: jax.Array  # [R, B, *obs_shape]
    action: jax.Array  # [R, B] int32 (or [R, B, D] float32)
    reward: jax.Array  # [R, B] float32
    terminated: jax.Array  # [R, B] bool
    truncated: jax.Array  # [R, B] bool
    next_obs: jax.Array  # [R, B, *obs_shape] successor of obs in its own episode
    ptr: jax.Array  # [] int32 next row to write
    size: jax.Array  # [] int32 rows holding data (<= R)


class NStepBatch(NamedTuple):
    """Sampled n-step transitions: target = ``reward + discount * max_a Q(next_obs, a)``."""

    obs: jax.Array  # [N, *obs_shape]
    action: jax.Array  # [N]
    reward: jax.Array  # [N] float32 discounted n-step return  sum_k gamma^k r_{t+k} (within the episode)
    discount: jax.Array  # [N] float32 gamma^m (m = steps used), 0 if the episode terminated inside the window
    next_obs: jax.Array  # [N, *obs_shape] bootstrap observation


def replay_init(num_rows: int, num_envs: int, obs_shape: Sequence[int], obs_dtype, action_shape=(),
                action_dtype=jnp.int32) -> ReplayState:
    """An empty buffer holding ``num_rows * num_envs`` transitions."""
    if num_rows < 1:
        raise ValueError(f"replay needs at least one row per env, got {num_rows} rows")
    # Every field gets its own buffer (no aliasing), so host loops can donate the whole state to jit.
    obs = lambda: jnp.zeros((num_rows, num_envs, *obs_shape), obs_dtype)  # noqa: E731
    flags = lambda: jnp.zeros((num_rows, num_envs), bool)  # noqa: E731
    return ReplayState(obs(), jnp.zeros((num_rows, num_envs, *action_shape), action_dtype),
                       jnp.zeros((num_rows, num_envs), jnp.float32), flags(), flags(), obs(),
                       jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def replay_add(state: ReplayState, obs, action, reward, terminated, truncated, next_obs) -> ReplayState:
    """Write one vector step (every argument batch-leading ``[B, ...]``) at row ``ptr``."""
    chex.assert_equal_shape_prefix([state.obs[0], obs, next_obs, action, reward], 1)
    row = state.ptr
    num_rows = state.reward.shape[0]

    def put(buf, x):
        return buf.at[row].set(jnp.asarray(x, buf.dtype))

    return ReplayState(put(state.obs, obs), put(state.action, action), put(state.reward, reward),
                       put(state.terminated, terminated), put(state.truncated, truncated),
                       put(state.next_obs, next_obs), (row + 1) % num_rows,
                       jnp.minimum(state.size + 1, num_rows))


def n_step_target(reward_t: jax.Array, terminated_t: jax.Array, truncated_t: jax.Array,
                  gamma: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """n-step return of one window ``[n]`` that stops at the first episode end.

    Returns ``(return, discount, last)``: ``return = sum_{k<=last} gamma^k r_k``, ``last`` = index of the first
    terminated/truncated step (``n-1`` if none), ``discount = gamma^(last+1)`` or 0 if step ``last`` terminated.
    The bootstrap observation is ``next_obs`` of step ``last``.
    """
    chex.assert_rank([reward_t, terminated_t, truncated_t], 1)
    n = reward_t.shape[0]
    done = jnp.logical_or(terminated_t, truncated_t).astype(jnp.float32)
    # in_episode[k] = 1 while no earlier step of the window ended the episode
    in_episode = jnp.cumprod(jnp.concatenate([jnp.ones((1,)), 1.0 - done[:-1]]))  # [n]
    powers = gamma ** jnp.arange(n, dtype=jnp.float32)
    ret = jnp.sum(powers * reward_t * in_episode)
    last = (jnp.sum(in_episode) - 1).astype(jnp.int32)
    discount = gamma ** (last + 1).astype(jnp.float32) * (1.0 - terminated_t[last].astype(jnp.float32))
    return ret, discount, last


def replay_sample(state: ReplayState, key: jax.Array, batch_size: int, n_step: int, gamma: float) -> NStepBatch:
    """Uniformly sample ``batch_size`` start points with ``n_step`` following rows available.

    Requires ``state.size >= n_step`` (callers start learning later than that).
    """
    num_rows, num_envs = state.reward.shape
    k_t, k_b = jax.random.split(key)
    oldest = (state.ptr - state.size) % num_rows
    j = jax.random.randint(k_t, (batch_size,), 0, jnp.maximum(state.size - n_step + 1, 1))
    b = jax.random.randint(k_b, (batch_size,), 0, num_envs)
    rows = (oldest + j[:, None] + jnp.arange(n_step)[None, :]) % num_rows  # [N, n]
    cols = b[:, None]
    ret, discount, last = jax.vmap(n_step_target, in_axes=(0, 0, 0, None))(
        state.reward[rows, cols], state.terminated[rows, cols], state.truncated[rows, cols], gamma)
    boot_row = jnp.take_along_axis(rows, last[:, None], axis=1)[:, 0]
    return NStepBatch(state.obs[rows[:, 0], b], state.action[rows[:, 0], b], ret, discount,
                      state.next_obs[boot_row, b])
