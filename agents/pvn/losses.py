"""PVN's learning rule as small pure functions (batch-level; shapes in comments).

* ``uniform_policy_targets``: expected-SARSA target for the uniform random policy,
  ``y_i = r_i + gamma * (1 - term) * mean_a Q_target(x', a; S_i)`` (off-policy from any behaviour data).
* ``pvn_td_loss``: L2 (mean squared) TD error of the taken action's Q over all tasks.
* ``ema_update``: target parameters ``tau * target + (1 - tau) * online`` (tau = 0.99 in the paper).
* ``double_dqn_loss``: n-step double-Q loss used by the linear-Q evaluation (van Hasselt et al. 2016).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def uniform_policy_targets(rewards: jax.Array, terminated: jax.Array, next_q_target: jax.Array,
                           gamma: float) -> jax.Array:
    """rewards [B, T] f32, terminated [B] bool, next_q_target [B, T, A] -> targets [B, T] (no gradient)."""
    if rewards.ndim != 2 or next_q_target.ndim != 3 or terminated.shape != rewards.shape[:1]:
        raise ValueError(f"shapes: rewards {rewards.shape} want [B, T], terminated {terminated.shape} want [B], "
                         f"next_q_target {next_q_target.shape} want [B, T, A]")
    discount = gamma * (1.0 - terminated.astype(jnp.float32))  # [B]
    return jax.lax.stop_gradient(rewards + discount[:, None] * jnp.mean(next_q_target, axis=-1))


def pvn_td_loss(q: jax.Array, actions: jax.Array, targets: jax.Array) -> jax.Array:
    """q [B, T, A], actions [B] int, targets [B, T] -> scalar mean over batch and tasks of (Q(x,a) - y)^2."""
    q_taken = jnp.take_along_axis(q, actions[:, None, None].astype(jnp.int32), axis=-1)[..., 0]  # [B, T]
    return jnp.mean(jnp.square(q_taken - targets))


def ema_update(target, online, tau: float):
    """Exponential moving average of parameter pytrees: tau * target + (1 - tau) * online."""
    return jax.tree.map(lambda t, o: tau * t + (1.0 - tau) * o, target, online)


def double_dqn_loss(q: jax.Array, actions: jax.Array, returns: jax.Array, bootstrap_discount: jax.Array,
                    next_q_online: jax.Array, next_q_target: jax.Array, huber_delta: float = 1.0) -> jax.Array:
    """n-step double-Q loss.

    q [B, A] online Q(x_t, .); actions [B]; returns [B] the discounted n-step reward sum;
    bootstrap_discount [B] = gamma^m * (1 - terminated) for the m <= n steps actually taken;
    next_q_online / next_q_target [B, A] at x_{t+m}. Target = returns + discount * Q_target(x', argmax_a Q_online).
    Huber loss (delta ``huber_delta``; ``0`` gives plain L2).
    """
    a_star = jnp.argmax(next_q_online, axis=-1)  # [B]
    boot = jnp.take_along_axis(next_q_target, a_star[:, None], axis=-1)[:, 0]  # [B]
    target = jax.lax.stop_gradient(returns + bootstrap_discount * boot)
    q_taken = jnp.take_along_axis(q, actions[:, None].astype(jnp.int32), axis=-1)[:, 0]  # [B]
    err = q_taken - target
    if huber_delta <= 0:
        return jnp.mean(0.5 * jnp.square(err))
    abs_err = jnp.abs(err)
    quad = jnp.minimum(abs_err, huber_delta)
    return jnp.mean(0.5 * quad ** 2 + huber_delta * (abs_err - quad))
