"""Value/reward transforms of the MuZero family: the invertible squash h, its inverse, and two-hot supports.

h(x) = sign(x)(sqrt(|x|+1)-1) + eps*x (Pohlen et al. 2018, "Observe and Look Further"), eps = 0.001.
Scalars are squashed with h, then encoded as a two-hot distribution over a uniform support
``[-support_max, support_max]`` with ``num_bins`` bins (the support is in h-space, as in the reference).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

EPS = 1e-3


def h(x: jax.Array, eps: float = EPS) -> jax.Array:
    """Invertible squash, elementwise."""
    return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + eps * x


def h_inv(y: jax.Array, eps: float = EPS) -> jax.Array:
    """Exact inverse of ``h`` (closed form of the quadratic), elementwise."""
    return jnp.sign(y) * (
        jnp.square((jnp.sqrt(1.0 + 4.0 * eps * (jnp.abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)) - 1.0)


def support(num_bins: int, support_max: float) -> jax.Array:
    """Bin centres, ``[num_bins]``."""
    if num_bins < 2 or num_bins % 2 == 0:
        raise ValueError(f"num_bins must be odd and >= 3 (a bin at 0), got {num_bins}")
    return jnp.linspace(-support_max, support_max, num_bins)


def scalar_to_two_hot(x: jax.Array, num_bins: int, support_max: float) -> jax.Array:
    """Two-hot encoding of (already transformed) scalars. ``x [...] -> [..., num_bins]``, rows sum to 1."""
    x = jnp.clip(x, -support_max, support_max)
    step = 2.0 * support_max / (num_bins - 1)
    pos = (x + support_max) / step  # fractional bin index in [0, num_bins-1]
    low = jnp.clip(jnp.floor(pos), 0, num_bins - 2)
    frac = pos - low  # weight of the upper bin
    low = low.astype(jnp.int32)
    return (jax.nn.one_hot(low, num_bins) * (1.0 - frac)[..., None]
            + jax.nn.one_hot(low + 1, num_bins) * frac[..., None])


def two_hot_to_scalar(probs: jax.Array, support_max: float) -> jax.Array:
    """Expectation over the support. ``probs [..., num_bins] -> [...]`` (transformed space)."""
    return jnp.sum(probs * support(probs.shape[-1], support_max), axis=-1)


def logits_to_value(logits: jax.Array, support_max: float) -> jax.Array:
    """Categorical head logits ``[..., num_bins]`` -> raw (un-squashed) scalar ``[...]``."""
    return h_inv(two_hot_to_scalar(jax.nn.softmax(logits, axis=-1), support_max))


def value_to_target(x: jax.Array, num_bins: int, support_max: float) -> jax.Array:
    """Raw scalar ``[...]`` -> two-hot target of h(x) ``[..., num_bins]``."""
    return scalar_to_two_hot(h(x), num_bins, support_max)
