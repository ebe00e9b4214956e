"""Acquisition functions of MBTL's selection step (pure, jittable).

Notation: N candidate source contexts = N target contexts (the same grid), normalised coordinates.
  mu, sigma [N]   GP posterior of the training performance J at every candidate
  dist [N, N]     context distance d(candidate, target)
  best [N]        best performance obtained so far on every target by the trained sources (0 before any)
  available [N]   bool: candidate still selectable (not yet trained, inside the reduced search space)

The paper's greedy marginal-improvement acquisition (Cho et al., NeurIPS 2024, eq. for MBTL-GP):
  a(x) = mean_{x'} max(mu(x) + beta_k sigma(x) - slope d(x, x') - best(x'), 0),  beta_k = sqrt(log(k + 1)).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

BETA_SCHEDULES = ("sqrt_log", "constant", "inverse", "zero", "gp_ucb")
ACQUISITIONS = ("ucb", "ei", "expected_gain")


def beta(schedule: str, k: int, beta0: float = 1.0, num_candidates: int = 100, delta: float = 0.1) -> float:
    """Exploration weight at selection step k (k = number of tasks already trained, >= 1).

    sqrt_log: sqrt(log(k + 1)) (the paper's choice); constant: beta0; inverse: beta0 / (k + 1) (the reference
    code's 'new_ucb_beta'); zero: 0 (pure exploitation of the GP mean); gp_ucb: Srinivas et al.'s
    sqrt(2 log(N k^2 pi^2 / (6 delta))).
    """
    if schedule not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta schedule {schedule!r}; allowed: {', '.join(BETA_SCHEDULES)}")
    if k < 1:
        raise ValueError(f"beta: k (tasks already trained) must be >= 1, got {k}")
    if schedule == "sqrt_log":
        return math.sqrt(math.log(k + 1))
    if schedule == "constant":
        return float(beta0)
    if schedule == "inverse":
        return float(beta0) / (k + 1)
    if schedule == "zero":
        return 0.0
    return math.sqrt(2.0 * math.log(num_candidates * k ** 2 * math.pi ** 2 / (6.0 * delta)))


def marginal_improvement_ucb(mu: jax.Array, sigma: jax.Array, beta_k: jax.Array, dist: jax.Array,
                             slope: jax.Array, best: jax.Array) -> jax.Array:
    """Optimistic marginal improvement of training each candidate -> [N] (see module docstring)."""
    ucb = mu + beta_k * sigma  # [N]
    gain = jnp.maximum(ucb[:, None] - slope * dist - best[None, :], 0.0)  # [N, N]
    return gain.mean(axis=1)


def marginal_improvement_ei(mu: jax.Array, sigma: jax.Array, dist: jax.Array, slope: jax.Array,
                            best: jax.Array) -> jax.Array:
    """Expected marginal improvement under J(x) ~ N(mu, sigma^2) -> [N].

    E[max(J(x) - slope d(x, x') - best(x'), 0)] = m Phi(m / s) + s phi(m / s) with m = mu - slope d - best,
    averaged over targets; reduces to max(m, 0) when sigma = 0.
    """
    m = mu[:, None] - slope * dist - best[None, :]  # [N, N]
    s = jnp.maximum(sigma, 1e-9)[:, None]  # [N, 1]
    z = m / s
    ei = m * norm.cdf(z) + s * norm.pdf(z)
    ei = jnp.where(sigma[:, None] > 1e-9, ei, jnp.maximum(m, 0.0))
    return ei.mean(axis=1)


def _expected_excess(m: jax.Array, s: jax.Array) -> jax.Array:
    """E[max(X, 0)] for X ~ N(m, s^2), elementwise (s > 0)."""
    z = m / s
    return m * norm.cdf(z) + s * norm.pdf(z)


def expected_generalised_gain(mu: jax.Array, sigma: jax.Array, gap: jax.Array, best: jax.Array,
                              cell_std: jax.Array) -> jax.Array:
    """Expected gain in generalised performance of training each candidate -> [N].

    The candidate's value on target t is X = min(J - gap[s, t] + eps, 1) with J ~ N(mu, sigma^2) (GP posterior)
    and eps ~ N(0, cell_std^2) (the cell noise every observed value carries), so
    a(s) = mean_t E[max(best(t), X)] - best(t) = mean_t E[max(Y - best, 0)] - E[max(Y - 1, 0)], Y = J - gap + eps.
    Cell noise is what makes a second source near a good one worth something: each target keeps the better of two
    noisy readings. mu, sigma [N]; gap [N, N] candidate x target; best [N]; cell_std [].
    """
    m = mu[:, None] - gap  # [N, N]
    s = jnp.sqrt(sigma[:, None] ** 2 + cell_std ** 2 + 1e-8)  # [N, 1]
    gain = _expected_excess(m - best[None, :], s) - _expected_excess(m - 1.0, s)
    return gain.mean(axis=1)


@jax.jit
def reduced_search_space_1d(u: jax.Array, trained: jax.Array, deficit: jax.Array) -> jax.Array:
    """Search-space reduction on a 1-D context grid -> bool [N] of candidates to keep.

    The selected contexts cut [0, 1] into segments; only the segment whose targets carry the largest total
    remaining deficit (e.g. ``1 - best``, the most improvement left) stays selectable (the paper's corollary:
    with a linear gap the next task lies inside the largest under-covered segment). u [N] coordinates,
    trained [N] bool, deficit [N] >= 0.
    """
    big = 2.0
    left = jnp.max(jnp.where(trained[None, :] & (u[None, :] <= u[:, None]), u[None, :], -big), axis=1)  # [N]
    right = jnp.min(jnp.where(trained[None, :] & (u[None, :] >= u[:, None]), u[None, :], big), axis=1)  # [N]
    same = (left[:, None] == left[None, :]) & (right[:, None] == right[None, :])  # [N, N] same segment
    seg_deficit = (same * deficit[None, :]).sum(axis=1)  # [N]
    keep = seg_deficit >= seg_deficit.max() - 1e-9
    return keep & ~trained


@jax.jit
def reduced_search_space_cells(dist: jax.Array, trained: jax.Array, deficit: jax.Array) -> jax.Array:
    """Multi-dimensional search-space reduction -> bool [N]: keep the Voronoi cell (nearest trained source)
    with the largest total deficit. dist [N, N], trained [N] bool, deficit [N]."""
    d = jnp.where(trained[None, :], dist, jnp.inf)  # [N, N]: distance of each context to each trained source
    cell = jnp.argmin(d, axis=1)  # [N]
    same = cell[:, None] == cell[None, :]
    seg_deficit = (same * deficit[None, :]).sum(axis=1)
    keep = seg_deficit >= seg_deficit.max() - 1e-9
    return keep & ~trained


@jax.jit
def masked_argmax(values: jax.Array, available: jax.Array) -> jax.Array:
    """Index of the largest value among available candidates (ties -> lowest index) -> [] int32."""
    return jnp.argmax(jnp.where(available, values, -jnp.inf)).astype(jnp.int32)
