"""MCTR throughput benchmarks.

1. Embedded agent decisions/s on a real Atari game (env-decisions per second, i.e. decisions x envs), with and
   without test-time-RL branching.
2. HTTP backend throughput against a fixed-latency local OpenAI-compatible server (127.0.0.1), N concurrent envs
   (one request per env per decision) relative to N=1; the target is >= 0.8 * N up to N = 8.

    .venv/bin/python benchmarks/bench_mctr.py [--decisions 100] [--latency 0.1] [--game Breakout]
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np


def bench_embedded(game: str, decisions: int, num_envs: int, branching: bool) -> float:
    import dataclasses

    from agents.mctr.agent import MCTRAgent
    from agents.mctr.backends import make_backends
    from agents.mctr.config import MCTRConfig
    from agents.mctr.evaluation import make_env
    from agents.mctr.games import lookup
    from agents.mctr.memory import KnowledgeBase

    g = lookup(game)
    cfg = dataclasses.replace(MCTRConfig(), branching=branching)
    env = make_env(g, num_envs, 0)
    a, m = make_backends(cfg)
    agent = MCTRAgent(cfg, env, g.name, g.genre, KnowledgeBase(cfg.memory), a, m)
    ts = agent.init_policy(jax.random.PRNGKey(0))
    agent.reset(0)
    ts, _ = agent.run(ts, jax.random.PRNGKey(1), 10)  # compile + warm up
    t0 = time.perf_counter()
    agent.run(ts, jax.random.PRNGKey(2), decisions)
    env.close()
    return decisions * num_envs / (time.perf_counter() - t0)


def _serve(latency: float, conn) -> None:
    from agents.mctr.backends.local_server import LocalChatServer

    server = LocalChatServer(latency=latency)
    conn.send(server.url)
    conn.recv()  # block until told to stop
    server.close()


def bench_http(num_envs: int, decisions: int, latency: float) -> float:
    """Client throughput; the fixed-latency server runs in its own process so it does not share our GIL."""
    import multiprocessing as mp

    from agents.mctr.backends.base import Observation
    from agents.mctr.backends.openai_http import OpenAIActionReasoner
    from agents.mctr.config import ServerConfig
    from agents.mctr.perception import Situation

    rng = np.random.default_rng(0)
    stream = rng.integers(0, 255, (decisions + 3, num_envs, 210, 160, 3), dtype=np.uint8)  # new frame per decision
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(latency, child), daemon=True)
    proc.start()
    try:
        url = parent.recv()
        r = OpenAIActionReasoner(ServerConfig(base_url=url, model="bench", concurrency=num_envs))

        def obs_at(t):
            return [Observation("Breakout", "paddle", stream[t:t + 3, i], [], Situation("play"),
                                ("NOOP", "FIRE", "RIGHT", "LEFT"), [], np.zeros((4, 2), np.float32))
                    for i in range(num_envs)]

        r.propose(obs_at(0))  # warm up (thread pool, connections, PNG encoder)
        t0 = time.perf_counter()
        for t in range(1, decisions + 1):
            r.propose(obs_at(t))
        elapsed = time.perf_counter() - t0
        r.close()
    finally:
        parent.send("stop")
        proc.join(timeout=10)
    return decisions * num_envs / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--game", default="Breakout")
    p.add_argument("--decisions", type=int, default=100)
    p.add_argument("--latency", type=float, default=0.1, help="fixed server latency per request (s)")
    p.add_argument("--http-decisions", type=int, default=10)
    p.add_argument("--http-only", action="store_true", help="skip the embedded-agent benchmark")
    args = p.parse_args()
    out = {"embedded": {}, "http": {}}
    for n in (() if args.http_only else (1, 4)):
        for branching in (False, True):
            rate = bench_embedded(args.game, args.decisions, n, branching)
            out["embedded"][f"envs={n},branching={branching}"] = round(rate, 1)
            print(f"embedded {args.game} envs={n} branching={branching}: {rate:.1f} env-decisions/s", flush=True)
    base = None
    for n in (1, 2, 4, 8):
        rate = bench_http(n, args.http_decisions, args.latency)
        base = base or rate
        out["http"][f"envs={n}"] = {"decisions_per_s": round(rate, 2), "speedup": round(rate / base, 2),
                                    "target": round(0.8 * n, 2)}
        print(f"http latency={args.latency}s envs={n}: {rate:.2f} decisions/s, {rate / base:.2f}x of N=1 "
              f"(target >= {0.8 * n:.1f}x)", flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
