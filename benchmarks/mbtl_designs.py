"""Selector designs of issue 15, rounds 4-6 (measured on tuning seeds only).

Each design scores every candidate source after the trained set's rows are observed; the replay loop
(``replay``) is the default selector's (centre first, learned gap, denoised levels, estimated cell noise) with only
the scoring changed: ``default`` reproduces ``strategy: mbtl`` with ``portfolio: none`` (the round-3 rule),
``r6_portfolio`` the round-6 default (``portfolio: borda``) and ``prior_shrunk`` ``prior_weight: 2`` (the round-4
candidate, not adopted) (numpy float64 instead of the jitted float32 acquisition). ``bench_mbtl.py designs --design NAME`` runs one of them.

Designs (README, "Fourth round"):
  default         the round-3 rule: averaged-GP posterior of J around the levels' mean + expected generalised gain
  known_j         diagnostic: J of every candidate known (the diagonal), not a selector
  kg2             two-step lookahead on the set objective: joint posterior samples of J; a candidate's score is the
                  sample mean of the generalised performance after it AND the best second pick for that sample
                  (knowledge-gradient flavour: the second pick sees the sampled J)
  pair_portfolio  the best pair (s, s') under the same samples without seeing J (a non-adaptive 2-set portfolio:
                  rewards diversification when J is uncertain); score of s = its best partner's value
  cv_blend        the GP mean shrunk toward the data mean by its leave-one-out skill (1 - LOO MSE / var of levels)
  aniso           D > 1: the posterior averaged over per-axis length scales (8 x 8 x 8 amplitudes)
  amp_small       amplitudes (prior variance of J) 0.002-0.1 instead of 0.01-1
  sd_half / sd_double  J's posterior std x 0.5 / x 2 in the expected gain
  prior_075       the GP's constant prior mean fixed at 0.75 instead of the trained levels' mean
  prior_shrunk    the levels' mean shrunk toward 0.75 with the weight of 2 observations (the round-4 candidate,
                  ``SelectorConfig.prior_level / prior_weight``)
Fifth round (README, "Fifth round"):
  blind_2d        the round-3 rule in 1-D; D > 1: J not predicted (the levels' mean everywhere, sd 0): the learned gap
                  and the cell noise alone pick (``SelectorConfig.j_model_multi_d: blind``)
  hier            the round-3 rule with a hierarchical prior mean: J's constant mean ~ N(0.75, 0.05^2), integrated out
                  (a constant kernel term) instead of the data mean (``SelectorConfig.prior_mean_std: 0.05``)
  round5          hier in 1-D and blind_2d in D > 1 (the fifth-round candidate)
  also measured: blind (J-blind in every D), blind_sd (J-blind with a J std of 0.1), gp_mean (J's GP mean without its
  std, every D), blind_2d_gp_mean (D > 1: the GP mean without its std), shrunk_blind (prior_shrunk in 1-D, J-blind in
  D > 1), round5_std_0.071 / _0.1 / _0.141 (the prior mean's std), round5_shrunk_0.7 / _0.8 (a mean shrunk toward 0.7 /
  0.8 with weight 2 in place of hier), round5_amp_0.1 / _0.3 (hier with amplitudes 0.002-0.1 / 0.003-0.3),
  round5_gate (D > 1: J's hier GP once k >= 4 if its leave-one-out skill is > 0, J-blind otherwise), gate_all (that
  gate in every D), round5_mono (round5 with the monotone 2-D gap)
  true_prior      diagnostic, not a selector: J's posterior under the family's own generator (``synthetic._profile``,
                  plus ``_bumps`` for bumps/dips), by importance sampling of TRUE_PRIOR_SAMPLES draws weighted by the
                  trained levels (std TRUE_PRIOR_LEVEL_STD), with the expected gain on top; the round5 rule where that
                  prior does not describe the diagonal (per-target difficulty) or the effective sample size is below
                  TRUE_PRIOR_MIN_ESS. Needs the structure kind (``replay(..., kind=)``)
Sixth round (README, "Sixth round"; ``borda`` is ``selector.borda``, a rank consensus of two acquisitions):
  r6_portfolio    the round-6 candidate (``SelectorConfig.portfolio: borda``): 1-D, Borda of the expected gain under
                  the hierarchical prior mean (round 5's ``hier``) and under the round-3 plug-in mean; D > 1, Borda of
                  the J-blind expected gain with the monotone gap and the round-3 GP's
  r6_2d           the round-3 rule in 1-D, the candidate's D > 1 portfolio
  r6_hybrid       round 5's ``hier`` in 1-D, the candidate's D > 1 portfolio
  r6_2d_linear / r6_2d_hier  hier in 1-D; D > 1 the portfolio with the linear gap in the blind member / with hier
                  as the GP member
  r6_1d_blind / r6_1d_blind_half  1-D: Borda of hier and the J-blind rule (weight 1 / 0.5 on the blind ranks)
  r6_1d_three     1-D: Borda of hier, the plug-in mean and the round-4 shrunk mean
  r6_mix_2d       D > 1: the average (not the ranks) of hier's and the J-blind expected gain
  r6_gap_sd       the gap's uncertainty in the cell std: 1-D, noise / sqrt(rows that observed the offset); D > 1,
                  noise / sqrt(k) (J-blind in D > 1, hier in 1-D)
  r6_nugget_0.05 / _0.1  round5 with an extra, unpredictable part of J: std 0.05 / 0.1 added to J's posterior (1-D)
  r6_true_gap_2d  diagnostic: D > 1 J-blind with the true noise-free gap (round5 in 1-D); needs ``replay(seed=)``
  win_sharpe / win_prob / win_mean  criterion-aware, 1-D (D > 1: round5): under NUM_SAMPLES joint posterior samples of
                  J (round-3 posterior) plus the learned gap and cell noise, each candidate's value after the next pick
                  is compared with Random's exact mean at k + 1 on the same sampled matrix (d = ours - Random); the
                  score is mean(d) / std(d), P(d > 0), or mean(d)
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from agents.mbtl import gap, gp
from agents.mbtl import strategies as S
from agents.mbtl import synthetic as Y
from agents.mbtl.selector import AVERAGED_GRID, MIN_NOISE, ROBUST_AMPLITUDE, ROBUST_LENGTH_SCALE, center_index

NUM_SAMPLES = 64  # joint posterior samples of J (kg2, pair_portfolio)
TRUE_PRIOR_SAMPLES = 20_000  # draws of J from the family's generator (true_prior)
TRUE_PRIOR_LEVEL_STD = 0.03  # assumed error of a denoised level (true_prior's importance weights)
TRUE_PRIOR_MIN_ESS = 20  # below this effective sample size true_prior falls back to round5
TOP = 20  # lookahead designs score only the default's TOP candidates (the rest get -inf)


def _excess(m: np.ndarray, s: np.ndarray) -> np.ndarray:
    z = m / s
    return m * norm.cdf(z) + s * norm.pdf(z)


def expected_gain(mu, sd, g, best, cell):
    """float64 numpy twin of ``acquisition.expected_generalised_gain`` -> [N]."""
    m = mu[:, None] - g  # [N, T]
    s = np.sqrt(sd[:, None] ** 2 + cell ** 2 + 1e-8)
    return (_excess(m - best[None], s) - _excess(m - 1.0, s)).mean(1)


def _hyper_grid(amp=ROBUST_AMPLITUDE):
    return np.geomspace(*ROBUST_LENGTH_SCALE, AVERAGED_GRID), np.geomspace(*amp, AVERAGED_GRID)


def posterior(st, amp=ROBUST_AMPLITUDE, prior_weight=0.0, prior_level=0.75, prior_mean_std=0.0):
    c = (st["level"].sum() + prior_weight * prior_level) / (len(st["level"]) + prior_weight)
    c = prior_level if prior_mean_std > 0 else c
    mu, sd = gp.averaged_posterior(st["u"][st["tr"]], st["level"] - c, st["noise"], st["u"], *_hyper_grid(amp),
                                   mean_var=prior_mean_std ** 2)
    return mu + c, sd


def joint_samples(st, num: int, rng: np.random.Generator) -> np.ndarray:
    """[num, N] joint samples of J from the averaged posterior: a (length scale, amplitude) drawn by its marginal
    likelihood weight, then the GP's joint posterior at every context."""
    u, x, noise = st["u"], st["u"][st["tr"]], st["noise"]
    c = st["level"].mean()
    y = st["level"] - c
    k = len(y)
    ls, amp = (a.ravel() for a in np.meshgrid(*_hyper_grid(), indexing="ij"))  # [H]
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)  # [k, k]
    cov = amp[:, None, None] * np.exp(-0.5 * d2[None] / ls[:, None, None] ** 2) + noise ** 2 * np.eye(k)
    alpha = np.linalg.solve(cov, np.broadcast_to(y, (ls.size, k))[..., None])[..., 0]  # [H, k]
    log_det = 2 * np.log(np.diagonal(np.linalg.cholesky(cov), axis1=1, axis2=2)).sum(1)
    log_lik = -0.5 * (y[None] * alpha).sum(1) - 0.5 * log_det
    w = np.exp(log_lik - log_lik.max())
    h = rng.choice(ls.size, size=num, p=w / w.sum())
    d2_all = ((u[:, None] - u[None]) ** 2).sum(-1)  # [N, N]
    d2_q = ((u[:, None] - x[None]) ** 2).sum(-1)  # [N, k]
    out = np.empty((num, u.shape[0]))
    for hi in np.unique(h):
        k_qx = amp[hi] * np.exp(-0.5 * d2_q / ls[hi] ** 2)
        cv = amp[hi] * np.exp(-0.5 * d2_all / ls[hi] ** 2) - k_qx @ np.linalg.solve(cov[hi], k_qx.T)
        chol = np.linalg.cholesky(cv + 1e-8 * np.eye(len(cv)))
        rows = np.nonzero(h == hi)[0]
        out[rows] = k_qx @ alpha[hi] + c + (chol @ rng.standard_normal((len(cv), rows.size))).T
    return out


def _lookahead(st, adaptive: bool) -> np.ndarray:
    rng = np.random.default_rng(st["k"] * 7919 + int(st["tr"][0]))
    j = joint_samples(st, NUM_SAMPLES, rng)  # [S, N]
    base = expected_gain(*posterior(st), st["g"], st["best"], st["noise"])
    base[st["tr"]] = -np.inf
    x = np.minimum(j[:, :, None] - st["g"][None], 1.0)  # [S, N, T] sampled cells (without cell noise)
    avail = np.ones(len(base), bool)
    avail[st["tr"]] = False
    score = np.full(len(base), -np.inf)
    for s in np.argsort(-base)[:TOP]:
        after = np.maximum(st["best"][None], x[:, s])  # [S, T]
        v = np.maximum(after[:, None], x).mean(-1)  # [S, N] set value with s and each second pick
        v[:, ~avail] = -np.inf
        v[:, s] = -np.inf
        score[s] = v.max(1).mean() if adaptive else v.mean(0).max()
    return score


def _loo_skill(st) -> float:
    k = len(st["tr"])
    if k < 3:
        return 0.0
    err = []
    for i in range(k):
        keep = np.arange(k) != i
        sub = dict(st, tr=st["tr"][keep], level=st["level"][keep])
        err.append(posterior(sub)[0][st["tr"][i]] - st["level"][i])
    return float(np.clip(1 - np.mean(np.square(err)) / max(st["level"].var(), 1e-9), 0.0, 1.0))


def _aniso_posterior(st, ls, amps):
    """Averaged posterior over per-axis length scales (every combination of ls [L] per axis) x amps [A]."""
    x, xq = st["u"][st["tr"]], st["u"]
    c = st["level"].mean()
    y = st["level"] - c
    k, dim = len(y), x.shape[1]
    grids = np.meshgrid(*([ls] * dim), amps, indexing="ij")
    scale = np.stack([g.ravel() for g in grids[:dim]], -1)  # [H, D]
    amp = grids[dim].ravel()  # [H]
    d2 = np.einsum("ijd,hd->hij", (x[:, None] - x[None]) ** 2, 1 / scale ** 2)  # [H, k, k]
    d2q = np.einsum("ijd,hd->hij", (xq[:, None] - x[None]) ** 2, 1 / scale ** 2)  # [H, M, k]
    cov = amp[:, None, None] * np.exp(-0.5 * d2) + st["noise"] ** 2 * np.eye(k)
    alpha = np.linalg.solve(cov, np.broadcast_to(y, (amp.size, k))[..., None])[..., 0]
    log_lik = -0.5 * (y[None] * alpha).sum(1) - np.log(np.diagonal(np.linalg.cholesky(cov), axis1=1, axis2=2)).sum(1)
    cross = amp[:, None, None] * np.exp(-0.5 * d2q)
    mean = np.einsum("hmk,hk->hm", cross, alpha)
    var = amp[:, None] - np.einsum("hmk,hkm->hm", cross, np.linalg.solve(cov, np.transpose(cross, (0, 2, 1))))
    w = np.exp(log_lik - log_lik.max())
    w /= w.sum()
    mix = w @ mean
    return mix + c, np.sqrt(np.maximum(w @ (np.maximum(var, 1e-10) + mean ** 2) - mix ** 2, 1e-10))


def _score_default(st, sd_scale=1.0, amp=ROBUST_AMPLITUDE, **prior):
    mu, sd = posterior(st, amp, **prior)
    return expected_gain(mu, sd_scale * sd, st["g"], st["best"], st["noise"])


def _score_cv_blend(st):
    mu, sd = posterior(st)
    c = st["level"].mean()
    return expected_gain(c + _loo_skill(st) * (mu - c), sd, st["g"], st["best"], st["noise"])


def _score_aniso(st):
    if st["u"].shape[1] == 1:
        return _score_default(st)
    mu, sd = _aniso_posterior(st, np.geomspace(0.05, 0.25, 8), np.geomspace(0.01, 1.0, 8))
    return expected_gain(mu, sd, st["g"], st["best"], st["noise"])


def _score_blind(st, sd=0.0, g=None):
    n = st["u"].shape[0]
    return expected_gain(np.full(n, st["level"].mean()), np.full(n, sd), st["g"] if g is None else g, st["best"],
                         st["noise"])


def _score_gp_mean(st):
    mu, _ = posterior(st)
    return expected_gain(mu, np.zeros_like(mu), st["g"], st["best"], st["noise"])


def _score_blind_monotone(st):
    """J-blind with the gap re-learned as a monotone function of the asymmetric linear distance (gap_2d: monotone)."""
    idx, sizes = gap.grid_index(st["u"])
    g = gap.empirical_gap(st["m"][st["tr"]], st["tr"], idx, sizes, st["level"], True)
    return _score_blind(st, g=g)


def _gated(st, always_gp_1d=True):
    """J's hierarchical GP where it has shown skill (leave-one-out skill > 0 once k >= 4), J-blind otherwise."""
    if (always_gp_1d and st["u"].shape[1] == 1) or (not always_gp_1d and st["k"] < 4):
        return _score_default(st, prior_mean_std=0.05)
    if st["k"] >= 4 and _loo_skill(st) > 0:
        return _score_default(st, prior_mean_std=0.05)
    return _score_blind(st)


def _score_hier_amp(st, amp):
    return expected_gain(*posterior(st, amp=amp, prior_mean_std=0.05), st["g"], st["best"], st["noise"])


def _one_d_or_blind(score_1d):
    return lambda st: score_1d(st) if st["u"].shape[1] == 1 else _score_blind(st)


_generator_draws: dict = {}


def _generator_prior(u: np.ndarray, bumps: bool) -> np.ndarray:
    """[TRUE_PRIOR_SAMPLES, N] draws of J on the grid u [N, D] from synthetic.py's own generator (cached)."""
    key = (u.shape, bumps)
    if key not in _generator_draws:
        out = np.empty((TRUE_PRIOR_SAMPLES, u.shape[0]))
        for i in range(TRUE_PRIOR_SAMPLES):
            rng = np.random.default_rng(10 ** 7 + i)  # far from every tuning and held-out seed
            j = Y._profile(rng, u)
            out[i] = Y._bumps(rng, u, j) if bumps else j
        _generator_draws[key] = out
    return _generator_draws[key]


def _score_true_prior(st):
    if st["kind"] == "target_difficulty":  # the diagonal is J x difficulty, not J
        return DESIGNS["round5"](st)
    draws = _generator_prior(st["u"], st["kind"] == "bumps_dips")
    log_w = -0.5 * ((draws[:, st["tr"]] - st["level"][None]) ** 2).sum(1) / TRUE_PRIOR_LEVEL_STD ** 2
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    if 1.0 / (w ** 2).sum() < TRUE_PRIOR_MIN_ESS:
        return DESIGNS["round5"](st)
    mu = w @ draws
    sd = np.sqrt(np.maximum(w @ (draws - mu) ** 2, 1e-10))
    return expected_gain(mu, sd, st["g"], st["best"], st["noise"])


def _score_versus_random(st, mode: str):
    if st["u"].shape[1] > 1:
        return DESIGNS["round5"](st)
    rng = np.random.default_rng(st["k"] * 7919 + int(st["tr"][0]))
    n, k = st["u"].shape[0], st["k"]
    j = joint_samples(st, NUM_SAMPLES, rng)  # [S, N]
    cells = np.clip(j[:, :, None] - st["g"][None] + st["noise"] * rng.standard_normal((NUM_SAMPLES, n, n)), 0, 1)
    cells[:, st["tr"]] = st["m"][st["tr"]][None]  # [S, N, T]; the trained rows are observed
    w = np.array([math.comb(n - i, k) for i in range(1, n + 1)], np.float64) / math.comb(n, k + 1)  # [N]
    random_next = np.einsum("i,sit->s", w, -np.sort(-cells, axis=1)) / n  # [S] Random's exact mean at k + 1
    d = np.maximum(st["best"][None, None], cells).mean(2) - random_next[:, None]  # [S, N]
    if mode == "sharpe":
        return d.mean(0) / (d.std(0) + 1e-4)
    if mode == "prob":
        return (d > 0).mean(0) + 1e-3 * d.mean(0)
    return d.mean(0)


def _borda(first, second):
    from agents.mbtl.selector import borda
    return borda(np.asarray(first, np.float64), np.asarray(second, np.float64))


def _portfolio_2d(st, blind_gap="monotone", gp_prior=None):
    blind = _score_blind_monotone(st) if blind_gap == "monotone" else _score_blind(st)
    return _borda(blind, _score_default(st, **(gp_prior or {})))


def _portfolio(st, one_d="borda"):
    if st["u"].shape[1] > 1:
        return _portfolio_2d(st)
    hier = _score_default(st, prior_mean_std=0.05)
    if one_d == "hier":
        return hier
    if one_d == "default":
        return _score_default(st)
    if one_d == "three":  # three prior means, Borda over all of them
        scores = (hier, _score_default(st), _score_default(st, prior_weight=2.0))
        return sum(np.argsort(np.argsort(v)) for v in scores) + 1e-6 * hier / (np.abs(hier).max() + 1e-12)
    if one_d.startswith("blind"):  # the J-blind rule as the second voter, its ranks weighted
        w = 0.5 if one_d == "blind_half" else 1.0
        return np.argsort(np.argsort(hier)) + w * np.argsort(np.argsort(_score_blind(st))) + 1e-6 * hier / (
            np.abs(hier).max() + 1e-12)
    return _borda(hier, _score_default(st))


def _score_mix_2d(st):
    hier = _score_default(st, prior_mean_std=0.05)
    return hier if st["u"].shape[1] == 1 else 0.5 * hier + 0.5 * _score_blind(st)


def _score_gap_sd(st):
    """round5 with the learned gap's own uncertainty added to every cell's std (count-based, see the docstring)."""
    n, k = st["u"].shape[0], len(st["tr"])
    if st["u"].shape[1] == 1:
        mu, sd = posterior(st, prior_mean_std=0.05)
        off = np.arange(n)[None, :] - np.arange(n)[:, None]  # [cand, target] signed offsets
        seen = sum(((s + off) >= 0) & ((s + off) < n) for s in st["tr"])  # [N, N] rows that observed the offset
        sd_gap = st["noise"] / np.sqrt(np.maximum(seen, 0.25))
    else:
        mu, sd = np.full(n, st["level"].mean()), np.zeros(n)
        sd_gap = np.full((n, n), st["noise"] / np.sqrt(k))
    m = mu[:, None] - st["g"]
    s = np.sqrt(sd[:, None] ** 2 + st["noise"] ** 2 + sd_gap ** 2 + 1e-8)
    return (_excess(m - st["best"][None], s) - _excess(m - 1.0, s)).mean(1)


def _score_nugget(st, extra):
    if st["u"].shape[1] > 1:
        return _score_blind(st)
    mu, sd = posterior(st, prior_mean_std=0.05)
    return expected_gain(mu, np.sqrt(sd ** 2 + extra ** 2), st["g"], st["best"], st["noise"])


def _score_true_gap_2d(st):
    if st["u"].shape[1] == 1:
        return DESIGNS["round5"](st)
    old = Y.MAX_NOISE
    Y.MAX_NOISE = 0.0  # the generator draws the same numbers; the cell noise is then scaled by 0
    try:
        clean = Y.generate(st["seed"]).m
    finally:
        Y.MAX_NOISE = old
    return _score_blind(st, g=np.diag(clean)[:, None] - clean)


def _score_known(st):
    j = np.diag(st["m"])
    return expected_gain(j, np.zeros_like(j), st["g"], st["best"], st["noise"])


DESIGNS = {
    "default": _score_default,
    "known_j": _score_known,
    "kg2": lambda st: _lookahead(st, adaptive=True),
    "pair_portfolio": lambda st: _lookahead(st, adaptive=False),
    "cv_blend": _score_cv_blend,
    "aniso": _score_aniso,
    "amp_small": lambda st: _score_default(st, amp=(0.002, 0.1)),
    "sd_half": lambda st: _score_default(st, sd_scale=0.5),
    "sd_double": lambda st: _score_default(st, sd_scale=2.0),
    "prior_075": lambda st: _score_default(st, prior_weight=1e9),
    "prior_shrunk": lambda st: _score_default(st, prior_weight=2.0),
    "blind_2d": _one_d_or_blind(_score_default),
    "hier": lambda st: _score_default(st, prior_mean_std=0.05),
    "round5": _one_d_or_blind(lambda st: _score_default(st, prior_mean_std=0.05)),
    "blind": _score_blind,
    "blind_sd": lambda st: _score_blind(st, sd=0.1),
    "gp_mean": _score_gp_mean,
    "blind_2d_gp_mean": lambda st: _score_default(st) if st["u"].shape[1] == 1 else _score_gp_mean(st),
    "shrunk_blind": _one_d_or_blind(lambda st: _score_default(st, prior_weight=2.0)),
    **{f"round5_std_{v}": _one_d_or_blind(lambda st, v=v: _score_default(st, prior_mean_std=v))
       for v in (0.071, 0.1, 0.141)},
    **{f"round5_shrunk_{v}": _one_d_or_blind(lambda st, v=v: _score_default(st, prior_weight=2.0, prior_level=v))
       for v in (0.7, 0.8)},
    "round5_amp_0.1": _one_d_or_blind(lambda st: _score_hier_amp(st, (0.002, 0.1))),
    "round5_amp_0.3": _one_d_or_blind(lambda st: _score_hier_amp(st, (0.003, 0.3))),
    "round5_gate": _gated,
    "gate_all": lambda st: _gated(st, always_gp_1d=False),
    "true_prior": _score_true_prior,
    **{f"win_{mode}": lambda st, mode=mode: _score_versus_random(st, mode) for mode in ("sharpe", "prob", "mean")},
    "r6_portfolio": _portfolio,
    "r6_2d": lambda st: _portfolio(st, "default"),
    "r6_hybrid": lambda st: _portfolio(st, "hier"),
    "r6_2d_linear": lambda st: (_score_default(st, prior_mean_std=0.05) if st["u"].shape[1] == 1
                                else _portfolio_2d(st, "linear")),
    "r6_2d_hier": lambda st: (_score_default(st, prior_mean_std=0.05) if st["u"].shape[1] == 1
                              else _portfolio_2d(st, gp_prior={"prior_mean_std": 0.05})),
    "r6_1d_blind": lambda st: _portfolio(st, "blind"),
    "r6_1d_blind_half": lambda st: _portfolio(st, "blind_half"),
    "r6_1d_three": lambda st: _portfolio(st, "three"),
    "r6_mix_2d": _score_mix_2d,
    "r6_gap_sd": _score_gap_sd,
    "r6_nugget_0.05": lambda st: _score_nugget(st, 0.05),
    "r6_nugget_0.1": lambda st: _score_nugget(st, 0.1),
    "r6_true_gap_2d": _score_true_gap_2d,
    "round5_mono": lambda st: (_score_default(st, prior_mean_std=0.05) if st["u"].shape[1] == 1
                               else _score_blind_monotone(st)),
}


def observe(m: np.ndarray, order: list[int], idx: np.ndarray, sizes: np.ndarray):
    """The default selector's reading of the trained rows: (trained [k], rows [k, N], denoised levels [k],
    learned gap [N, N], cell-noise std), as ``Selector._select_robust`` computes them."""
    tr = np.asarray(order)
    rows = m[tr]  # [k, N] observed transfer rows
    level = rows[np.arange(len(tr)), tr]
    g = gap.empirical_gap(rows, tr, idx, sizes, level)
    level, _ = gap.denoised_levels(rows, g[tr], level)
    g = gap.empirical_gap(rows, tr, idx, sizes, level)  # [N, N]
    return tr, rows, level, g, max(gap.estimate_noise(rows, idx), MIN_NOISE)


def replay(m: np.ndarray, u: np.ndarray, design: str, k_max: int = 15, kind: str | None = None,
           seed: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Generalised performance [k_max] and order of ``design`` replayed on matrix m [N, N], contexts u [N, D]
    (``kind``: the synthetic structure, read only by the true_prior diagnostic; ``seed``: the synthetic seed, read
    only by the r6_true_gap_2d diagnostic)."""
    score_fn = DESIGNS[design]
    u = np.asarray(u, np.float64)
    idx, sizes = gap.grid_index(u)
    order = [center_index(u)]
    while len(order) < k_max:
        tr, rows, level, g, noise = observe(m, order, idx, sizes)
        st = dict(m=m, u=u, tr=tr, level=level, g=g, best=rows.max(0), k=len(tr), noise=noise, kind=kind, seed=seed)
        score = np.array(score_fn(st), np.float64)
        score[tr] = -np.inf
        order.append(int(np.argmax(score)))
    return S.generalized_performance(m, order), order
