"""Meta-World MT10 throughput: omnitask's batched API vs raw ``gymnasium.make_vec('Meta-World/MT10')``.

Both sides step the same 10 envs (one per MT10 task) with the same uniform random actions, in same-step autoreset
mode; rounds alternate between the two so machine load affects both alike, and the median round is reported.

    .venv/bin/python benchmarks/bench_metaworld.py [--steps 100] [--rounds 15] [--strategy sync|async]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _time_steps(step, actions: np.ndarray) -> float:
    """Seconds to apply ``actions`` [N, B, 4] one batch at a time."""
    start = time.perf_counter()
    for a in actions:
        step(a)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="batched steps per round")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per side (alternating)")
    parser.add_argument("--strategy", choices=("sync", "async"), default="sync", help="vectorisation for both")
    parser.add_argument("--async-context", default="forkserver", choices=("spawn", "fork", "forkserver"),
                        help="our subprocess start method for --strategy async (raw gymnasium uses fork)")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")

    import gymnasium as gym
    import metaworld  # noqa: F401  (registers the Meta-World/* ids)

    import envs
    from envs.metaworld import env as mw_env

    num_envs = 10
    t0 = time.perf_counter()
    raw = gym.make_vec("Meta-World/MT10", vector_strategy=args.strategy, seed=0)
    t_raw_make = time.perf_counter() - t0
    mw_env._generated_tasks.cache_clear()  # time our construction without the memoised goal set
    t0 = time.perf_counter()
    extra = {"async_context": args.async_context} if args.strategy == "async" else {}
    ours = envs.make("metaworld/MT10", num_envs=num_envs, seed=0, vector_strategy=args.strategy, **extra)
    t_ours_make = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (args.steps, num_envs, 4)).astype(np.float32)  # [N, B, 4]
    raw.reset(seed=0)
    ours.reset()
    _time_steps(raw.step, actions[:20]), _time_steps(ours.step, actions[:20])  # warm-up
    raw_s, ours_s = [], []
    for _ in range(args.rounds):
        raw_s.append(_time_steps(raw.step, actions))
        ours_s.append(_time_steps(ours.step, actions))
    raw.close()
    ours.close()

    n = args.steps * num_envs
    raw_sps, ours_sps = n / statistics.median(raw_s), n / statistics.median(ours_s)
    how = args.strategy + (f" (ours: {args.async_context})" if args.strategy == "async" else "")
    print(f"Meta-World MT10, {num_envs} envs, {how}, {args.rounds} rounds x {args.steps} steps "
          f"(median round), {os.cpu_count()} CPUs")
    print(f"  construction: raw {t_raw_make:.1f} s, omnitask {t_ours_make:.1f} s")
    print(f"  raw gymnasium.make_vec : {raw_sps:8.0f} env-steps/s  (min {n / max(raw_s):.0f}, max {n / min(raw_s):.0f})")
    print(f"  omnitask envs.make     : {ours_sps:8.0f} env-steps/s  (min {n / max(ours_s):.0f}, max {n / min(ours_s):.0f})")
    paired = statistics.median(r / o for r, o in zip(raw_s, ours_s))  # each pair ran back to back
    print(f"  ratio omnitask/raw     : {ours_sps / raw_sps:.3f} of medians, {paired:.3f} median of paired rounds "
          "(target >= 0.95)")


if __name__ == "__main__":
    main()
