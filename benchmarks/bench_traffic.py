"""Traffic benchmarks, printed side by side with ratios.

1. Signal control on one intersection: ``traffic/signal-1x1`` vs sumo-rl's ``SumoEnvironment(single_agent=True)``
   with ``LIBSUMO_AS_TRACI=1`` on the *same* generated network and demand, same delta_time/yellow/min_green, the
   same 4 green phases in the same order (the generator writes them into the network's program, which sumo-rl
   reads; so the same random actions give statistically the same traffic and SUMO work on both sides),
   random actions, 600 s episodes (resets included in the timing), 3 interleaved repeats (median). Agent-steps per wall second, and per CPU
   second (parent + SUMO workers; robust to other load on the machine).
2. Ring road: ``traffic/ring-sumo`` (SUMO IDM, one worker per env) vs ``traffic/ring-jax`` vmapped over 1024 and
   10240 contexts inside one jitted ``lax.scan``. Env-steps/s (one env step = a 1 s hold = 10 IDM steps).

Usage:  .venv/bin/python benchmarks/bench_traffic.py [--quick] [--json out.json]
sumo-rl is optional (``pip install 'omnitask[bench]'``); without it part 1 reports only our env.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ["LIBSUMO_AS_TRACI"] = "1"  # sumo-rl reads this at import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import envs  # noqa: E402
from envs.traffic.netgen import GridParams, grid_scenario, sumo_home  # noqa: E402

try:  # import sumo-rl before anything imports libsumo in this process (the inline run does)
    sumo_home()
    import sumo_rl  # noqa: F401
except ImportError:
    pass


def _cpu_seconds(pids) -> float:
    """User+system CPU seconds of processes ``pids`` (from /proc; Linux only)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def bench_ours(num_envs: int, steps: int, episode_seconds: int, context: dict,
               inline: bool = False) -> tuple[float, float]:
    """(agent-steps per wall second, agent-steps per CPU second of parent + workers)."""
    rng = np.random.default_rng(0)
    with envs.make("traffic/signal-1x1", num_envs=num_envs, seed=0, episode_seconds=episode_seconds,
                   context=context, time_to_teleport=-1, inline=inline) as env:  # sumo-rl's default: no teleports
        env.reset()
        env.step(np.zeros(env.num_envs, np.int32))
        pids = [] if inline else env.pool.pids  # inline: the simulation's CPU is this process's
        c0, t0 = time.process_time() + _cpu_seconds(pids), time.perf_counter()
        for _ in range(steps):
            env.step(rng.integers(0, 4, env.num_envs).astype(np.int32))
        wall = time.perf_counter() - t0
        cpu = time.process_time() + _cpu_seconds(pids) - c0
        return steps * env.num_envs / wall, steps * env.num_envs / cpu


def bench_sumo_rl(steps: int, episode_seconds: int, context: dict) -> tuple[float, float] | None:
    try:
        sumo_home()
        from sumo_rl import SumoEnvironment
    except ImportError as err:
        print(f"  sumo-rl not available ({err}); install the 'bench' extra")
        return None
    scen = grid_scenario(GridParams(1, 1, context["lane_length"], context["speed_limit"], context["inflow"],
                                    float(episode_seconds)))
    env = SumoEnvironment(net_file=str(scen / "net.net.xml"), route_file=str(scen / "routes.rou.xml"),
                          single_agent=True, num_seconds=episode_seconds, delta_time=5, yellow_time=2, min_green=5,
                          sumo_seed=0, sumo_warnings=False, reward_fn="diff-waiting-time", use_gui=False)
    rng = np.random.default_rng(0)
    env.reset()
    n_act = env.action_space.n
    c0, t0 = time.process_time(), time.perf_counter()  # libsumo runs inside this process
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(int(rng.integers(0, n_act)))
        if term or trunc:
            env.reset()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return steps / wall, steps / cpu


def bench_ring_sumo(num_envs: int, steps: int) -> tuple[float, float]:
    """(env-steps per wall second, per CPU second of parent + workers)."""
    with envs.make("traffic/ring-sumo", num_envs=num_envs, seed=0) as env:
        env.reset()
        act = np.ones((num_envs, 1), np.float32)
        env.step(act)
        pids = env.pool.pids
        c0, t0 = time.process_time() + _cpu_seconds(pids), time.perf_counter()
        for _ in range(steps):
            env.step(act)
        wall = time.perf_counter() - t0
        cpu = time.process_time() + _cpu_seconds(pids) - c0
        return steps * num_envs / wall, steps * num_envs / cpu


def bench_ring_jax(num_envs: int, steps: int) -> tuple[float, float]:
    """(env-steps per wall second, per CPU second of this process, all XLA threads included)."""
    import jax
    import jax.numpy as jnp

    from envs.traffic import ring_jax as RJ

    rng = np.random.default_rng(0)
    ctx = np.stack([rng.uniform(200, 400, num_envs), rng.integers(10, 27, num_envs).astype(np.float64),
                    np.ones(num_envs)], 1)
    params = jax.vmap(RJ.params_from_context)(jnp.asarray(ctx, jnp.float32))

    @jax.jit
    def rollout(key, params):
        state, _ = jax.vmap(RJ.reset)(jax.random.split(key, num_envs), params)

        def body(state, key):
            k_act, k_env = jax.random.split(key)
            actions = jax.random.uniform(k_act, (num_envs, 1), minval=-1.0, maxval=1.0)
            state, ts = jax.vmap(RJ.step)(jax.random.split(k_env, num_envs), state, actions, params)
            return state, ts.reward.mean()

        return jax.lax.scan(body, state, jax.random.split(key, steps))[1]

    jax.block_until_ready(rollout(jax.random.PRNGKey(0), params))  # compile
    c0, t0 = time.process_time(), time.perf_counter()
    jax.block_until_ready(rollout(jax.random.PRNGKey(1), params))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return steps * num_envs / wall, steps * num_envs / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps (CI smoke)")
    ap.add_argument("--json", help="write the numbers to this file")
    ap.add_argument("--skip-signal", action="store_true")
    ap.add_argument("--jax-sizes", default="1024,10240")
    args = ap.parse_args()
    steps = 120 if args.quick else 600
    episode_seconds = 600  # 120 decisions per episode: resets are part of the measured throughput
    repeats = 1 if args.quick else 3
    context = {"inflow": 600.0, "speed_limit": 13.89, "lane_length": 200.0}
    res: dict = {"context": context, "episode_seconds": episode_seconds, "steps": steps}

    if not args.skip_signal:
        print(f"== signal control, one intersection, {context}, {steps} agent steps x {repeats} (median), "
              "random actions ==")
        runs = {"ours_1env": [], "ours_2env": [], "ours_inline": [], "sumo_rl": []}
        for _ in range(repeats):  # interleaved, so drifting load on a shared machine hits both sides alike
            runs["ours_1env"].append(bench_ours(1, steps, episode_seconds, context))
            runs["ours_2env"].append(bench_ours(2, steps // 2, episode_seconds, context))
            runs["ours_inline"].append(bench_ours(1, steps, episode_seconds, context, inline=True))
            runs["sumo_rl"].append(bench_sumo_rl(steps, episode_seconds, context))
        for key, vals in runs.items():
            vals = [v for v in vals if v is not None]
            res[key] = tuple(np.median(np.array(vals), axis=0).tolist()) if vals else None
        print(f"  {'env':34s} {'steps/s wall':>12s} {'vs sumo-rl':>10s} {'steps/CPU-s':>12s} {'vs sumo-rl':>10s}")
        ref = res.get("sumo_rl")
        for name, key in (("omnitask traffic/signal-1x1 (B=1)", "ours_1env"),
                          ("omnitask traffic/signal-1x1 (B=2)", "ours_2env"),
                          ("omnitask signal-1x1 inline (B=1)", "ours_inline"),
                          ("sumo-rl single_agent (libsumo)", "sumo_rl")):
            v = res[key]
            if v is None:
                continue
            r_wall = f"{v[0] / ref[0]:.2f}x" if ref else "-"
            r_cpu = f"{v[1] / ref[1]:.2f}x" if ref else "-"
            print(f"  {name:34s} {v[0]:12.1f} {r_wall:>10s} {v[1]:12.1f} {r_cpu:>10s}")

    print("== ring road: SUMO IDM vs JAX IDM (1 env step = 1 s hold = 10 x 0.1 s IDM steps) ==")
    ring_steps = 100 if args.quick else 300
    res["ring_sumo_1env"] = bench_ring_sumo(1, ring_steps)
    res["ring_sumo_2env"] = bench_ring_sumo(2, ring_steps)
    import jax

    res["jax_backend"] = jax.default_backend()
    ref = res["ring_sumo_1env"]
    print(f"  {'env':38s} {'steps/s wall':>12s} {'vs SUMO':>9s} {'steps/CPU-s':>12s} {'vs SUMO':>9s}")

    def row(name, v):
        print(f"  {name:38s} {v[0]:12.1f} {v[0] / ref[0]:8.1f}x {v[1]:12.1f} {v[1] / ref[1]:8.1f}x")

    row("traffic/ring-sumo (B=1)", res["ring_sumo_1env"])
    row("traffic/ring-sumo (B=2)", res["ring_sumo_2env"])
    for n in (int(s) for s in args.jax_sizes.split(",")):
        key = f"ring_jax_{n}"
        res[key] = bench_ring_jax(n, 50 if args.quick else 200)
        row(f"traffic/ring-jax vmap B={n} ({res['jax_backend']})", res[key])
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
