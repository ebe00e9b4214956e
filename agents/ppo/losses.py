"""PPO's pure math: generalised advantage estimation and the clipped surrogate loss (rlax-style functions).

References: Schulman et al. 2016 (GAE, arXiv:1506.02438); Schulman et al. 2017 (PPO, arXiv:1707.06347).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def gae_advantages(reward_t: jax.Array, value_t: jax.Array, next_value_t: jax.Array, terminated_t: jax.Array,
                   done_t: jax.Array, gamma: float, gae_lambda: float) -> tuple[jax.Array, jax.Array]:
    """GAE over a time-major rollout with same-step autoreset. All inputs ``[T, ...]`` (e.g. ``[T, B]``).

    ``next_value_t`` is ``V`` of the state that *followed* step ``t`` in its own episode (``V(final_obs_t)``), so
    truncated episodes bootstrap correctly. ``terminated_t`` cuts the bootstrap; ``done_t`` (terminated or
    truncated) cuts the advantage recursion, because step ``t+1`` then belongs to a new episode.
        delta_t = r_t + gamma * (1 - terminated_t) * next_value_t - value_t
        A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
    Returns ``(advantages [T, ...], value_targets = advantages + value_t [T, ...])``.
    """
    chex.assert_equal_shape([reward_t, value_t, next_value_t, terminated_t, done_t])
    not_term = 1.0 - terminated_t.astype(jnp.float32)
    not_done = 1.0 - done_t.astype(jnp.float32)
    delta = reward_t + gamma * not_term * next_value_t - value_t  # [T, ...]

    def body(adv_next, xs):
        delta_t, not_done_t = xs
        adv = delta_t + gamma * gae_lambda * not_done_t * adv_next
        return adv, adv

    _, adv = jax.lax.scan(body, jnp.zeros_like(delta[0]), (delta, not_done), reverse=True)
    return adv, adv + value_t


def clipped_surrogate_loss(log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array,
                           clip_eps: float) -> tuple[jax.Array, jax.Array]:
    """PPO-clip policy loss (to minimise) and the fraction of clipped samples. Inputs ``[B]``."""
    chex.assert_equal_shape([log_prob, old_log_prob, advantage])
    ratio = jnp.exp(log_prob - old_log_prob)
    unclipped = ratio * advantage
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    clip_frac = jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))
    return loss, clip_frac


def value_loss(value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: float,
               clip_value: bool) -> jax.Array:
    """0.5 * squared error; with ``clip_value`` the PPO2 pessimistic clipped variant. Inputs ``[B]``."""
    chex.assert_equal_shape([value, old_value, target])
    err = jnp.square(value - target)
    if clip_value:
        clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        err = jnp.maximum(err, jnp.square(clipped - target))
    return 0.5 * jnp.mean(err)
