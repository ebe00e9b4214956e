"""MBTL benchmarks.

0. ``family``: the robust default ``mbtl``, the paper rule, coarse-to-fine, Random (exact expectation) and the
   oracles on the synthetic transfer-matrix family (held-out seeds by default): mean generalised performance per
   structure at k = 1, 3, 5, 10, 15 and how often each beats Random at every k = 3..15, per structure too.
   ``--known-j`` adds a diagnostic row: the default's learned gap and the expected generalised gain with every
   candidate's training performance known in advance (the matrix diagonal) instead of the GP's posterior, i.e. what
   the selector could reach with a perfect model of J.

1. ``select``: time per MBTL selection step for N=100 contexts, JAX/tinygp selector vs the reference's choice
   (scikit-learn GaussianProcessRegressor, ConstantKernel * RBF, alpha = noise^2, same bounds and number of
   restarts, L-BFGS-B) running the same acquisition; and how often both pick the same context given the same
   history. Matrix: a stored CartPole matrix (``--matrix-csv``) or a synthetic N=100 matrix from the linear gap
   model with a smooth training-performance profile plus noise.
1b. ``designs``: one of issue 15's round-4 selector designs (``benchmarks/mbtl_designs.py``) on the tuning seeds
   only (held-out seeds are not offered): beaten-at-every-k count, worst gap, matrices lost per k, per structure,
   the mean standardised training performance J of picks 2-15 per structure and, with ``--diagnose``, how hopeless
   k = 3 was on the matrices lost there.
2. ``matrix``: wall time of CartPole transfer-matrix jobs (vmapped PPO, 100 targets) on this machine's CPUs,
   measured on ``--chunks`` chunks of 10 sources, and the extrapolation to the full 100 x 100 x seeds matrix.

    python benchmarks/bench_mbtl.py family --seeds held_out    # the selector table on the synthetic family
    python benchmarks/bench_mbtl.py family --seeds held_out_2  # the fresh held-out set of round 6 (pre-registered use)
    python benchmarks/bench_mbtl.py family --seeds extra_tuning --known-j --robust-model fitted  # the old default
    python benchmarks/bench_mbtl.py designs --design kg2 --seeds all_tuning   # one round-4 design, tuning seeds
    python benchmarks/bench_mbtl.py select
    python benchmarks/bench_mbtl.py matrix --steps 100000 --chunks 1
"""
from __future__ import annotations

import argparse
import json
import os
import time

# single-threaded BLAS for both GP implementations: on a shared 2-core machine multi-threaded BLAS in
# scikit-learn oversubscribes the cores (10x slower under load), which would flatter the JAX side
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def synthetic_matrix(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = np.linspace(0, 1, n)
    own = 0.55 + 0.4 * np.sin(2.5 * u + 0.3) ** 2  # [N] smooth training performance
    m = np.clip(own[:, None] - 0.5 * np.abs(u[:, None] - u[None, :]) + 0.03 * rng.standard_normal((n, n)), 0, 1)
    return m, u[:, None]


def sklearn_select(u, trained, own, best, k, cfg):
    """The reference-style step with scikit-learn's GP (same kernel, bounds, noise, restarts, acquisition)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    from agents.mbtl.acquisition import beta
    g = cfg.gp
    kernel = ConstantKernel(1.0, (g.amplitude_low, g.amplitude_high)) * RBF(
        np.ones(u.shape[1]), (g.length_scale_low, g.length_scale_high))
    gpr = GaussianProcessRegressor(kernel, alpha=g.noise_std ** 2, n_restarts_optimizer=g.num_restarts,
                                   random_state=k).fit(u[trained], own)
    mu, sd = gpr.predict(u, return_std=True)
    d = np.abs(u[:, None, :] - u[None, :, :]).sum(-1)
    b = beta(cfg.beta_schedule, k, cfg.beta0, u.shape[0])
    score = np.maximum(mu[:, None] + b * sd[:, None] - cfg.slope * d - best[None, :], 0).mean(1)
    score[trained] = -np.inf
    return int(np.argmax(score))


def bench_select(args) -> dict:
    import jax

    from agents.mbtl.selector import Selector, SelectorConfig
    if args.matrix_csv:
        m = np.loadtxt(args.matrix_csv, delimiter=",")
        m = (m - m.min()) / (m.max() - m.min())
        u = np.linspace(0, 1, m.shape[0])[:, None]
    else:
        m, u = synthetic_matrix(args.n)
    from agents.mbtl.gp import GRID_AMPLITUDES, GRID_RESOLUTION, GPConfig
    gp_cfg = GPConfig(optimizer=args.optimizer, num_steps=args.gp_steps or (150 if args.optimizer == "adam" else 30),
                      warm_restarts=args.warm_restarts, warm_steps=args.warm_steps,
                      grid_size=(GPConfig().grid_size if args.warm_restarts < 0 else 0) if args.grid_size is None else args.grid_size,
                      grid_steps=args.grid_steps)
    cfg = SelectorConfig(strategy="mbtl_paper", gp=gp_cfg)  # the paper's rule: what scikit-learn reproduces
    sel = Selector(u, cfg)
    key = jax.random.PRNGKey(0)
    order, best = [], np.zeros(m.shape[0])
    t_jax, t_sk, same, compile_s = [], [], 0, 0.0

    def timed(fn):  # (result, median seconds of args.repeats calls after a first, untimed one; first call's seconds)
        t0 = time.perf_counter()
        out = fn()
        first = time.perf_counter() - t0
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return out, float(np.median(ts)), first

    for k in range(args.steps):
        key, sub = jax.random.split(key)
        tr = np.asarray(order, int)
        own = np.diag(m)[tr]
        if not order:
            s, _ = sel.select(order, own, best, sub)
        else:
            (s, _), dt, first = timed(lambda: sel.select(order, own, best, sub))
            t_jax.append(dt)
            compile_s += max(first - dt, 0.0)  # the first step of a bucket size compiles
            s_ref, dt_sk, _ = timed(lambda: sklearn_select(u, tr, own, best, len(order), cfg))
            t_sk.append(dt_sk)
            same += int(s_ref == s)
        order.append(s)
        best = np.maximum(best, m[s])
    compared = len(t_sk)
    out = {"n_contexts": int(m.shape[0]), "steps": args.steps, "sklearn_restarts": 1 + cfg.gp.num_restarts,
           "fit": f"{1 + cfg.gp.num_restarts} random starts x {cfg.gp.num_steps} {cfg.gp.optimizer} steps"
           if cfg.gp.grid_size == 0 else f"likelihood screen ({cfg.gp.grid_size} length scales x {GRID_AMPLITUDES} "
           f"amplitudes, zoomed to {GRID_RESOLUTION} log units)",
           "warm_start": "off" if cfg.gp.warm_restarts < 0 else
           f"previous optimum + {cfg.gp.warm_restarts} random starts x {cfg.gp.warm_steps} steps",
           "timing": f"median over steps 2-{args.steps} of the median of {args.repeats} calls per step",
           "jax_step_ms_median": 1e3 * float(np.median(t_jax)), "sklearn_step_ms_median": 1e3 * float(np.median(t_sk)),
           "speedup_sklearn_over_jax": float(np.median(t_sk) / np.median(t_jax)),
           "jax_compile_s_total": compile_s, "same_selection": f"{same}/{compared}", "mbtl_order": order,
           "load_average": os.getloadavg()}
    return out


def known_j_selection(m: np.ndarray, u: np.ndarray, k_max: int) -> np.ndarray:
    """Diagnostic, not a strategy: the default's gap model (learned from the observed rows, as ``Selector``) and the
    expected generalised gain, with every candidate's training performance J known in advance (the diagonal of m,
    no GP). [K] generalised performance after k = 1..K tasks."""
    import sys

    import jax.numpy as jnp
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mbtl_designs as D

    from agents.mbtl import acquisition, gap
    from agents.mbtl import strategies as S
    from agents.mbtl.selector import center_index
    idx, sizes = gap.grid_index(u)
    j = jnp.asarray(np.diag(m), jnp.float32)  # [N] the oracle part: J of every untrained candidate
    order = [center_index(u)]
    while len(order) < k_max:
        tr, rows, _, g, noise = D.observe(m, order, idx, sizes)  # the default's learned gap and cell noise
        score = np.array(acquisition.expected_generalised_gain(j, jnp.zeros_like(j), jnp.asarray(g, jnp.float32),
                                                                jnp.asarray(rows.max(0), jnp.float32), noise))
        score[tr] = -np.inf
        order.append(int(np.argmax(score)))
    return S.generalized_performance(m, order)


def bench_family(args) -> dict:
    """Every selector on the synthetic family (agents/mbtl/synthetic.py): the issue's table and win rates."""
    import jax

    from agents.mbtl import strategies as S
    from agents.mbtl import synthetic as Y
    from agents.mbtl.selector import SelectorConfig
    seeds = {"held_out": Y.HELD_OUT_SEEDS, "held_out_2": Y.HELD_OUT_SEEDS_2, "tuning": Y.TUNING_SEEDS,
             "extra_tuning": Y.EXTRA_TUNING_SEEDS}[args.seeds]
    seeds = seeds[:args.limit] if args.limit else seeds
    cfg = SelectorConfig(robust_model=args.robust_model, acquisition=args.acquisition, gap_2d=args.gap_2d,
                         **({} if args.prior_mean_std is None else {"prior_mean_std": args.prior_mean_std}),
                         **({} if args.j_multi_d is None else {"j_model_multi_d": args.j_multi_d}),
                         **({} if args.portfolio is None else {"portfolio": args.portfolio}))
    show = np.array([1, 3, 5, 10, 15])
    rows: dict[str, dict[str, list]] = {}
    wins = {"MBTL": [], "MBTL (paper)": [], "Coarse-to-fine": []}
    if args.known_j:
        wins["MBTL (J known)"] = []
    family_wins: dict[str, list] = {}
    per_k = {name: [] for name in wins}
    worst = {name: [] for name in wins}
    t0 = time.perf_counter()
    for seed in seeds:
        g = Y.generate(seed)
        key = jax.random.PRNGKey(seed)
        curves = {"MBTL": S.model_based(g.m, g.u, 15, cfg, key),
                  "MBTL (paper)": S.paper_rule(g.m, g.u, 15, SelectorConfig(), key),
                  "Coarse-to-fine": S.coarse_to_fine(g.m, g.u, 15),
                  "Random": S.random_expected(g.m, 15), "Sequential Oracle": S.sequential_oracle(g.m, 15),
                  "Exhaustive Oracle": S.exhaustive_oracle(g.m, 15)}
        if args.known_j:
            curves["MBTL (J known)"] = S.Curve("MBTL (J known)", known_j_selection(g.m, g.u, 15))
        oracle = float(curves["Exhaustive Oracle"].perf[0])
        rnd = curves["Random"].perf
        for name in wins:
            w, d = Y.versus_random(curves[name].perf, rnd, oracle)
            wins[name].append(w)
            worst[name].append(d)
            per_k[name].append(curves[name].perf[2:15] > rnd[2:15])
            family_wins.setdefault(g.label, {}).setdefault(name, []).append(w)
        for name, c in curves.items():
            rows.setdefault(g.label, {}).setdefault(name, []).append(c.perf[show - 1])
            rows.setdefault("all", {}).setdefault(name, []).append(c.perf[show - 1])
    names = ["MBTL", "MBTL (paper)", "Random", "Sequential Oracle", "Exhaustive Oracle"]
    print(f"\n{args.seeds} seeds ({len(seeds)} matrices): mean generalised performance at k = {show.tolist()}")
    print(f"{'family':24s} {'n':>3s} | " + " | ".join(f"{n:^29s}" for n in names))
    for label in sorted(rows, key=lambda x: (x == "all", x)):
        cells = [" ".join(f"{v:.3f}" for v in np.mean(rows[label][n], 0)) for n in names]
        print(f"{label:24s} {len(rows[label]['MBTL']):3d} | " + " | ".join(cells))
    print("\nbeats Random at every k = 3..15, per structure: " + " | ".join(wins))
    for label in sorted(family_wins):
        print(f"{label:24s} " + " | ".join(f"{int(np.sum(family_wins[label][n])):2d}/{len(family_wins[label][n]):2d}"
                                            for n in wins))
    out = {"seeds": args.seeds, "num_matrices": len(seeds), "seconds": time.perf_counter() - t0,
           "selector": {"robust_model": cfg.robust_model, "acquisition": cfg.acquisition, "gap_2d": cfg.gap_2d,
                        "prior_mean_std": cfg.prior_mean_std, "j_model_multi_d": cfg.j_model_multi_d,
                        "portfolio": cfg.portfolio}}
    for name in wins:
        rate_k = np.mean(per_k[name], 0)  # [13] fraction of matrices where name > Random at k = 3..15
        out[name] = {"beats_random_at_every_k_3_15": f"{int(np.sum(wins[name]))}/{len(seeds)}",
                     "worst_gap_to_random": float(np.min(worst[name])),
                     "matrices_worse_than_random_by_more_than_0.02": int(np.sum(np.asarray(worst[name]) < -0.02)),
                     "win_rate_vs_random_per_k": {int(k): round(float(r), 2) for k, r in zip(range(3, 16), rate_k)}}
        print(f"{name:16s} beats Random at every k=3..15 on {out[name]['beats_random_at_every_k_3_15']}; "
              f"worst gap {out[name]['worst_gap_to_random']:+.3f}; win rate per k: "
              + " ".join(f"{r:.2f}" for r in rate_k))
    return out


def bench_designs(args) -> dict:
    """One round-4 design (``benchmarks/mbtl_designs.py``) on tuning seeds only: how often it beats Random at every
    k = 3..15, worst gap, per structure, failures per k and, with --diagnose, why the losses happen."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mbtl_designs as D

    from agents.mbtl import strategies as S
    from agents.mbtl import synthetic as Y
    seeds = {"tuning": Y.TUNING_SEEDS, "extra_tuning": Y.EXTRA_TUNING_SEEDS,
             "all_tuning": Y.TUNING_SEEDS + Y.EXTRA_TUNING_SEEDS}[args.seeds]
    seeds = seeds[:args.limit] if args.limit else seeds
    t0 = time.perf_counter()
    wins, worst, fail_k, per_label, pick_z, early = [], [], np.zeros(13, int), {}, {}, []
    for seed in seeds:
        g = Y.generate(seed)
        perf, order = D.replay(g.m, g.u, args.design, kind=g.kind, seed=seed)
        rnd = S.random_expected(g.m, 15).perf
        oracle = float(g.m.max(0).mean())
        w, d = Y.versus_random(perf, rnd, oracle)
        lost_k = (perf[2:15] <= rnd[2:15]) & (perf[2:15] < oracle - 1e-9)  # [13] k = 3..15
        wins.append(w)
        worst.append(d)
        fail_k += lost_k
        per_label.setdefault(g.label, []).append(w)
        j = np.diag(g.m)
        pick_z.setdefault(g.label, []).append(float(((j[order[1:]] - j.mean()) / j.std()).mean()))
        if args.diagnose and lost_k[0]:  # lost at k = 3: were picks 2-3 unlucky, or was any pair hopeless?
            c = order[0]
            pair = np.maximum(g.m[c][None, None], np.maximum(g.m[:, None], g.m[None, :])).mean(-1)  # [N, N]
            ok = np.ones_like(pair, bool)
            ok[c], ok[:, c] = False, False
            np.fill_diagonal(ok, False)
            early.append((float((pair[ok] > rnd[2]).mean()), float((j[c] - j.mean()) / j.std())))
    out = {"design": args.design, "seeds": args.seeds, "num_matrices": len(seeds),
           "beats_random_at_every_k_3_15": f"{int(np.sum(wins))}/{len(seeds)}", "worst_gap_to_random": min(worst),
           "matrices_worse_than_random_by_more_than_0.02": int(np.sum(np.asarray(worst) < -0.02)),
           "matrices_lost_per_k_3_15": fail_k.tolist(),
           "per_structure": {k: f"{int(np.sum(v))}/{len(v)}" for k, v in sorted(per_label.items())},
           "mean_z_of_training_performance_of_picks_2_15": {k: round(float(np.mean(v)), 2)
                                                            for k, v in sorted(pick_z.items())},
           "seconds": time.perf_counter() - t0, "load_average": os.getloadavg()}
    if args.diagnose:
        e = np.asarray(early).reshape(-1, 2)
        out["lost_at_k3"] = {"matrices": len(early), "mean_fraction_of_pairs_2_3_that_would_beat_random": float(e[:, 0].mean()),
                             "mean_z_of_centre_training_performance": float(e[:, 1].mean())}
    return out


def bench_limit(args) -> dict:
    """Seventh round: k = 3 indistinguishability certificates (benchmarks/mbtl_limit.py) on tuning seeds with
    --min-n <= N <= --max-n, and the repository's selectors played against each certified seed's adversary."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import jax
    import mbtl_limit as L

    from agents.mbtl import synthetic as Y
    from agents.mbtl.selector import SelectorConfig
    seeds = {"tuning": Y.TUNING_SEEDS, "extra_tuning": Y.EXTRA_TUNING_SEEDS,
             "all_tuning": Y.TUNING_SEEDS + Y.EXTRA_TUNING_SEEDS}[args.seeds]
    seeds = seeds[:args.limit] if args.limit else seeds
    if args.seed_list:  # a subset of the chosen tuning seeds (e.g. the certified ones, for --perturb)
        pick = {int(x) for x in args.seed_list.split(",")}
        seeds = tuple(s for s in seeds if s in pick)
    t0 = time.perf_counter()
    rows, plays = [], []
    selectors = {"default (borda)": SelectorConfig(), "round-3 rule (portfolio none)": SelectorConfig(portfolio="none")}
    for seed in seeds:
        if not args.min_n <= Y.draw(seed).u.shape[0] <= args.max_n:  # N without building the matrix
            continue
        g = L.game(seed, args.pool)
        row = {k: v for k, v in g.items() if not k.startswith("_")}
        an = L.anchored(seed, args.pool)
        row["anchored_pairs_certified"] = f"{an['pairs_certified']}/{an['pairs']}"
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.play and g["certified"]:
            for name, cfg in selectors.items():
                p = L.play(g, cfg, jax.random.PRNGKey(seed), perturb=args.perturb)
                plays.append({"seed": seed, "selector": name, **p})
                print(json.dumps(plays[-1]), flush=True)
    summary: dict[str, dict] = {}
    for r in rows:
        for label in (f"{r['kind']}/{r['dim']}d", "all"):
            s = summary.setdefault(label, {"matrices": 0, "certified": 0, "centre_certified": 0, "margins": []})
            s["matrices"] += 1
            s["certified"] += r["certified"]
            s["centre_certified"] += r["centre_margin"] > L.MARGIN
            s["margins"].append(r["game_margin"])
    for s in summary.values():
        s["median_game_margin"] = round(float(np.median(s.pop("margins"))), 4)
    out = {"seeds": args.seeds, "min_n": args.min_n, "max_n": args.max_n, "pool": args.pool, "values": list(L.VALUES),
           "matrices": len(rows), "per_structure": summary,
           "plays_same_picks": int(sum(p["picks_shown_rows"] == p["picks_on_variant"] for p in plays)),
           "plays": len(plays),
           **({"plays_perturbed_same_picks": sum(int(p["perturbed_same_picks"].split("/")[0]) for p in plays),
               "plays_perturbed_behind_k3": sum(int(p["perturbed_behind_k3"].split("/")[0]) for p in plays),
               "perturbations": args.perturb * len(plays)} if args.perturb else {}),
           "plays_behind_by_more_than_0.02_at_k3": int(sum(p["gap_to_random_k3_15"][0] < -L.MARGIN for p in plays)),
           "seconds": time.perf_counter() - t0, "load_average": os.getloadavg()}
    return out


def bench_matrix(args) -> dict:
    import jax

    from agents.mbtl.jobs import make_jobs, run_job
    from agents.ppo import PPOConfig
    from envs.classic import CLASSIC, classic_functions
    from agents.mbtl.contexts import ContextAxis, make_grid
    spec, _ = classic_functions(CLASSIC["classic/CartPole-v1"])
    values, _ = make_grid(spec, [ContextAxis("length", num=100)])
    jobs = make_jobs("classic/CartPole-v1", values, [0], 10, multitask=False, source_trainer="ppo_jax",
                     steps=args.steps, num_envs=8, eval_episodes=args.eval_episodes,
                     ppo=PPOConfig(num_steps=128, num_minibatches=4))
    times = []
    for job in jobs[:args.chunks]:
        t0 = time.perf_counter()
        rows = run_job(job)
        times.append(time.perf_counter() - t0)
        print(f"chunk {job.name}: {times[-1]:.1f} s, diag mean "
              f"{np.mean([r['value'] for r in rows if r['source'] == r['target']]):.1f}", flush=True)
    steady = times[1:] if len(times) > 1 else times
    per_chunk = float(np.mean(steady))
    total_one_worker = per_chunk * 10 * args.seeds
    return {"steps_per_task": args.steps, "eval_episodes": args.eval_episodes, "chunk_seconds": times,
            "extrapolated_100x100_seconds_per_seed_one_process": per_chunk * 10,
            "extrapolated_100x100_x_seeds_seconds_one_process": total_one_worker,
            "note": "2 worker processes on 2 cores share the same CPUs; JAX already uses both cores per process, "
                    "so expect roughly the one-process figure, not half of it",
            "jax_devices": str(jax.devices()), "load_average": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("select")
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--steps", type=int, default=15)
    s.add_argument("--repeats", type=int, default=5, help="timed calls per step (after an untimed one); median")
    s.add_argument("--matrix-csv", default=None)
    s.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam", help="GP fit optimiser (JAX side)")
    s.add_argument("--gp-steps", type=int, default=0, help="optimiser steps per start (0: 150 adam / 30 lbfgs)")
    s.add_argument("--warm-restarts", type=int, default=-1, help="GPConfig.warm_restarts (-1: no warm start)")
    s.add_argument("--warm-steps", type=int, default=50, help="GPConfig.warm_steps")
    s.add_argument("--grid-size", type=int, default=None,
                   help="GPConfig.grid_size (0: random restarts; > 0: likelihood screen; default: GPConfig's)")
    s.add_argument("--grid-steps", type=int, default=100, help="GPConfig.grid_steps (D > 1: Adam steps after the screen)")
    fam = sub.add_parser("family")
    fam.add_argument("--seeds", choices=("held_out", "held_out_2", "tuning", "extra_tuning"), default="held_out",
                     help="held_out_2: the fresh set of round 6 (synthetic.HELD_OUT_SEEDS_2)")
    fam.add_argument("--robust-model", choices=("averaged", "fitted"), default="averaged",
                     help="the MBTL row's SelectorConfig.robust_model (averaged: the default selector)")
    fam.add_argument("--acquisition", choices=("ucb", "ei", "expected_gain"), default="ucb",
                     help="SelectorConfig.acquisition of the MBTL row (used only with --robust-model fitted)")
    fam.add_argument("--gap-2d", choices=("linear", "monotone"), default="linear", help="SelectorConfig.gap_2d")
    fam.add_argument("--prior-mean-std", type=float, default=None,
                     help="SelectorConfig.prior_mean_std of the MBTL row (default: SelectorConfig's)")
    fam.add_argument("--j-multi-d", choices=("gp", "blind"), default=None,
                     help="SelectorConfig.j_model_multi_d of the MBTL row (default: SelectorConfig's)")
    fam.add_argument("--portfolio", choices=("none", "borda"), default=None,
                     help="SelectorConfig.portfolio of the MBTL row (default: SelectorConfig's)")
    fam.add_argument("--known-j", action="store_true", help="add the diagnostic row with J known (see module doc)")
    fam.add_argument("--limit", type=int, default=0, help="first LIMIT seeds only (0: all)")
    des = sub.add_parser("designs", help="one round-4 design on tuning seeds only (benchmarks/mbtl_designs.py)")
    des.add_argument("--design", default="default", help="a name in mbtl_designs.DESIGNS")
    des.add_argument("--seeds", choices=("tuning", "extra_tuning", "all_tuning"), default="all_tuning")
    des.add_argument("--limit", type=int, default=0, help="first LIMIT seeds only (0: all)")
    des.add_argument("--diagnose", action="store_true", help="add the k = 3 loss diagnosis (slow: N^2 pairs)")
    lim = sub.add_parser("limit", help="seventh round: k = 3 certificates that no selector keeps within 0.02 of "
                                       "Random (benchmarks/mbtl_limit.py), tuning seeds only")
    lim.add_argument("--seeds", choices=("tuning", "extra_tuning", "all_tuning"), default="all_tuning")
    lim.add_argument("--limit", type=int, default=0, help="first LIMIT seeds only (0: all)")
    lim.add_argument("--max-n", type=int, default=25, help="only matrices with N <= MAX_N (cost ~ N^4)")
    lim.add_argument("--min-n", type=int, default=0, help="only matrices with N >= MIN_N")
    lim.add_argument("--pool", type=int, default=4000, help="random J shapes drawn per matrix")
    lim.add_argument("--play", action="store_true", help="play the default and the round-3 rule on each certified "
                                                         "seed's adversary")
    lim.add_argument("--seed-list", default="", help="comma-separated seeds (must be in --seeds)")
    lim.add_argument("--perturb", type=int, default=0, help="with --play: nearby family members tried per play")
    mtx = sub.add_parser("matrix")
    mtx.add_argument("--steps", type=int, default=100_000)
    mtx.add_argument("--eval-episodes", type=int, default=10)
    mtx.add_argument("--chunks", type=int, default=1)
    mtx.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    out = {"select": bench_select, "family": bench_family, "designs": bench_designs, "limit": bench_limit,
           "matrix": bench_matrix}[args.what](args)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
