"""Gaussian process over contexts (tinygp), hyper-parameters fitted by marginal likelihood with restarts.

Model (the MBTL reference's choice, written for JAX): ``J(x) ~ GP(0, a * RBF(x / l))`` with a constant amplitude
``a``, one length scale per context dimension ``l[D]`` (ARD) and a fixed observation noise ``noise_std**2`` added to
the training diagonal (sklearn's ``alpha``). Inputs are normalised context coordinates in ``[0, 1]^D``.

Everything here is pure and jittable with *fixed shapes*: a selection loop grows the training set from 1 to N
points, so the training set is always passed padded to ``N`` rows with a boolean ``mask``. Padded rows are moved
to distinct far-away coordinates (their kernel rows are exactly 0), given ``y = 0`` and diag ``1``; the
covariance is then block-diagonal, the posterior is exactly the unpadded one and the padded block's
log-likelihood contribution (known in closed form) is subtracted, so the marginal likelihood is exact too.
One compilation serves every step of a selection run.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tinygp import GaussianProcess, kernels, transforms

OPTIMIZERS = ("adam", "lbfgs")
_FAR = 1.0e4  # padded rows sit at (i + 1) * _FAR: kernel values exp(-0.5 * (1e4 / 1e2)^2) == 0 in float32


@dataclasses.dataclass
class GPConfig:
    """GP model and fit settings (defaults = the MBTL reference's sklearn setup)."""

    noise_std: float = 0.1  # observation noise std on the normalised performance scale (sklearn alpha = std^2)
    amplitude_low: float = 1e-3  # lower bound of the constant-kernel variance a
    amplitude_high: float = 1e3  # upper bound of a
    length_scale_low: float = 1e-2  # lower bound of each length scale (normalised context units)
    length_scale_high: float = 1e2  # upper bound of each length scale
    num_restarts: int = 9  # extra random starts besides the default start (a=1, l=1), like n_restarts_optimizer
    num_steps: int = 150  # optimiser steps per start (fixed count: one compiled program)
    learning_rate: float = 0.1  # Adam step size in the unconstrained (logit-of-log-bound) parameter space
    optimizer: str = "adam"  # 'adam' (fixed step size) or 'lbfgs' (optax L-BFGS with zoom line search, like sklearn)
    warm_restarts: int = -1  # -1: every fit restarts from scratch; >= 0: a fit given the previous optimum (``init``)
    #                          starts there plus this many random starts, for ``warm_steps`` steps
    warm_steps: int = 50  # optimiser steps per start of a warm-started fit
    grid_size: int = 16  # > 0: fit by a likelihood screen: about grid_size length-scale points (the same count per
    #                      axis, >= 5) x GRID_AMPLITUDES amplitudes in closed form, batched in one jit, zoomed in
    #                      around the best point down to GRID_RESOLUTION, then grid_steps Adam steps (num_restarts
    #                      and num_steps unused).
    #                      0: Adam from 1 + num_restarts random starts, num_steps each (the reference's restarts)
    grid_steps: int = 100  # D > 1 only: Adam steps from the screen's best point (its zoom is axis-aligned and can stop
    #                        on an amplitude-length-scale ridge; in 1-D the screen's 2% steps are used as they are)
    seed: int = 0  # PRNG seed of the random starts (split per fit step by the caller)

    def __post_init__(self) -> None:
        for name in ("amplitude", "length_scale"):
            lo, hi = getattr(self, f"{name}_low"), getattr(self, f"{name}_high")
            if not 0 < lo < hi:
                raise ValueError(f"GPConfig: need 0 < {name}_low < {name}_high, got {lo:g}, {hi:g}")
        if not self.noise_std > 0:
            raise ValueError(f"GPConfig.noise_std must be > 0, got {self.noise_std}")
        if self.num_restarts < 0:
            raise ValueError(f"GPConfig.num_restarts must be >= 0 (extra random starts), got {self.num_restarts}")
        if self.num_steps < 1:
            raise ValueError(f"GPConfig.num_steps must be >= 1 (Adam steps per start), got {self.num_steps}")
        if self.warm_restarts < -1 or self.warm_steps < 1:
            raise ValueError(f"GPConfig: warm_restarts must be >= -1 and warm_steps >= 1, got {self.warm_restarts}, "
                             f"{self.warm_steps}")
        if self.grid_size < 0 or self.grid_steps < 0:
            raise ValueError(f"GPConfig: grid_size and grid_steps must be >= 0 (grid_size 0: random restarts), got "
                             f"{self.grid_size}, {self.grid_steps}")
        if self.warm_restarts >= 0 and self.grid_size > 0:
            raise ValueError("GPConfig: warm starts (warm_restarts >= 0) apply to the random-restart fit; set grid_size "
                             "to 0 with them")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"GPConfig.optimizer={self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if not self.learning_rate > 0:
            raise ValueError(f"GPConfig.learning_rate must be > 0, got {self.learning_rate}")

    @property
    def amplitude_bounds(self) -> tuple[float, float]:
        return (self.amplitude_low, self.amplitude_high)

    @property
    def length_scale_bounds(self) -> tuple[float, float]:
        return (self.length_scale_low, self.length_scale_high)


class GPParams(NamedTuple):
    """Kernel hyper-parameters in log space."""

    log_amplitude: jax.Array  # [] log a
    log_length_scale: jax.Array  # [D] log l


class GPPosterior(NamedTuple):
    mean: jax.Array  # [M] posterior mean of the latent J at the query points
    std: jax.Array  # [M] posterior std of the latent J (noise not included, like sklearn's predict)


def _kernel(params: GPParams) -> kernels.Kernel:
    scale = jnp.exp(-params.log_length_scale)  # [D] inverse length scales
    return jnp.exp(params.log_amplitude) * transforms.Linear(scale, kernels.ExpSquared())


def _pad(x: jax.Array, y: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Move masked-out rows far away; returns x [N, D], y [N], diag [N]."""
    n, d = x.shape
    far = (jnp.arange(n, dtype=x.dtype)[:, None] + 1.0) * _FAR * jnp.ones((1, d), x.dtype)  # [N, D]
    x = jnp.where(mask[:, None], x, far)
    y = jnp.where(mask, y, 0.0)
    return x, y, mask


def log_marginal_likelihood(params: GPParams, x: jax.Array, y: jax.Array, mask: jax.Array,
                            noise_std: float) -> jax.Array:
    """Exact log p(y[mask] | x[mask], params). x [N, D], y [N], mask [N] bool -> []."""
    x, y, mask = _pad(x, y, mask)
    diag = jnp.where(mask, noise_std ** 2, 1.0)  # [N]
    gp = GaussianProcess(_kernel(params), x, diag=diag)
    # padded rows: independent N(0, a + 1) evaluated at 0
    pad_ll = -0.5 * jnp.log(2.0 * jnp.pi * (jnp.exp(params.log_amplitude) + 1.0))
    return gp.log_probability(y) - jnp.sum(~mask) * pad_ll


def posterior(params: GPParams, x: jax.Array, y: jax.Array, mask: jax.Array, x_query: jax.Array,
              noise_std: float) -> GPPosterior:
    """Posterior of the latent J at x_query [M, D] given training x [N, D], y [N], mask [N]."""
    x, y, mask = _pad(x, y, mask)
    diag = jnp.where(mask, noise_std ** 2, 1.0)
    gp = GaussianProcess(_kernel(params), x, diag=diag)
    cond = gp.condition(y, x_query, diag=0.0).gp  # diag=0: latent variance, no jitter added
    return GPPosterior(cond.loc, jnp.sqrt(jnp.maximum(cond.variance, 0.0)))


def _to_params(u: jax.Array, cfg: GPConfig) -> GPParams:
    """Unconstrained u [1 + D] -> bounded log-parameters (sigmoid into the log-bounds)."""
    lo = jnp.log(jnp.array([cfg.amplitude_bounds[0]] + [cfg.length_scale_bounds[0]] * (u.shape[0] - 1)))
    hi = jnp.log(jnp.array([cfg.amplitude_bounds[1]] + [cfg.length_scale_bounds[1]] * (u.shape[0] - 1)))
    logp = lo + (hi - lo) * jax.nn.sigmoid(u)
    return GPParams(logp[0], logp[1:])


def _from_log(logp: jax.Array, cfg: GPConfig) -> jax.Array:
    lo = jnp.log(jnp.array([cfg.amplitude_bounds[0]] + [cfg.length_scale_bounds[0]] * (logp.shape[0] - 1)))
    hi = jnp.log(jnp.array([cfg.amplitude_bounds[1]] + [cfg.length_scale_bounds[1]] * (logp.shape[0] - 1)))
    frac = jnp.clip((logp - lo) / (hi - lo), 1e-4, 1 - 1e-4)
    return jnp.log(frac) - jnp.log1p(-frac)  # logit


def initial_points(key: jax.Array, dim: int, cfg: GPConfig) -> jax.Array:
    """[1 + num_restarts, 1 + D] unconstrained starts: (a=1, l=1) then log-uniform draws within the bounds."""
    first = _from_log(jnp.zeros((1 + dim,)), cfg)[None]  # [1, 1 + D]
    lo = jnp.log(jnp.array([cfg.amplitude_bounds[0]] + [cfg.length_scale_bounds[0]] * dim))
    hi = jnp.log(jnp.array([cfg.amplitude_bounds[1]] + [cfg.length_scale_bounds[1]] * dim))
    logp = jax.random.uniform(key, (cfg.num_restarts, 1 + dim), minval=lo, maxval=hi)  # [R, 1 + D]
    rest = jax.vmap(lambda p: _from_log(p, cfg))(logp)
    return jnp.concatenate([first, rest], axis=0)


GRID_AMPLITUDES = 128  # amplitude values of the likelihood screen (log-spaced within the bounds)
GRID_RESOLUTION = 0.02  # the screen zooms in (re-screens +-1 step around its best point) until its length-scale
#                          step is below this, in log units (2%)


def _axes(lo: jax.Array, hi: jax.Array, num: jax.Array) -> jax.Array:
    """[num] log-spaced points per (lo [P], hi [P]) -> [num, P] (linspace in log space)."""
    return lo + (hi - lo) * jnp.linspace(0.0, 1.0, num)[:, None]


def screen_grid(x: jax.Array, y: jax.Array, mask: jax.Array, noise_std: jax.Array, log_a: jax.Array,
                log_l: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Exact log marginal likelihood on the grid log_a [A] x log_l [G, D] -> (ll [G, A], up to a constant).

    For one length scale the covariance is ``a K_l + s^2 I`` (padded rows: K_l rows zeroed), whose eigenvalues are
    ``a lambda_i + s^2`` with K_l's eigenvectors: one eigendecomposition per length scale gives every amplitude in
    closed form, and the G decompositions run batched (forward only, no gradient). The padded rows add the same
    constant to every grid point, so the maximiser is that of ``log_marginal_likelihood``."""
    keep = (mask[:, None] & mask[None, :]).astype(x.dtype)  # [N, N]
    y = jnp.where(mask, y, 0.0)

    def per_length_scale(ll):  # ll [D] -> [A] log-likelihood of every amplitude
        z = x / jnp.exp(ll)  # [N, D]
        k = jnp.exp(-0.5 * ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)) * keep  # [N, N]
        lam, q = jnp.linalg.eigh(k)  # [N], [N, N]
        proj = (q.T @ y) ** 2  # [N]
        var = jnp.exp(log_a)[:, None] * jnp.maximum(lam, 0.0)[None, :] + noise_std ** 2  # [A, N]
        return -0.5 * (proj[None, :] / var + jnp.log(var)).sum(-1)

    ll = jax.vmap(per_length_scale)(log_l)  # [G, A]
    return jnp.where(jnp.isfinite(ll), ll, -jnp.inf)


def grid_fit(x: jax.Array, y: jax.Array, mask: jax.Array, noise_std: jax.Array, cfg: GPConfig) -> jax.Array:
    """Likelihood screen with zooms (see GPConfig.grid_size) -> best log-parameters [1 + D] (log a, log l)."""
    dim = x.shape[1]
    per_axis = max(5, int(round(cfg.grid_size ** (1.0 / dim))))
    first_step = np.log(cfg.length_scale_high / cfg.length_scale_low) / (per_axis - 1)
    zooms = int(np.ceil(max(np.log(first_step / GRID_RESOLUTION), 0.0) / np.log((per_axis - 1) / 2.0)))
    lo = jnp.log(jnp.array([cfg.amplitude_low] + [cfg.length_scale_low] * dim))  # [1 + D]
    hi = jnp.log(jnp.array([cfg.amplitude_high] + [cfg.length_scale_high] * dim))
    a_lo, a_hi = lo, hi
    for _ in range(1 + zooms):
        log_a = _axes(a_lo[:1], a_hi[:1], GRID_AMPLITUDES)[:, 0]  # [A]
        axes = _axes(a_lo[1:], a_hi[1:], per_axis)  # [per_axis, D]
        log_l = jnp.stack(jnp.meshgrid(*[axes[:, d] for d in range(dim)], indexing="ij"), -1).reshape(-1, dim)
        ll = screen_grid(x, y, mask, noise_std, log_a, log_l)  # [G, A]
        g, a = jnp.unravel_index(jnp.argmax(ll), ll.shape)
        best = jnp.concatenate([log_a[a][None], log_l[g]])  # [1 + D]
        step = (a_hi - a_lo) / jnp.array([GRID_AMPLITUDES - 1] + [per_axis - 1] * dim)
        a_lo, a_hi = jnp.maximum(best - step, lo), jnp.minimum(best + step, hi)
    return best


_FIT_CACHE: dict[tuple, object] = {}


def make_fit(cfg: GPConfig):
    """Cached ``_build_fit``: one jitted function per distinct config (compiled once per bucket size)."""
    key = dataclasses.astuple(cfg)
    if key not in _FIT_CACHE:
        _FIT_CACHE[key] = _build_fit(cfg)
    return _FIT_CACHE[key]


def _build_fit(cfg: GPConfig):
    """Return ``fit(key, x[N, D], y[N], mask[N]) -> (GPParams, log_marginal_likelihood [])`` (jitted).

    Maximises the exact marginal likelihood with Adam (optax) from 1 + num_restarts starts (sequential lax.map) and keeps
    the best start. With no observed point the prior starting point is returned.
    """
    solver = optax.adam(cfg.learning_rate) if cfg.optimizer == "adam" else optax.lbfgs()

    def neg_ll(u, x, y, mask, noise_std):
        return -log_marginal_likelihood(_to_params(u, cfg), x, y, mask, noise_std)

    def run_one(u0, x, y, mask, noise_std, num_steps):
        value_and_grad = jax.value_and_grad(neg_ll)

        def fn(u):
            return neg_ll(u, x, y, mask, noise_std)

        def step(carry, _):
            u, state = carry
            if cfg.optimizer == "adam":
                _, grad = value_and_grad(u, x, y, mask, noise_std)
                grad = jnp.where(jnp.isfinite(grad), grad, 0.0)
                updates, state = solver.update(grad, state, u)
            else:  # L-BFGS reuses the line search's last value and gradient (one evaluation per accepted step)
                value, grad = optax.value_and_grad_from_state(fn)(u, state=state)
                grad = jnp.where(jnp.isfinite(grad), grad, 0.0)
                updates, state = solver.update(grad, state, u, value=value, grad=grad, value_fn=fn)
            return (optax.apply_updates(u, updates), state), None

        (u, _), _ = jax.lax.scan(step, (u0, solver.init(u0)), None, length=num_steps)
        value = neg_ll(u, x, y, mask, noise_std)
        return u, jnp.where(jnp.isfinite(value), value, jnp.inf)

    @jax.jit
    def fit_jit(key, x, y, mask, noise_std):
        x = jnp.asarray(x, jnp.float32)
        y = jnp.asarray(y, jnp.float32)
        if cfg.grid_size > 0:  # likelihood screen, then (optionally) Adam from its best point
            logp = grid_fit(x, y, mask, noise_std, cfg)
            if cfg.grid_steps == 0 or x.shape[1] == 1:
                params = GPParams(logp[0], logp[1:])
                return params, log_marginal_likelihood(params, x, y, mask, noise_std)
            return best_of(_from_log(logp, cfg)[None], x, y, mask, noise_std, cfg.grid_steps)
        starts = initial_points(key, x.shape[1], cfg)  # [R + 1, 1 + D]
        return best_of(starts, x, y, mask, noise_std, cfg.num_steps)

    @jax.jit
    def fit_warm_jit(key, x, y, mask, noise_std, init):
        x = jnp.asarray(x, jnp.float32)
        y = jnp.asarray(y, jnp.float32)
        warm_cfg = dataclasses.replace(cfg, num_restarts=cfg.warm_restarts)
        starts = initial_points(key, x.shape[1], warm_cfg).at[0].set(init)  # previous optimum, then random
        return best_of(starts, x, y, mask, noise_std, cfg.warm_steps)

    def best_of(starts, x, y, mask, noise_std, num_steps):
        # lax.map, not vmap: XLA:CPU's batched Cholesky gradient is 10-200x slower than the sequential one
        us, values = jax.lax.map(lambda u0: run_one(u0, x, y, mask, noise_std, num_steps), starts)
        best = jnp.argmin(values)
        return _to_params(us[best], cfg), -values[best]

    def fit(key, x, y, mask, noise_std=None, init: GPParams | None = None):
        """noise_std: observation noise of this fit (None: cfg.noise_std; traced, no recompilation). init: the
        previous fit's optimum, used as a warm start when cfg.warm_restarts >= 0 (else ignored)."""
        noise = np.float32(cfg.noise_std if noise_std is None else noise_std)
        if init is not None and cfg.warm_restarts >= 0:
            u0 = _from_log(jnp.concatenate([jnp.reshape(init.log_amplitude, (1,)), init.log_length_scale]), cfg)
            return fit_warm_jit(key, x, y, mask, noise, u0)
        return fit_jit(key, x, y, mask, noise)

    return fit


def bucket_size(n: int, minimum: int = 8) -> int:
    """Padded training-set size for n points: the next power of two >= max(n, minimum) (few compilations)."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def pad_training_set(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad un-padded x [n, D], y [n] to ``bucket_size(n)`` rows; returns x [M, D], y [M], mask [M]."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"GP training set: want x [n, D] and y [n], got {x.shape} and {y.shape}")
    n, m = x.shape[0], bucket_size(x.shape[0])
    xp = np.zeros((m, x.shape[1]), np.float32)
    yp = np.zeros((m,), np.float32)
    mask = np.zeros((m,), bool)
    xp[:n], yp[:n], mask[:n] = x, y, True
    return xp, yp, mask


# ------------------------------------------------ hyper-parameters averaged, not fitted (the robust default's GP)
def averaged_posterior(x: np.ndarray, y: np.ndarray, noise_std: float, x_query: np.ndarray,
                       length_scales: np.ndarray, amplitudes: np.ndarray,
                       mean_var: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of the latent J at x_query [M, D] averaged over a grid of hyper-parameters (Bayesian model averaging).

    Zero-mean GP ``a * exp(-|x - x'|^2 / (2 l^2))`` (one isotropic length scale) on x [k, D], y [k] (centre y
    first), fixed noise std. Every (l, a) in length_scales [L] x amplitudes [A] is weighted by its exact marginal
    likelihood under a log-uniform prior (the grids are log-spaced, so equal prior weights); the mixture's mean and
    std are returned (each [M]). With 2-5 points one marginal-likelihood optimum is a poor summary (a single point
    sitting at the data mean picks the smallest amplitude); the average keeps the spread of plausible amplitudes and
    length scales. ``mean_var`` > 0 adds a constant ``mean_var`` to the kernel: the GP's constant mean (0 here, y is
    already centred on a prior level) is then itself uncertain, N(0, mean_var), and integrated out (a hierarchical
    prior mean instead of a plug-in one). Small k only (a [L*A, k, k] batch of solves, float64 numpy).
    """
    x, y, xq = (np.asarray(a, np.float64) for a in (x, y, x_query))
    k = y.shape[0]
    ls, amp = (a.ravel() for a in np.meshgrid(length_scales, amplitudes, indexing="ij"))  # [H] each
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # [k, k]
    d2q = ((xq[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # [M, k]
    cov = (amp[:, None, None] * np.exp(-0.5 * d2[None] / ls[:, None, None] ** 2) + mean_var
           + noise_std ** 2 * np.eye(k))
    chol = np.linalg.cholesky(cov)  # [H, k, k]
    alpha = np.linalg.solve(cov, np.broadcast_to(y, (ls.size, k))[..., None])[..., 0]  # [H, k]
    log_lik = -0.5 * (y[None] * alpha).sum(1) - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)  # [H] (+ const)
    cross = amp[:, None, None] * np.exp(-0.5 * d2q[None] / ls[:, None, None] ** 2) + mean_var  # [H, M, k]
    mean = np.einsum("hmk,hk->hm", cross, alpha)  # [H, M]
    explained = np.einsum("hmk,hkm->hm", cross, np.linalg.solve(cov, np.transpose(cross, (0, 2, 1))))  # [H, M]
    var = amp[:, None] + mean_var - explained
    var = np.maximum(var, 1e-10)
    w = np.exp(log_lik - log_lik.max())
    w /= w.sum()  # [H] posterior weights of the hyper-parameters
    mix_mean = w @ mean
    mix_var = w @ (var + mean ** 2) - mix_mean ** 2  # law of total variance
    return mix_mean, np.sqrt(np.maximum(mix_var, 1e-10))
