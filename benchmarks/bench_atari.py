"""Throughput of omnitask's batched Atari API vs raw ``ale_py.vector_env.AtariVectorEnv`` (same games, envs and
preprocessing), printed side by side with the ratio (target >= 0.95).

    .venv/bin/python benchmarks/bench_atari.py                      # Pong + Breakout, 8 envs, DQN protocol
    .venv/bin/python benchmarks/bench_atari.py --games Pong --num-envs 16 --protocol world_model --per-env

Raw and ours alternate every 25 steps (which side goes first alternates too), ``--repeats`` runs each, and the median env-steps/s is reported (per wall
second and per CPU second of the process), so a busy machine affects both sides alike. Random actions are drawn beforehand (the same for both sides). ``--per-env`` adds rows
for the per-env ALE backend (``backend='ale'``: clone/restore, raw RGB) against the same raw baseline.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _raw_env(rom_ids: list[str], counts: list[int], proto, full_action_space: bool, threads: int):
    """The baseline: one AtariVectorEnv per game with exactly the kwargs our vector backend uses."""
    from ale_py.vector_env import AtariVectorEnv

    from envs.atari.vector_backend import vector_env_kwargs

    return [AtariVectorEnv(rom, n, **vector_env_kwargs(proto, full_action_space, threads))
            for rom, n in zip(rom_ids, counts)]


class _RawStepper:
    """Raw send/recv stepping of the baseline vector envs (one per game)."""

    def __init__(self, vecs, counts):
        self.vecs, self.starts = vecs, np.cumsum([0] + list(counts))

    def reset(self, seed: int):
        """Same per-env seeds as ``AtariEnv.reset(seed)``: both sides then emulate identical games."""
        from envs.atari.env import env_seeds

        seeds = env_seeds(seed, int(self.starts[-1]))
        for k, v in enumerate(self.vecs):
            v.reset(seed=seeds[self.starts[k]:self.starts[k + 1]])

    def step(self, a):  # a: [B] int32
        for k, v in enumerate(self.vecs):
            v.send(a[self.starts[k]:self.starts[k + 1]])
        for v in self.vecs:
            v.recv()


def _timed(step, actions) -> tuple[float, float]:
    """(wall seconds, process CPU seconds incl. ale-py's threads) to step through ``actions`` [T, B]."""
    w0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        step(a)
    return time.perf_counter() - w0, time.process_time() - c0


def bench(env_id: str, rom_ids: list[str], counts: list[int], options: dict, steps: int, repeats: int,
          threads: int, backend: str, chunk: int = 25) -> dict:
    """Raw and ours alternate every ``chunk`` steps (so load changes hit both alike); returns median rates."""
    import envs

    env = envs.make(env_id, num_envs=sum(counts), seed=0, backend=backend, num_threads=threads, **options)
    full = env_id == "atari/multitask" or bool(options.get("full_action_space", False))
    raw = _RawStepper(_raw_env(rom_ids, counts, env.protocol, full, threads), counts)
    B = sum(counts)
    actions = np.random.default_rng(0).integers(0, env.spec.action.num_actions, (steps, B)).astype(np.int32)
    raw.reset(0), env.reset(seed=0)
    _timed(raw.step, actions[:20]), _timed(env.step, actions[:20])  # warm-up
    res = {k: [] for k in ("raw_wall", "ours_wall", "raw_cpu", "ours_cpu")}
    for _ in range(repeats):
        tot = np.zeros(4)
        for c, s in enumerate(range(0, steps, chunk)):
            a = actions[s:s + chunk]
            if c % 2 == 0:  # alternate which side goes first: cancels cache/scheduler order effects
                tot[[0, 2]] += _timed(raw.step, a)
                tot[[1, 3]] += _timed(env.step, a)
            else:
                tot[[1, 3]] += _timed(env.step, a)
                tot[[0, 2]] += _timed(raw.step, a)
        for k, t in zip(res, tot):
            res[k].append(steps * B / t)
    env.close()
    for v in raw.vecs:
        v.close()
    return {k: statistics.median(v) for k, v in res.items()}


def wrapper_overhead_us(game: str, num_envs: int, options: dict, steps: int = 400) -> tuple[float, float]:
    """(microseconds per batched step spent outside ale-py, microseconds inside ale-py's send/recv).

    Steps the real env and clocks ale-py's ``send``/``recv`` calls from inside; the remainder is what omnitask adds
    (action checks, episodic life, clipping, statistics, TimeStep assembly). ``inside / (inside + outside)`` bounds
    the throughput ratio and is far steadier on a loaded machine than comparing two separate timings.
    """
    import envs

    env = envs.make(f"atari/{game}", num_envs=num_envs, seed=0, backend="vector", **options)
    env.reset()
    vec = env._backend._groups[0][0]
    inside = [0.0]
    send, recv = vec.send, vec.recv

    def timed(fn):
        def call(*a):
            t = time.perf_counter()
            out = fn(*a)
            inside[0] += time.perf_counter() - t
            return out
        return call

    vec.send, vec.recv = timed(send), timed(recv)
    actions = np.random.default_rng(1).integers(0, env.spec.action.num_actions, (steps, num_envs))
    total, _ = _timed(env.step, actions)
    env.close()
    return (total - inside[0]) / steps * 1e6, inside[0] / steps * 1e6


def main(argv: list[str] | None = None) -> None:
    from envs.atari.games import camel_name, resolve_game

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--games", nargs="+", default=["Pong", "Breakout"], help="games (one row each)")
    p.add_argument("--num-envs", type=int, default=8, help="envs per batch")
    p.add_argument("--steps", type=int, default=500, help="batched steps per timing run")
    p.add_argument("--repeats", type=int, default=3, help="timing runs per side (median reported)")
    p.add_argument("--protocol", default="dqn", choices=["dqn", "world_model"])
    p.add_argument("--mode", default="train", choices=["train", "eval"])
    p.add_argument("--threads", type=int, default=0, help="AtariVectorEnv threads (0: ale-py default)")
    p.add_argument("--multitask", action="store_true", help="add a row for atari/multitask over --games")
    p.add_argument("--per-env", action="store_true", help="add rows for the per-env ALE backend")
    args = p.parse_args(argv)

    options = dict(protocol=args.protocol, mode=args.mode)
    rows = []
    backends = ["vector"] + (["ale"] if args.per_env else [])
    for game in args.games:
        rom = resolve_game(game)
        for backend in backends:
            rows.append((f"atari/{camel_name(rom)}", backend,
                         bench(f"atari/{camel_name(rom)}", [rom], [args.num_envs], options, args.steps,
                               args.repeats, args.threads, backend)))
    if args.multitask and len(args.games) > 1:
        roms = [resolve_game(g) for g in args.games]
        G, B = len(roms), args.num_envs
        counts = [B // G + (k < B % G) for k in range(G)]
        for backend in backends:
            rows.append((f"atari/multitask({'+'.join(camel_name(r) for r in roms)})", backend,
                         bench("atari/multitask", roms, counts, dict(options, games=[camel_name(r) for r in roms]),
                               args.steps, args.repeats, args.threads, backend)))

    print(f"\nAtari throughput, protocol={args.protocol} mode={args.mode}, {args.num_envs} envs, "
          f"{args.steps} steps x {args.repeats} runs (median env-steps/s)")
    print("wall: env-steps per wall-clock second; cpu: env-steps per CPU second of this process (all threads),"
          " steadier on a shared machine")
    print(f"{'env':<38} {'backend':<7} {'raw wall':>9} {'ours wall':>9} {'ratio':>6}   {'raw cpu':>8} "
          f"{'ours cpu':>8} {'ratio':>6}")
    for env_id, backend, r in rows:
        print(f"{env_id:<38} {backend:<7} {r['raw_wall']:>9.0f} {r['ours_wall']:>9.0f} "
              f"{r['ours_wall'] / r['raw_wall']:>6.3f}   {r['raw_cpu']:>8.0f} {r['ours_cpu']:>8.0f} "
              f"{r['ours_cpu'] / r['raw_cpu']:>6.3f}")
    game = camel_name(resolve_game(args.games[0]))
    outside, inside = wrapper_overhead_us(game, args.num_envs, options)
    print(f"{game}, {args.num_envs} envs: {outside:.0f} us per batched step outside ale-py vs {inside:.0f} us inside "
          f"its send/recv -> ratio bound {inside / (inside + outside):.3f}")

if __name__ == "__main__":
    main()
