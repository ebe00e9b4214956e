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


# ------------------------------------------------------------------ empirical gap (the robust default's model)
def grid_index(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer grid coordinates of contexts u [N, D]: the rank of each coordinate among its axis' distinct values.

    Returns (idx [N, D] int, sizes [D] number of distinct values per axis). For the grids ``contexts.make_grid``
    builds (u = i / (num - 1)) this recovers i; for any other point set it is the per-axis rank.
    """
    u = np.round(np.asarray(u, np.float64), 6)
    idx = np.zeros(u.shape, np.int64)
    sizes = np.zeros(u.shape[1], np.int64)
    for d in range(u.shape[1]):
        values, inverse = np.unique(u[:, d], return_inverse=True)
        idx[:, d], sizes[d] = inverse.reshape(-1), values.size
    return idx, sizes


def _isotonic_increasing(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of y [L] (pool-adjacent-violators); w [L] > 0."""
    blocks: list[list[float]] = []  # [value, weight, length]
    for yi, wi in zip(y, w):
        blocks.append([float(yi), float(wi), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(n, v) for v, _, n in blocks])


def empirical_gap(rows: np.ndarray, trained: np.ndarray, idx: np.ndarray, sizes: np.ndarray,
                  level: np.ndarray, monotone_2d: bool = False) -> np.ndarray:
    """Predicted gap G [N, N] (candidate source x target) learned from the observed transfer rows.

    rows [k, N]: observed transfer of the k trained sources to every target; trained [k]: their indices;
    idx [N, D], sizes [D]: integer grid coordinates (``grid_index``); level [k]: each trained source's own
    performance level (the gap is ``level - transfer``).
    The gap is assumed to depend only on the signed grid offset ``target - source`` (translation invariance), in
    grid steps, not normalised units. It is estimated per offset as the mean over the trained sources that observed
    that offset; in 1-D it is made non-decreasing in |offset| on each side (isotonic fit, weighted by counts), which
    keeps asymmetric and non-linear (sharp, saturating) gaps; unobserved offsets inside the observed range are
    interpolated and those beyond it continue linearly. Elsewhere (D > 1) a per-axis, per-side linear gap is fitted
    by least squares on every observed pair (clipped at 0); with ``monotone_2d`` the gap is a non-decreasing function
    of that linear prediction (isotonic fit, ``_monotone_in_linear``), which keeps its directions and learns the shape.
    """
    rows = np.asarray(rows, np.float64)
    trained = np.asarray(trained, np.int64)
    idx = np.asarray(idx, np.int64)
    sizes = np.asarray(sizes, np.int64)
    n, dim = idx.shape
    span = 2 * sizes - 1  # [D] possible offsets per axis: -(size-1) .. size-1
    strides = np.concatenate([[1], np.cumprod(span[:-1])])  # [D]

    def code(off):  # [..., D] signed offsets -> flat table index
        return ((off + sizes - 1) * strides).sum(-1)

    off = idx[None, :, :] - idx[trained][:, None, :]  # [k, N, D]
    g = np.asarray(level, np.float64)[:, None] - rows  # [k, N] observed gap
    table_size = int(np.prod(span))
    total = np.bincount(code(off).reshape(-1), weights=g.reshape(-1), minlength=table_size)
    count = np.bincount(code(off).reshape(-1), minlength=table_size).astype(np.float64)
    # linear asymmetric fallback: gap ~ sum_d a_d+ max(off_d, 0) + a_d- max(-off_d, 0) (least squares, >= 0)
    feats = np.concatenate([np.maximum(off, 0), np.maximum(-off, 0)], -1).reshape(-1, 2 * dim).astype(np.float64)
    coef = np.linalg.lstsq(feats, g.reshape(-1), rcond=None)[0] if feats.any() else np.zeros(2 * dim)
    coef = np.maximum(coef, 0.0)
    seen = count > 0
    table = np.where(seen, total / np.maximum(count, 1), 0.0)
    if dim == 1:
        c = int(sizes[0]) - 1  # table position of offset 0
        table[c] = 0.0
        for side in (slice(c, None), slice(c, None, -1)):  # offsets 0, 1, 2, ... and 0, -1, -2, ...
            t, w = table[side], count[side].copy()
            w[0] = 1e6  # the gap at offset 0 is 0 by definition
            ok = w > 0
            fitted = np.interp(np.arange(t.size), np.nonzero(ok)[0], _isotonic_increasing(t[ok], w[ok]))
            last = int(np.nonzero(ok)[0][-1])  # beyond the farthest observed offset: continue linearly
            slope = coef[0] if side.step is None else coef[1]
            fitted[last:] = fitted[last] + slope * np.arange(t.size - last)
            table[side] = fitted
            seen[side] = True
    else:
        seen[:] = False  # D > 1: too few sources share an offset vector; the linear model is far less noisy
    all_off = idx[None, :, :] - idx[:, None, :]  # [N, N, D] target - candidate
    all_feats = np.concatenate([np.maximum(all_off, 0), np.maximum(-all_off, 0)], -1)  # [N, N, 2D]
    if dim > 1 and monotone_2d and coef.max() > 0:
        linear = _monotone_in_linear(feats, g.reshape(-1), all_feats, coef)
    else:
        linear = np.maximum(all_feats @ coef, 0.0)
    codes = code(all_off)
    return np.where(seen[codes], table[codes], linear)  # [N, N]


def _monotone_in_linear(feats: np.ndarray, g: np.ndarray, all_feats: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """D > 1: the gap as a non-decreasing function of the asymmetric linear model's own prediction (a direction-
    weighted distance), fitted by isotonic regression on the observed pairs: keeps the linear model's directions and
    learns the shape (saturating for specialists, convex, ...). feats [P, 2D] / g [P]: observed pairs; all_feats
    [N, N, 2D]; coef [2D] >= 0 (floored at 5% of the largest so that every direction still counts as distance)."""
    w = np.maximum(coef, 0.05 * coef.max())
    d = feats @ w  # [P]
    scale = max(d.max(), 1e-9)
    key = np.round(d / scale * 200).astype(np.int64)  # bins of 0.5% of the observed range
    total = np.bincount(key, weights=g, minlength=201)
    count = np.bincount(key, minlength=201).astype(np.float64)
    ok = count > 0
    ok[0] = True  # the gap at distance 0 is 0 by definition
    total[0], count[0] = 0.0, max(count[0], 1e6)
    xs = np.nonzero(ok)[0] * scale / 200
    fitted = _isotonic_increasing(total[ok] / count[ok], count[ok])
    d_all = all_feats @ w  # [N, N]
    out = np.interp(d_all, xs, fitted)
    beyond = d_all > xs[-1]  # past the farthest observed distance: continue with the linear model's slope
    return np.where(beyond, fitted[-1] + (d_all - xs[-1]) * (coef @ w) / max(w @ w, 1e-12), np.maximum(out, 0.0))


def estimate_noise(rows: np.ndarray, idx: np.ndarray) -> float:
    """Cell-noise std estimated from observed transfer rows [k, N]: robust spread (MAD) of the differences between
    grid neighbours (idx [N, D]: integer grid coordinates), divided by sqrt(2). Cells at the clip bounds 0 and 1
    are left out; returns 0 when no neighbour pair is usable."""
    rows = np.asarray(rows, np.float64)
    idx = np.asarray(idx, np.int64)
    step = np.abs(idx[:, None, :] - idx[None, :, :]).sum(-1) == 1  # [N, N] grid neighbours
    a, b = np.nonzero(np.triu(step))
    diffs = []
    for row in rows:
        ok = (row[a] > 0) & (row[a] < 1) & (row[b] > 0) & (row[b] < 1)
        diffs.append(row[a][ok] - row[b][ok])
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    if d.size < 4:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def denoised_levels(rows: np.ndarray, gap_rows: np.ndarray, level: np.ndarray,
                    reach: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Own-performance levels of the trained sources re-estimated from their whole rows.

    Each observed cell, lifted by its predicted gap (``rows + gap_rows``), is a noisy reading of its source's own
    level; the median over the cells the gap model trusts (unclipped, predicted gap < ``reach`` x level) is far less
    noisy than the single diagonal cell. rows, gap_rows [k, N]; level [k] current levels.
    Returns (levels [k], cells used per source [k]); a source with fewer than 3 usable cells keeps its level.
    """
    rows = np.asarray(rows, np.float64)
    lifted = rows + gap_rows
    use = (rows > 0.0) & (rows < 1.0) & (gap_rows < reach * np.asarray(level)[:, None])
    out, used = np.asarray(level, np.float64).copy(), use.sum(1)
    for i in range(rows.shape[0]):
        if used[i] >= 3:
            out[i] = float(np.median(lifted[i, use[i]]))
    return out, np.maximum(used, 1)
