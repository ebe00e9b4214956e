"""PVN's learning rule as small pure functions (batch-level; shapes in comments).

* ``uniform_policy_targets``: expected-SARSA target for the uniform random policy,
  ``y_i = r_i + gamma * (1 - term) * mean_a Q_target(x', a; S_i)`` (off-policy from any behaviour data).
* ``pvn_td_loss``: L2 (mean squared) TD error of the taken action's Q over all tasks.
* ``ema_update``: target parameters ``tau * target + (1 - tau) * online`` (tau = 0.99 in the paper).
The linear-Q evaluation's double-DQN loss is the DQN agent's (``agents.dqn.learner.make_dqn_update``).
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
