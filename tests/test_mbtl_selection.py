"""The robust default selector, the synthetic transfer-matrix family, replay on a CSV matrix, GPConfig checks."""
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.mbtl import gap, gp, strategies as S, synthetic as Y
from agents.mbtl.cli import main as mbtl_main
from agents.mbtl.selector import SelectorConfig


@pytest.mark.parametrize("bad", [dict(noise_std=0.0), dict(noise_std=-1.0), dict(num_restarts=-3),
                                 dict(num_steps=0), dict(learning_rate=0.0), dict(optimizer="sgd"),
                                 dict(warm_restarts=-2), dict(warm_restarts=0), dict(grid_size=-1), dict(grid_steps=-1)])
def test_gp_config_refuses_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        gp.GPConfig(**bad)


def test_warm_started_fit_keeps_the_optimum():
    x = np.linspace(0, 1, 7)[:, None]
    y = 0.8 * np.exp(-((x[:, 0] - 0.3) / 0.2) ** 2) + 0.1
    xp, yp, mask = gp.pad_training_set(x, y)
    restarts = dict(grid_size=0, num_restarts=2, num_steps=100)  # warm starts belong to the random-restart fit
    cold, ll_cold = gp.make_fit(gp.GPConfig(**restarts))(jax.random.PRNGKey(0), xp, yp, mask)
    warm_cfg = gp.GPConfig(**restarts, warm_restarts=0, warm_steps=20)
    _, ll_warm = gp.make_fit(warm_cfg)(jax.random.PRNGKey(1), xp, yp, mask, init=cold)
    assert float(ll_warm) >= float(ll_cold) - 1e-3


@pytest.mark.parametrize("dim", [1, 2])
def test_grid_fit_matches_random_restarts(dim):
    """The likelihood screen (default) reaches the 10-restart Adam optimum, in 1-D and with ARD in 2-D."""
    rng = np.random.default_rng(dim)
    x = rng.uniform(0, 1, (11, dim))
    y = np.sin(5 * x[:, 0]) * 0.3 + 0.6 + 0.02 * rng.standard_normal(11)
    xp, yp, mask = gp.pad_training_set(x, y)
    grid_params, ll_grid = gp.make_fit(gp.GPConfig())(jax.random.PRNGKey(0), xp, yp, mask)
    ll_exact = gp.log_marginal_likelihood(grid_params, xp, yp, mask, 0.1)
    _, ll_adam = gp.make_fit(gp.GPConfig(grid_size=0))(jax.random.PRNGKey(0), xp, yp, mask)
    assert float(ll_grid) == pytest.approx(float(ll_exact), abs=1e-4)  # the screen's value is the exact one
    assert float(ll_grid) >= float(ll_adam) - 1e-2


def test_averaged_posterior_is_the_exact_gp_at_one_grid_point_and_a_mixture_otherwise():
    rng = np.random.default_rng(0)
    x, xq = rng.uniform(0, 1, (6, 2)), rng.uniform(0, 1, (9, 2))
    y = np.sin(4 * x[:, 0]) * 0.2 + 0.05 * rng.standard_normal(6)
    mean, std = gp.averaged_posterior(x, y, 0.05, xq, np.array([0.3]), np.array([0.04]))
    params = gp.GPParams(jnp.log(jnp.float32(0.04)), jnp.log(jnp.full((2,), 0.3, jnp.float32)))
    xp, yp, mask = gp.pad_training_set(x, y)
    exact = gp.posterior(params, xp, yp, mask, jnp.asarray(xq, jnp.float32), 0.05)
    np.testing.assert_allclose(mean, exact.mean, atol=1e-4)
    np.testing.assert_allclose(std, exact.std, atol=1e-4)
    # two length scales: the mixture's mean lies between the two posteriors' means, weighted by marginal likelihood
    both, _ = gp.averaged_posterior(x, y, 0.05, xq, np.array([0.05, 0.3]), np.array([0.04]))
    short, _ = gp.averaged_posterior(x, y, 0.05, xq, np.array([0.05]), np.array([0.04]))
    lo, hi = np.minimum(short, mean), np.maximum(short, mean)
    assert np.all(both >= lo - 1e-12) and np.all(both <= hi + 1e-12)
    with pytest.raises(ValueError, match="robust_model"):
        SelectorConfig(robust_model="magic")
    for bad in ({"prior_level": 1.5}, {"prior_weight": -1.0}):
        with pytest.raises(ValueError, match="prior_level must be in"):
            SelectorConfig(**bad)


def test_prior_weight_shrinks_the_prior_mean_toward_prior_level():
    """With one trained source at a low level, the shrunk prior mean (round 4) predicts more than that level far
    from it; prior_weight 0 (round 3) predicts the level itself everywhere."""
    from agents.mbtl.selector import Selector
    u = np.linspace(0, 1, 21)[:, None]
    m = np.clip(0.4 - 0.5 * np.abs(u - u.T), 0, 1)  # [21, 21] every source at level 0.4
    far = []
    for weight in (0.0, 2.0):
        sel = Selector(u, SelectorConfig(prior_weight=weight))
        _, info = sel.select([10], np.array([0.4]), m[10], jax.random.PRNGKey(0), observed_rows=m[[10]])
        far.append(float(info.mean[0]))
    assert abs(far[0] - 0.4) < 0.02 and far[1] > 0.5, far


def test_hierarchical_prior_mean_is_a_constant_kernel_term_and_pulls_toward_prior_level():
    """prior_mean_std (round 5): the GP's constant mean ~ N(0, mean_var) integrated out equals a GP whose kernel has
    mean_var added (checked against the closed form); in the selector, far from one low level the prediction moves
    toward prior_level, and prior_weight cannot be combined with it."""
    from agents.mbtl.selector import Selector
    rng = np.random.default_rng(1)
    x, xq = rng.uniform(0, 1, (5, 1)), rng.uniform(0, 1, (7, 1))
    y, noise, ls, amp, mv = rng.normal(0, 0.1, 5), 0.05, 0.2, 0.03, 0.01
    kern = lambda a, b: amp * np.exp(-0.5 * (a - b.T) ** 2 / ls ** 2) + mv  # noqa: E731
    cov = kern(x, x) + noise ** 2 * np.eye(5)
    want_mean = kern(xq, x) @ np.linalg.solve(cov, y)
    want_std = np.sqrt(amp + mv - np.einsum("mk,km->m", kern(xq, x), np.linalg.solve(cov, kern(x, xq))))
    mean, std = gp.averaged_posterior(x, y, noise, xq, np.array([ls]), np.array([amp]), mean_var=mv)
    np.testing.assert_allclose(mean, want_mean, atol=1e-10)
    np.testing.assert_allclose(std, want_std, atol=1e-10)
    u = np.linspace(0, 1, 21)[:, None]
    m = np.clip(0.4 - 0.5 * np.abs(u - u.T), 0, 1)  # [21, 21] every source at level 0.4
    sel = Selector(u, SelectorConfig(prior_mean_std=0.05))
    _, info = sel.select([10], np.array([0.4]), m[10], jax.random.PRNGKey(0), observed_rows=m[[10]])
    assert 0.45 < float(info.mean[0]) < 0.75 and float(info.mean[10]) < 0.45, info.mean[[0, 10]]
    for bad in ({"prior_mean_std": -0.1}, {"prior_mean_std": 0.05, "prior_weight": 2.0}):
        with pytest.raises(ValueError, match="prior_mean_std"):
            SelectorConfig(**bad)


def test_blind_j_in_2d_picks_by_the_gap_alone():
    """j_model_multi_d: blind (round 5): in 2-D the prediction of J is the trained levels' mean with no uncertainty,
    so the score is the expected gain of that constant J under the learned gap (exact here) and the estimated cell
    noise; 1-D keeps J's GP; an unknown value is refused."""
    from agents.mbtl import acquisition
    from agents.mbtl.selector import MIN_NOISE, Selector
    axis = np.linspace(0, 1, 5)
    u = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)  # [25, 2]
    d = np.abs(u[:, None] - u[None]).sum(-1) / 2
    m = np.clip(0.8 - 0.6 * d, 0, 1)  # [25, 25] level 0.8 everywhere, linear gap
    centre = 12
    sel = Selector(u, SelectorConfig(j_model_multi_d="blind", portfolio="none"))  # the blind rule alone
    pick, info = sel.select([centre], np.array([0.8]), m[centre], jax.random.PRNGKey(0), observed_rows=m[[centre]])
    np.testing.assert_allclose(info.mean, 0.8, atol=1e-6)
    np.testing.assert_allclose(info.std, 0.0)
    noise = max(gap.estimate_noise(m[[centre]], gap.grid_index(u)[0]), MIN_NOISE)
    want = np.array(acquisition.expected_generalised_gain(np.full(25, 0.8), np.zeros(25), 0.8 - m, m[centre], noise))
    want[centre] = -np.inf
    np.testing.assert_allclose(info.score, want, atol=1e-5)
    assert want[pick] == pytest.approx(want.max(), abs=1e-6)  # (the grid is symmetric: four tied picks)
    one_d = Selector(np.linspace(0, 1, 11)[:, None], SelectorConfig(j_model_multi_d="blind"))
    _, info1 = one_d.select([5], np.array([0.8]), np.full(11, 0.7), jax.random.PRNGKey(0),
                            observed_rows=np.full((1, 11), 0.7))
    assert float(info1.std.max()) > 0.05  # 1-D keeps J's GP
    with pytest.raises(ValueError, match="j_model_multi_d"):
        SelectorConfig(j_model_multi_d="magic")


def test_borda_portfolio_votes_with_ranks():
    """portfolio: borda (round 6): the score is the sum of two acquisitions' ranks (ties broken by the first); in 2-D
    the J-blind member (monotone gap) and the GP member vote, in 1-D the hierarchical-mean and plug-in-mean GPs. A
    candidate ranked second by both beats one ranked first by one and last by the other."""
    from agents.mbtl.selector import Selector, borda
    first, second = np.array([3.0, 2.0, 0.0, 1.0]), np.array([0.0, 2.0, 1.0, 3.0])
    assert int(np.argmax(borda(first, second))) == 1  # ranks 3+0, 2+2, 0+1, 1+3: a tie 4/4 broken by first
    np.testing.assert_array_equal(np.argsort(borda(first, second)), [2, 0, 3, 1])
    axis = np.linspace(0, 1, 5)
    u = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)  # [25, 2]
    d = np.abs(u[:, None] - u[None]).sum(-1) / 2
    m = np.clip(0.8 - 0.6 * d, 0, 1)  # [25, 25]
    tr = [12, 0]
    own, best = np.diag(m)[tr], m[tr].max(0)
    picks = {}
    for cfg in ("gp", "blind", "borda"):
        c = SelectorConfig() if cfg == "borda" else SelectorConfig(j_model_multi_d=cfg, portfolio="none")
        picks[cfg] = Selector(u, c).select(tr, own, best, jax.random.PRNGKey(0), observed_rows=m[tr])
    score = picks["borda"][1].score
    assert np.isinf(score[tr]).all() and (np.sort(score[np.isfinite(score)])[-1] <= 2 * 24 + 1e-5)
    assert picks["borda"][0] in np.argsort(-picks["gp"][1].score)[:12]  # the consensus is good under both members
    assert picks["borda"][0] in np.argsort(-picks["blind"][1].score)[:12]
    one_d = Selector(np.linspace(0, 1, 11)[:, None], SelectorConfig())  # borda is the default
    _, info1 = one_d.select([5], np.array([0.8]), np.full(11, 0.7), jax.random.PRNGKey(0),
                            observed_rows=np.full((1, 11), 0.7))
    assert np.isfinite(info1.score).sum() == 10 and info1.score[np.isfinite(info1.score)].max() <= 2 * 10 + 1e-5
    with pytest.raises(ValueError, match="portfolio"):
        SelectorConfig(portfolio="hedge")


def test_expected_generalised_gain_matches_monte_carlo():
    from agents.mbtl import acquisition
    rng = np.random.default_rng(0)
    mu, sigma = np.array([0.7, 0.5]), np.array([0.1, 0.0])
    g = np.array([[0.0, 0.2, 0.5], [0.3, 0.0, 0.1]])  # [2 candidates, 3 targets]
    best, cell = np.array([0.6, 0.4, 0.95]), 0.08
    got = np.asarray(acquisition.expected_generalised_gain(mu, sigma, g, best, cell))
    j = mu[:, None, None] + sigma[:, None, None] * rng.standard_normal((2, 1, 400_000))  # one J per draw and row
    x = np.minimum(j - g[:, :, None] + cell * rng.standard_normal((2, 3, 400_000)), 1.0)
    want = (np.maximum(best[None, :, None], x) - best[None, :, None]).mean(axis=(1, 2))
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_random_expectation_is_exact():
    m = Y.generate(3).m[:7, :7]
    for k in (1, 2, 4):
        brute = np.mean([S.set_performance(m, c) for c in itertools.combinations(range(7), k)])
        assert S.random_expected(m, 4).perf[k - 1] == pytest.approx(brute, abs=1e-12)


def test_family_is_seeded_varied_and_held_out_is_disjoint():
    a, b = Y.generate(7), Y.generate(7)
    np.testing.assert_array_equal(a.m, b.m)
    fam = Y.family(range(30))
    assert {g.kind for g in fam} == set(Y.KINDS) and {g.u.shape[1] for g in fam} == {1, 2}
    assert all(g.m.shape[0] == g.u.shape[0] and 20 <= g.m.shape[0] <= 100 for g in fam)
    assert all(0.0 <= g.m.min() and g.m.max() <= 1.0 and 0.0 <= g.noise <= Y.MAX_NOISE for g in fam)
    tuning = set(Y.TUNING_SEEDS) | set(Y.EXTRA_TUNING_SEEDS)
    assert not tuning & set(Y.HELD_OUT_SEEDS) and not tuning & set(Y.HELD_OUT_SEEDS_2)
    assert not set(Y.HELD_OUT_SEEDS) & set(Y.HELD_OUT_SEEDS_2) and len(Y.HELD_OUT_SEEDS_2) == 100


def test_empirical_gap_recovers_an_asymmetric_gap():
    u = np.linspace(0, 1, 21)[:, None]
    idx, sizes = gap.grid_index(u)
    steps = idx[None, :, 0] - idx[:, None, 0]  # [S, T] signed grid offsets
    true = np.where(steps > 0, 0.01 * steps, -0.05 * steps)  # shallow to the right, 5x steeper to the left
    m = 0.9 - true
    tr = np.array([10, 3])
    g = gap.empirical_gap(m[tr], tr, idx, sizes, np.diag(m)[tr])
    np.testing.assert_allclose(g, true, atol=1e-9)


def test_robust_default_beats_random_on_held_out_matrices():
    """First 10 held-out seeds (never tuned on), ~20 s CPU. Margins fixed in the first round before any held-out
    outcome was seen, from the tuning seeds of the time (64/100 matrices beaten at every k = 3..15, worst gap
    -0.113). An intermediate version failed them (4/10); so did the round-2 expected-gain variant (6/10 but worst gap
    -0.178 against its own pre-set -0.10). The round-3 default (``robust_model: averaged``) was required to pass these
    same margins before it replaced the round-1 design (5/10, worst -0.131, mean gain +0.038); the round-4 shrunk
    prior mean (``prior_weight: 2``, not adopted: 67/100 held out) got 7/10, worst -0.117, mean gain +0.041. The
    round-5 candidate (``prior_mean_std: 0.05, j_model_multi_d: blind``, 75/100 held out) got 5/10, worst -0.159, mean
    gain +0.031: it failed the worst-gap margin and was not adopted. The round-6 rank portfolio (``portfolio: borda``,
    73/100 on the fresh held-out set against 65/100) got 7/10, worst -0.077, mean gain +0.043 and is the default. The
    issue's full criterion (>= 80%, never 0.02 behind) is not met: README."""
    seeds = Y.HELD_OUT_SEEDS[:10]
    wins, worst, mean_gain = 0, 0.0, []
    for seed in seeds:
        g = Y.generate(seed)
        perf = S.model_based(g.m, g.u, 15, SelectorConfig(), jax.random.PRNGKey(seed)).perf
        rnd = S.random_expected(g.m, 15).perf
        w, d = Y.versus_random(perf, rnd, float(g.m.max(0).mean()))
        wins, worst = wins + w, min(worst, d)
        mean_gain.append(np.mean(perf[2:15] - rnd[2:15]))
    assert wins >= 5, f"beats Random at every k on only {wins}/10"
    assert worst >= -0.15, worst
    assert np.mean(mean_gain) > 0.01


def test_replay_matrix_cli_writes_outputs_and_refuses_bad_files(tmp_path, capsys):
    m = Y.generate(1).m  # 50 x 50
    good = tmp_path / "m.csv"
    np.savetxt(good, m, delimiter=",")
    out = tmp_path / "out"
    assert mbtl_main(["replay", "--matrix", str(good), "--strategies", "random,mbtl,sequential_oracle,"
                      "exhaustive_oracle", "--k-max", "4", "--out", str(out)]) == 0
    assert {"curves.csv", "summary.json", "perf_vs_tasks.png", "perf_vs_samples.png"} <= {p.name for p in
                                                                                          out.iterdir()}
    assert (out / "curves.csv").read_text().count("\nMBTL,") == 4
    cases = {"rect": (m[:5], "square"), "nan": (np.where(np.eye(50) > 0, np.nan, m), "NaN"),
             "range": (2 * m, r"\[0, 1\]")}
    for name, (bad, message) in cases.items():
        path = tmp_path / f"{name}.csv"
        np.savetxt(path, bad, delimiter=",")
        assert mbtl_main(["replay", "--matrix", str(path), "--out", str(tmp_path / name)]) == 2
        assert re.search(message, capsys.readouterr().err)
    ctx = tmp_path / "ctx.csv"
    np.savetxt(ctx, np.arange(49.0)[:, None], delimiter=",")
    assert mbtl_main(["replay", "--matrix", str(good), "--contexts", str(ctx), "--out", str(out)]) == 2
    assert "one row per context (50)" in capsys.readouterr().err
    assert mbtl_main(["replay", "--matrix", str(good), "--strategies", "magic",
                      "--out", str(out)]) == 2
    assert "unknown strategy 'magic'" in capsys.readouterr().err


def test_family_generator_is_its_latents_assembled_and_unchanged():
    """Round 7 split ``generate`` into ``draw`` (the random draws, same order) + ``assemble`` (the matrix from J).
    The family must stay the one every earlier round measured: sums pinned from the pre-split generator (its
    matrices for seeds 0-299 and both held-out sets hashed bit-identical before and after the split)."""
    pinned = {0: 3415.829216284933, 1: 264.19837993815963, 2: 2179.7501274524357, 3: 2385.0066268726,
              4: 2134.6575347088396, 10: 2331.900720284818, 12: 929.5917356369384}
    for seed, total in pinned.items():
        g, lat = Y.generate(seed), Y.draw(seed)
        assert np.array_equal(Y.assemble(lat), g.m)
        assert float(g.m.sum()) == pytest.approx(total, abs=1e-8)
    lat = Y.draw(3)  # bumps/dips, N = 80
    j = lat.j.copy()
    j[5:] = 0.5
    m, m2 = Y.assemble(lat), Y.assemble(lat, j)
    assert np.array_equal(m2[:5], m[:5]) and not np.allclose(m2[5:], m[5:])  # row s depends on J only via J(s)
    assert np.array_equal(Y.assemble(lat, np.stack([lat.j, j]))[1], m2)  # a batch of profiles


def test_k3_certificate_defeats_the_default_selector():
    """Round 7 (README, "Seventh round"): on seed 30 (1-D generalist, N = 20) every deterministic selector can be
    shown two rows after which each third pick is more than 0.02 behind Random at k = 3 on some variant with those
    rows. The default, replayed from scratch on the variant that defeats its picks, makes the same picks (it sees
    only trained rows) and trails Random by more than 0.02."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import mbtl_limit as L
    m = Y.generate(30).m  # the batched Random mean the certificates use is strategies.random_expected's
    assert L.random_mean_k(np.stack([m, m[::-1]]), 3) == pytest.approx([S.random_expected(m, 3).perf[2]] * 2)
    cert = L.game(30, 4000)
    assert cert["certified"] and cert["game_margin"] > L.MARGIN
    lat, pool = cert["_lat"], cert["_pool"]
    _, jv = L.variants(lat, pool, 3, 11, 0.6, 0.55)  # every variant is the generator's J: lo' in range, hi' in range
    assert len(jv) and np.all((jv.min(1) >= Y.LO_RANGE[0] - 1e-9) & (jv.min(1) <= Y.LO_RANGE[1] + 1e-9))
    assert np.all((jv.max(1) >= Y.HI_RANGE[0] - 1e-9) & (jv.max(1) <= Y.HI_RANGE[1] + 1e-9))
    p = L.play(cert, SelectorConfig(), jax.random.PRNGKey(30))
    assert p["picks_on_variant"] == p["picks_shown_rows"]
    assert p["gap_to_random_k3_15"][0] < -L.MARGIN
