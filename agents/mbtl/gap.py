"""Linear generalisation-gap model: J_hat(pi_x, x') = max(J(x) - slope * d(x, x'), 0).

Contexts live in normalised coordinates ``u in [0, 1]^D`` (see ``agents.mbtl.contexts``); for a 1-D grid of N
contexts ``u_i = i / (N - 1)``, so the MBTL reference's slope of 0.005 per grid step is ``0.005 * (N - 1)`` here.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

DISTANCES = ("l1", "l2", "linf")


def pairwise_distance(u_a: jax.Array, u_b: jax.Array, metric: str = "l1") -> jax.Array:
    """Distances between normalised contexts u_a [A, D] and u_b [B, D] -> [A, B]."""
    if metric not in DISTANCES:
        raise ValueError(f"unknown distance metric {metric!r}; allowed: {', '.join(DISTANCES)}")
    diff = jnp.abs(u_a[:, None, :] - u_b[None, :, :])  # [A, B, D]
    if metric == "l1":
        return diff.sum(-1)
    if metric == "l2":
        return jnp.sqrt((diff ** 2).sum(-1))
    return diff.max(-1)


def predicted_transfer(perf: jax.Array, dist: jax.Array, slope: float | jax.Array) -> jax.Array:
    """J_hat for sources with training performance perf [S] at distances dist [S, T] -> [S, T]."""
    return jnp.maximum(perf[:, None] - slope * dist, 0.0)


def estimate_slope(transfer_rows: np.ndarray, dist_rows: np.ndarray, own: np.ndarray,
                   min_slope: float = 0.0) -> float:
    """Least-squares slope (through the origin) of the observed gap vs distance.

    transfer_rows [S, T]: observed J(pi_s, x_t) of the S trained sources on all targets; dist_rows [S, T]:
    their distances; own [S]: J(pi_s, x_s). The gap ``own - transfer`` is regressed on the distance; targets the
    policy already fails on (transfer == 0) are dropped because the ``max(., 0)`` clips their gap.
    Returns ``max(slope, min_slope)``; with no usable pair returns ``min_slope``.
    """
    transfer_rows = np.asarray(transfer_rows, np.float64)
    dist_rows = np.asarray(dist_rows, np.float64)
    if transfer_rows.shape != dist_rows.shape or transfer_rows.ndim != 2:
        raise ValueError(f"estimate_slope: transfer [S, T] and dist [S, T] must match, got "
                         f"{transfer_rows.shape} vs {dist_rows.shape}")
    gap = np.asarray(own, np.float64)[:, None] - transfer_rows  # [S, T]
    keep = (transfer_rows > 0) & (dist_rows > 0)
    if not keep.any():
        return float(min_slope)
    d, g = dist_rows[keep], gap[keep]
    return float(max(np.sum(d * g) / np.sum(d * d), min_slope))
