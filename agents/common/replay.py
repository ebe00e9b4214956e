"""Uniform replay as plain arrays (so it lives in the checkpointable state), with n-step sampling.

Layout is time-major per env: row ``t`` holds the transitions of all ``B`` envs from one vector step, so the
``n`` steps following a sampled ``(t, b)`` are rows ``t+1 .. t+n-1`` of column ``b`` (wrapping around the ring).
Each transition stores its successor ``next_obs`` (``info['final_observation']`` under same-step autoreset), so
n-step targets bootstrap correctly through truncations and never cross an episode boundary.
Memory: observations are stored twice (obs and next_obs); keep uint8 observations uint8.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np


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


def n_step_targets(reward: Any, terminated: Any, truncated: Any, gamma: float, xp: Any = jnp) -> tuple[Any, Any, Any]:
    """n-step returns of windows ``[N, n]`` that stop at the first episode end; ``xp``: ``jax.numpy`` (in jit) or
    ``numpy`` (the host replay), so both replays share this one definition.

    Returns ``(return, discount, last)``, each ``[N]``: ``return = sum_{k<=last} gamma^k r_k``, ``last`` = index of
    the first terminated/truncated step (``n-1`` if none), ``discount = gamma^(last+1)`` or 0 if step ``last``
    terminated. The bootstrap observation is ``next_obs`` of step ``last``.
    """
    num, n = reward.shape
    done = xp.logical_or(terminated, truncated).astype(xp.float32)
    # in_episode[:, k] = 1 while no earlier step of the window ended the episode
    in_episode = xp.cumprod(xp.concatenate([xp.ones((num, 1), xp.float32), 1.0 - done[:, :-1]], axis=1), axis=1)
    powers = xp.asarray(gamma, xp.float32) ** xp.arange(n, dtype=xp.float32)  # [n]
    ret = xp.sum(powers[None] * reward * in_episode, axis=1).astype(xp.float32)
    last = (xp.sum(in_episode, axis=1) - 1).astype(xp.int32)
    last_terminated = xp.take_along_axis(terminated, last[:, None], axis=1)[:, 0].astype(xp.float32)
    discount = (xp.asarray(gamma, xp.float32) ** (last + 1).astype(xp.float32) * (1.0 - last_terminated))
    return ret, discount.astype(xp.float32), last


def n_step_target(reward_t: jax.Array, terminated_t: jax.Array, truncated_t: jax.Array,
                  gamma: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``n_step_targets`` of one window ``[n]``: ``(return, discount, last)`` scalars."""
    chex.assert_rank([reward_t, terminated_t, truncated_t], 1)
    ret, discount, last = n_step_targets(reward_t[None], terminated_t[None], truncated_t[None], gamma)
    return ret[0], discount[0], last[0]


def sample_indices(ptr: jax.Array, size: jax.Array, num_rows: int, num_envs: int, key: jax.Array,
                   batch_size: int, n_step: int) -> tuple[jax.Array, jax.Array]:
    """Uniform start points with ``n_step`` following rows stored: ``rows [N, n]`` (the window of each start) and
    env columns ``[N]``. Both replays draw their indices here, so one key samples the same transitions."""
    k_t, k_b = jax.random.split(key)
    oldest = (ptr - size) % num_rows
    j = jax.random.randint(k_t, (batch_size,), 0, jnp.maximum(size - n_step + 1, 1))
    cols = jax.random.randint(k_b, (batch_size,), 0, num_envs)
    rows = (oldest + j[:, None] + jnp.arange(n_step)[None, :]) % num_rows  # [N, n]
    return rows, cols


def gather_n_step(state: ReplayState, rows: Any, cols: Any, gamma: float, xp: Any = jnp) -> NStepBatch:
    """The n-step transitions of windows ``rows [N, n]`` in env columns ``cols [N]`` (``xp`` as ``n_step_targets``)."""
    c = cols[:, None]
    ret, discount, last = n_step_targets(state.reward[rows, c], state.terminated[rows, c], state.truncated[rows, c],
                                         gamma, xp)
    boot_row = xp.take_along_axis(rows, last[:, None], axis=1)[:, 0]
    return NStepBatch(state.obs[rows[:, 0], cols], state.action[rows[:, 0], cols], ret, discount,
                      state.next_obs[boot_row, cols])


def replay_sample(state: ReplayState, key: jax.Array, batch_size: int, n_step: int, gamma: float) -> NStepBatch:
    """Uniformly sample ``batch_size`` start points with ``n_step`` following rows available.

    Requires ``state.size >= n_step`` (callers start learning later than that).
    """
    num_rows, num_envs = state.reward.shape
    rows, cols = sample_indices(state.ptr, state.size, num_rows, num_envs, key, batch_size, n_step)
    return gather_n_step(state, rows, cols, gamma)


# ------------------------------------------------------------------------------------------- host replay
def host_replay_init(num_rows: int, num_envs: int, obs_shape: Sequence[int], obs_dtype) -> ReplayState:
    """``replay_init`` as numpy arrays in host memory (``run.replay: host``)."""
    return jax.tree.map(np.array, replay_init(num_rows, num_envs, obs_shape, obs_dtype))


def as_host_replay(state: ReplayState) -> ReplayState:
    """``state`` as writable numpy arrays: a no-op for a host replay, one copy after a checkpoint restore or a
    ``run.mesh`` placement (both give device arrays)."""
    if all(isinstance(x, np.ndarray) for x in state):
        return state
    return ReplayState(*(np.array(x) for x in state))


def host_replay_add(state: ReplayState, obs, action, reward, terminated, truncated, next_obs) -> ReplayState:
    """``replay_add`` on a host replay, in place (numpy writes; device arguments are copied to the host)."""
    state = as_host_replay(state)
    row = int(state.ptr)
    for buf, x in zip(state[:6], (obs, action, reward, terminated, truncated, next_obs)):
        buf[row] = np.asarray(x)
    num_rows = state.reward.shape[0]
    return state._replace(ptr=np.asarray((row + 1) % num_rows, np.int32),
                          size=np.asarray(min(int(state.size) + 1, num_rows), np.int32))


_sample_indices = jax.jit(sample_indices, static_argnums=(2, 3, 5, 6))


def host_replay_sample(state: ReplayState, key: jax.Array, batch_size: int, n_step: int, gamma: float
                       ) -> NStepBatch:
    """``replay_sample`` on a host replay: the same indices (drawn from ``key``), gathered by numpy on the host."""
    num_rows, num_envs = state.reward.shape
    rows, cols = jax.device_get(_sample_indices(jnp.asarray(state.ptr), jnp.asarray(state.size), num_rows, num_envs,
                                                key, batch_size, n_step))
    return gather_n_step(state, np.asarray(rows), np.asarray(cols), gamma, np)
