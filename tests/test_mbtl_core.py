"""MBTL unit tests on hand-computed arrays: GP posterior, gap model, acquisitions, strategies, store, grid."""
import itertools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.mbtl import acquisition, gap, gp, strategies as S
from agents.mbtl.contexts import ContextAxis, make_grid
from agents.mbtl.matrix import MULTITASK, TransferStore, normalise
from agents.mbtl.plots import sample_efficiency, write_outputs
from agents.mbtl.selector import Selector, SelectorConfig, center_index


def _rbf(a, b, amp, ls):
    d2 = (((a[:, None, :] - b[None, :, :]) / ls) ** 2).sum(-1)
    return amp * np.exp(-0.5 * d2)


def test_gp_posterior_matches_closed_form_and_padding_is_exact():
    x = np.array([[0.1], [0.4], [0.9]])
    y = np.array([0.3, 0.8, 0.5])
    xq = np.linspace(0, 1, 7)[:, None]
    amp, ls, noise = 0.7, 0.25, 0.1
    params = gp.GPParams(jnp.log(amp), jnp.log(jnp.array([ls])))
    k = _rbf(x, x, amp, ls) + noise ** 2 * np.eye(3)
    ks = _rbf(xq, x, amp, ls)
    mean = ks @ np.linalg.solve(k, y)
    var = amp - np.einsum("ij,ji->i", ks, np.linalg.solve(k, ks.T))
    ll = -0.5 * y @ np.linalg.solve(k, y) - 0.5 * np.linalg.slogdet(k)[1] - 1.5 * np.log(2 * np.pi)
    xp, yp, mask = gp.pad_training_set(x, y)  # 3 real rows padded to 8
    assert xp.shape == (8, 1) and mask.sum() == 3
    post = gp.posterior(params, xp, yp, mask, jnp.asarray(xq, jnp.float32), noise)
    np.testing.assert_allclose(post.mean, mean, atol=2e-5)
    np.testing.assert_allclose(post.std, np.sqrt(var), atol=2e-4)
    np.testing.assert_allclose(gp.log_marginal_likelihood(params, xp, yp, mask, noise), ll, atol=1e-3)


def test_gp_fit_reaches_sklearn_marginal_likelihood():
    sk = pytest.importorskip("sklearn.gaussian_process")
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel
    x = np.linspace(0, 1, 9)[:, None]
    y = 0.8 * np.exp(-((x[:, 0] - 0.3) / 0.2) ** 2) + 0.1
    cfg = gp.GPConfig(num_restarts=4)
    xp, yp, mask = gp.pad_training_set(x, y)
    params, ll = gp.make_fit(cfg)(jax.random.PRNGKey(0), xp, yp, mask)
    ref = sk.GaussianProcessRegressor(ConstantKernel(1.0, (1e-3, 1e3)) * RBF(1.0, (1e-2, 1e2)), alpha=0.01,
                                      n_restarts_optimizer=4, random_state=0).fit(x, y)
    assert float(ll) >= ref.log_marginal_likelihood_value_ - 0.05
    assert abs(float(jnp.exp(params.log_length_scale[0])) - ref.kernel_.k2.length_scale) < 0.05


def test_gp_config_refuses_bad_bounds():
    with pytest.raises(ValueError, match="length_scale_low"):
        gp.GPConfig(length_scale_low=1.0, length_scale_high=0.5)


def test_linear_gap_and_slope_estimate():
    u = np.linspace(0, 1, 11)[:, None]
    d = np.asarray(gap.pairwise_distance(jnp.asarray(u), jnp.asarray(u)))
    assert d[0, 10] == pytest.approx(1.0) and d[3, 5] == pytest.approx(0.2)
    pred = np.asarray(gap.predicted_transfer(jnp.array([0.9, 0.5]), jnp.asarray(d[:2]), 0.8))
    assert pred[0, 1] == pytest.approx(0.9 - 0.08) and pred[1, 10] == 0.0
    own = np.array([0.9, 0.7])
    rows = np.maximum(own[:, None] - 0.6 * d[[2, 7]], 0)
    assert gap.estimate_slope(rows, d[[2, 7]], own) == pytest.approx(0.6, abs=1e-6)
    with pytest.raises(ValueError, match="allowed: l1, l2, linf"):
        gap.pairwise_distance(jnp.asarray(u), jnp.asarray(u), "cosine")


def test_marginal_improvement_matches_loop_and_ei_limits():
    rng = np.random.default_rng(0)
    n = 6
    u = np.linspace(0, 1, n)
    mu, sd, best = rng.uniform(0.3, 1, n), rng.uniform(0, 0.2, n), rng.uniform(0, 0.6, n)
    d = np.abs(u[:, None] - u[None, :])
    b, slope = 0.7, 0.5
    loop = [np.mean([max(mu[i] + b * sd[i] - slope * d[i, j] - best[j], 0) for j in range(n)]) for i in range(n)]
    got = acquisition.marginal_improvement_ucb(jnp.asarray(mu), jnp.asarray(sd), b, jnp.asarray(d), slope,
                                               jnp.asarray(best))
    np.testing.assert_allclose(got, loop, rtol=1e-5)
    ei0 = acquisition.marginal_improvement_ei(jnp.asarray(mu), jnp.zeros(n), jnp.asarray(d), slope, jnp.asarray(best))
    ucb0 = acquisition.marginal_improvement_ucb(jnp.asarray(mu), jnp.zeros(n), 0.0, jnp.asarray(d), slope,
                                                jnp.asarray(best))
    np.testing.assert_allclose(ei0, ucb0, atol=1e-6)
    ei = acquisition.marginal_improvement_ei(jnp.asarray(mu), jnp.asarray(sd), jnp.asarray(d), slope,
                                             jnp.asarray(best))
    assert np.all(np.asarray(ei) >= np.asarray(ucb0) - 1e-6)  # Jensen: E[max(J - c, 0)] >= max(E J - c, 0)


def test_beta_schedules():
    assert acquisition.beta("sqrt_log", 3) == pytest.approx(math.sqrt(math.log(4)))
    assert acquisition.beta("inverse", 3, beta0=2.0) == pytest.approx(0.5)
    assert acquisition.beta("zero", 5) == 0.0
    assert acquisition.beta("gp_ucb", 1, num_candidates=10, delta=0.1) > 2.0
    with pytest.raises(ValueError, match="allowed: sqrt_log"):
        acquisition.beta("ucb", 1)


def test_acquisition_picks_obvious_context():
    # one context trains far better than the rest and nothing is covered yet -> pick it
    n = 9
    u = np.linspace(0, 1, n)
    mu = np.full(n, 0.3)
    mu[6] = 0.95
    d = jnp.asarray(np.abs(u[:, None] - u[None, :]))
    score = acquisition.marginal_improvement_ucb(jnp.asarray(mu), jnp.zeros(n), 0.0, d, 0.2, jnp.zeros(n))
    assert int(acquisition.masked_argmax(score, jnp.ones(n, bool))) == 6
    # equal training performance, left half already covered -> pick inside the right half
    best = np.where(u <= 0.5, 0.9, 0.0)
    score = acquisition.marginal_improvement_ucb(jnp.full(n, 0.9), jnp.zeros(n), 0.0, d, 0.5, jnp.asarray(best))
    assert 0.6 < u[int(jnp.argmax(score))] < 0.95


def test_search_space_reduction_keeps_the_most_deficient_segment():
    u = jnp.linspace(0, 1, 11)
    trained = jnp.zeros(11, bool).at[5].set(True)
    deficit = jnp.where(u > 0.5, 0.8, 0.1)
    keep = np.asarray(acquisition.reduced_search_space_1d(u, trained, deficit))
    assert keep[6:].all() and not keep[:6].any()
    d = jnp.abs(u[:, None] - u[None, :])
    keep_cells = np.asarray(acquisition.reduced_search_space_cells(d, trained.at[0].set(True), deficit))
    assert keep_cells[6:].all() and not keep_cells[:3].any()


def _random_matrix(n, seed):
    rng = np.random.default_rng(seed)
    u = np.linspace(0, 1, n)
    own = rng.uniform(0.4, 1.0, n)
    return np.clip(own[:, None] - rng.uniform(0.3, 1.5) * np.abs(u[:, None] - u[None, :])
                   + 0.05 * rng.standard_normal((n, n)), 0, 1), u[:, None]


def test_sequential_oracle_is_greedy_optimal_by_brute_force():
    for seed in range(4):
        m, _ = _random_matrix(7, seed)
        curve = S.sequential_oracle(m, 4)
        assert curve.perf[0] == pytest.approx(S.best_subset_bruteforce(m, 1)[0])
        for k in range(1, 4):  # every step is the best one-step extension, found by enumeration
            prefix = list(curve.order[:k])
            best_ext = max(S.set_performance(m, prefix + [c]) for c in range(7) if c not in prefix)
            assert curve.perf[k] == pytest.approx(best_ext)
        for k in (2, 3):  # and the greedy guarantee against the best k-subset
            assert curve.perf[k - 1] >= (1 - 1 / math.e) * S.best_subset_bruteforce(m, k)[0] - 1e-12


def test_one_source_that_transfers_everywhere_is_found():
    n = 8
    m = np.eye(n) * 0.6
    m[5] = 1.0
    curve = S.sequential_oracle(m, 2)
    assert curve.order[0] == 5 and curve.perf[0] == pytest.approx(1.0)
    assert S.exhaustive_oracle(m, 1).perf[0] == pytest.approx(1.0)


def test_exhaustive_oracle_bounds_every_strategy():
    cfg = SelectorConfig(gp=gp.GPConfig(num_restarts=1, num_steps=40))
    for seed in range(2):
        m, u = _random_matrix(12, seed)
        curves = S.all_strategies(m, u, 6, cfg, jax.random.PRNGKey(seed), num_random_orders=20,
                                  multitask_row=m.mean(0), multitask_task_equivalents=12)
        oracle = S.exhaustive_oracle(m, 6).perf[0]
        names = {c.name for c in curves}
        assert {"Independent", "Multi-task", "Random", "Equidistant", "Coarse-to-fine", "Greedy (pseudo)", "MBTL",
                "Sequential Oracle", "Exhaustive Oracle"} <= names
        for c in curves:
            assert np.all(c.perf <= oracle + 1e-9), c.name
            if c.order is not None:
                assert len(set(c.order.tolist())) == len(c.order), f"{c.name} re-trained a context"


def test_selector_starts_at_centre_and_never_repeats():
    u = np.linspace(0, 1, 11)[:, None].astype(np.float32)
    sel = Selector(u, SelectorConfig(gp=gp.GPConfig(num_restarts=1, num_steps=40)))
    first, info = sel.select([], np.zeros(0), np.zeros(11), jax.random.PRNGKey(0))
    assert first == center_index(u) == 5 and info is None
    m, _ = _random_matrix(11, 3)
    curve = S.model_based(m, u, 11, sel.cfg, jax.random.PRNGKey(1), selector=sel)
    assert sorted(curve.order.tolist()) == list(range(11))
    with pytest.raises(ValueError, match="normalised"):
        Selector(u * 3, SelectorConfig())
    with pytest.raises(ValueError, match="allowed: ucb, ei"):
        SelectorConfig(acquisition="pi")


def test_transfer_store_resumes_and_refuses_other_grids(tmp_path):
    ctx = np.array([[1.0, 0.1], [2.0, 0.1], [3.0, 0.1]], np.float32)
    store = TransferStore(tmp_path, "classic/CartPole-v1", ctx)
    store.add([{"source": 0, "target": t, "seed": 0, "value": 10.0 * t, "env_steps": 5} for t in range(3)])
    store.add([{"source": MULTITASK, "target": t, "seed": 0, "value": 1.0, "env_steps": 9} for t in range(3)])
    again = TransferStore(tmp_path, "classic/CartPole-v1", ctx)
    assert again.has(0, 0) and not again.has(1, 0) and len(again) == 6
    mat = again.matrix()
    assert mat.shape == (1, 3, 3) and mat[0, 0, 2] == 20.0 and np.isnan(mat[0, 1]).all()
    assert again.multitask_row()[0].tolist() == [1.0, 1.0, 1.0]
    assert all(json.loads(line)["seed"] == 0 for line in (tmp_path / "transfer.jsonl").read_text().splitlines())
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files
    with pytest.raises(ValueError, match="another env/context grid"):
        TransferStore(tmp_path, "classic/CartPole-v1", ctx * 2)
    with pytest.raises(ValueError, match="outside"):
        again.add([{"source": 7, "target": 0, "seed": 0, "value": 0.0, "env_steps": 1}])
    np.testing.assert_allclose(normalise([0, 250, 600], 0, 500), [0, 0.5, 1])


def test_context_grid():
    from envs.classic import CLASSIC, classic_functions
    spec, _ = classic_functions(CLASSIC["classic/CartPole-v1"])
    values, u = make_grid(spec, [ContextAxis("length", num=5)])
    assert values.shape == (5, 5) and u.shape == (5, 1)
    np.testing.assert_allclose(values[:, 2], [0.05, 0.05 * 10 ** 0.5, 0.5, 0.5 * 10 ** 0.5, 5.0], rtol=1e-5)
    np.testing.assert_allclose(values[:, 0], 1.0)  # unvaried variables at their default
    values2, u2 = make_grid(spec, [ContextAxis("masscart", num=3, spacing="linear"), ContextAxis("length", num=2)])
    assert values2.shape == (6, 5) and u2.tolist()[1] == [0.0, 1.0]
    with pytest.raises(ValueError, match="allowed: masscart"):
        make_grid(spec, [ContextAxis("mass", num=3)])
    with pytest.raises(ValueError, match="outside the allowed range"):
        make_grid(spec, [ContextAxis("length", num=3, high_factor=20.0)])


def test_outputs_and_sample_efficiency(tmp_path):
    n = 20
    u = np.linspace(0, 1, n)
    m = np.clip(0.9 - 1.0 * np.abs(u[:, None] - u[None, :]), 0, 1)
    curves = [S.independent(m, 10), S.exhaustive_oracle(m, 10), S.sequential_oracle(m, 10)]
    curves.append(S.Curve("MBTL", curves[2].perf, order=curves[2].order))
    eff = sample_efficiency(curves, m)
    k_mbtl = eff["tasks_to_target"]["MBTL"]
    assert eff["independent_tasks_to_target"] == 18 and k_mbtl is not None
    assert eff["mbtl_vs_independent"] == pytest.approx(18 / k_mbtl)
    summary = write_outputs(curves, m, 1000, tmp_path)
    assert (tmp_path / "perf_vs_tasks.png").stat().st_size > 1000
    assert (tmp_path / "perf_vs_samples.png").stat().st_size > 1000
    rows = (tmp_path / "curves.csv").read_text().splitlines()
    assert rows[0].startswith("strategy,k,") and len(rows) == 1 + 4 * 10
    assert summary["mbtl_order"] == curves[2].order.tolist()


def test_gp_learns_per_dimension_length_scales():
    g = np.linspace(0, 1, 5)
    x = np.array([[a, b] for a in g for b in g])  # [25, 2]
    y = np.sin(4 * x[:, 0])  # varies along dimension 0 only
    xp, yp, mask = gp.pad_training_set(x, y)
    params, _ = gp.make_fit(gp.GPConfig(num_restarts=2))(jax.random.PRNGKey(0), xp, yp, mask)
    ls = np.exp(np.asarray(params.log_length_scale))
    assert ls[1] > 5 * ls[0], ls
