"""MBTL benchmarks.

1. ``select``: time per MBTL selection step for N=100 contexts, JAX/tinygp selector vs the reference's choice
   (scikit-learn GaussianProcessRegressor, ConstantKernel * RBF, alpha = noise^2, same bounds and number of
   restarts, L-BFGS-B) running the same acquisition; and how often both pick the same context given the same
   history. Matrix: a stored CartPole matrix (``--matrix-csv``) or a synthetic N=100 matrix from the linear gap
   model with a smooth training-performance profile plus noise.
2. ``matrix``: wall time of CartPole transfer-matrix jobs (vmapped PPO, 100 targets) on this machine's CPUs,
   measured on ``--chunks`` chunks of 10 sources, and the extrapolation to the full 100 x 100 x seeds matrix.

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
    cfg = SelectorConfig()
    sel = Selector(u, cfg)
    key = jax.random.PRNGKey(0)
    order, best = [], np.zeros(m.shape[0])
    t_jax, t_sk, same, compile_s = [], [], 0, 0.0
    seen_buckets = set()
    for k in range(args.steps):
        key, sub = jax.random.split(key)
        tr = np.asarray(order, int)
        own = np.diag(m)[tr]
        t0 = time.perf_counter()
        s, _ = sel.select(order, own, best, sub)
        dt = time.perf_counter() - t0
        from agents.mbtl.gp import bucket_size
        bucket = bucket_size(max(len(order), 1))
        if order and bucket not in seen_buckets:  # first step of a bucket size includes compilation
            seen_buckets.add(bucket)
            compile_s += dt
        elif order:
            t_jax.append(dt)
        if order:
            t0 = time.perf_counter()
            s_ref = sklearn_select(u, tr, own, best, len(order), cfg)
            t_sk.append(time.perf_counter() - t0)
            same += int(s_ref == s)
        order.append(s)
        best = np.maximum(best, m[s])
    compared = len(t_sk)
    out = {"n_contexts": int(m.shape[0]), "steps": args.steps, "restarts": 1 + cfg.gp.num_restarts,
           "jax_step_ms_median": 1e3 * float(np.median(t_jax)), "sklearn_step_ms_median": 1e3 * float(np.median(t_sk)),
           "speedup_sklearn_over_jax": float(np.median(t_sk) / np.median(t_jax)),
           "jax_compile_s_total": compile_s, "same_selection": f"{same}/{compared}", "mbtl_order": order,
           "load_average": os.getloadavg()}
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
    s.add_argument("--matrix-csv", default=None)
    mtx = sub.add_parser("matrix")
    mtx.add_argument("--steps", type=int, default=100_000)
    mtx.add_argument("--eval-episodes", type=int, default=10)
    mtx.add_argument("--chunks", type=int, default=1)
    mtx.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    out = bench_select(args) if args.what == "select" else bench_matrix(args)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
