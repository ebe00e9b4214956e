"""Action distributions as pure functions (log-prob, entropy, sample, mode), written for a batch ``[B]``.

Discrete: ``logits [B, A]``, actions ``[B]`` int32. Diagonal Gaussian: ``(mean [B, D], log_std [B, D])``,
actions ``[B, D]`` float32 (unclipped: clipping to the action box happens outside the distribution).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def categorical_sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)  # [B]


def categorical_log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(logits, axis=-1)  # [B, A]
    return jnp.take_along_axis(log_p, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]  # [B]


def categorical_entropy(logits: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)  # [B]


def categorical_mode(logits: jax.Array) -> jax.Array:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)  # [B]


def gaussian_sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)  # [B, D]


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2.0 * np.pi), axis=-1)  # [B]


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    return jnp.sum(log_std + 0.5 * np.log(2.0 * np.pi * np.e), axis=-1)  # [B]


def sample(key, dist_params, continuous: bool):
    """Sample actions from a discrete (logits) or continuous ((mean, log_std)) policy output."""
    return gaussian_sample(key, *dist_params) if continuous else categorical_sample(key, dist_params)


def log_prob(dist_params, actions, continuous: bool):
    return gaussian_log_prob(*dist_params, actions) if continuous else categorical_log_prob(dist_params, actions)


def entropy(dist_params, continuous: bool):
    return gaussian_entropy(dist_params[1]) if continuous else categorical_entropy(dist_params)


def mode(dist_params, continuous: bool):
    """Greedy action: argmax of the logits, or the Gaussian mean."""
    return dist_params[0] if continuous else categorical_mode(dist_params)
