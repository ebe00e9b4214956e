"""Screen Atari games for a CPU learning test: uniform-random play against every constant action.

Usage: python benchmarks/atari_action_screen.py Boxing [Asterix ...] [--games 8] [--seed 0]

Per game: the world_model protocol in eval mode with games capped at 4,000 frames (1,000 agent steps), as in
configs/scalezero/cpu_atari_*.yaml; 8 parallel games per policy. Prints the random policy's mean score (SE over games),
its positive / negative rewards per game and agent steps, then each constant action's mean score. Used to pick Boxing
(README, ScaleZero "Real Atari"): random play scores near zero with ~28 rewards per game of both signs, while every
constant action scores far below it. This is a screen, not a baseline: the judged baselines come from
benchmarks/bench_scalezero_atari.py, which goes through the trainer's own evaluation loop.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, without an install

import envs  # noqa: E402


def play(env, policy, num_envs: int):
    """Run one capped game per env under ``policy() -> [num_envs] int``; returns score, +/- reward counts, steps."""
    env.reset()
    done = np.zeros(num_envs, bool)
    score, pos, neg = np.zeros(num_envs), np.zeros(num_envs), np.zeros(num_envs)
    steps = 0
    while not done.all():
        ts = env.step(policy())
        r, live = np.asarray(ts.reward), ~done  # rewards after a game ended belong to the next (auto-reset) game
        score += r * live
        pos += (r > 0) * live
        neg += (r < 0) * live
        done |= np.asarray(envs.episode_over(ts))
        steps += 1
    return score, pos, neg, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("games", nargs="+", help="ALE game names, e.g. Boxing Asterix")
    parser.add_argument("--games-per-policy", "--games", type=int, default=8, dest="n")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for game in args.games:
        env = envs.make(f"atari/{game}", num_envs=args.n, seed=args.seed, protocol="world_model", mode="eval",
                        max_episode_frames=4000)
        names = env.spec.action.names
        score, pos, neg, steps = play(env, lambda: rng.integers(0, len(names), args.n), args.n)
        print(f"{game}: random {score.mean():.2f} +- {score.std(ddof=1) / np.sqrt(args.n):.2f} SE, "
              f"rewards per game +{pos.mean():.1f} / -{neg.mean():.1f}, {steps} agent steps")
        for a, name in enumerate(names):
            score, pos, neg, _ = play(env, lambda: np.full(args.n, a), args.n)
            print(f"  constant {name:<14} {score.mean():8.2f}  (+{pos.mean():.1f} / -{neg.mean():.1f})")
        env.close()


if __name__ == "__main__":
    main()
