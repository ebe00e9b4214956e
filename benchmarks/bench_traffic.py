"""Traffic benchmarks, printed side by side with ratios.

1. Signal control: traffic ids (default ``traffic/signal-1x1``; any id whose simulations carry ``net_file`` /
   ``route_file`` / ``delta_time`` / ``yellow_time`` in their config, e.g. ``traffic/signal-2x2`` or
   ``traffic/resco/<name>``) vs sumo-rl's ``SumoEnvironment`` with ``LIBSUMO_AS_TRACI=1`` on the *same* network
   and route files, same delta_time/yellow/min_green (RESCO ids: RESCO's timing on both sides, see
   ``sumo_rl_setup``), random actions, resets included in the timing. Both sides get the same per-episode SUMO
   seeds and the same action stream (one uniform phase per signal, signals in sorted id order), so they simulate the
   same traffic: ``--check-work`` prints the mean number of vehicles in the network at the decision points on both
   sides (equal). Configurations (all of them interleaved, the order reversed every other repeat, so drifting load
   on a shared machine hits every side alike; ratios are taken per repeat, the median and range printed):
     - omnitask default (1 simulation in a worker process) and ``inline=True`` vs sumo-rl's single env;
     - with ``--sims 1,2``: omnitask's default with 2 simulations in 2 workers (stepping concurrently) vs sumo-rl
       running the same 2 simulations one after another (its single env), vs sumo-rl x2 in gymnasium's
       ``AsyncVectorEnv`` (single-agent ids; what a sumo-rl user runs for concurrency), and vs sumo-rl x2 in two
       separate processes with no IPC at all (an upper bound for any vector wrapper around sumo-rl).
   Agent-steps per wall second, and per CPU second (parent + SUMO workers / env processes; robust to other load on
   the machine). Concurrency only pays in wall time when cores are free: say how many there are and how loaded.
   Default steps: whole episodes (of each of 2 simulations), at least 1,200; 1,440 on the RESCO networks.
2. Ring road: ``traffic/ring-sumo`` (SUMO IDM, one worker per env) vs ``traffic/ring-jax`` vmapped over 1024 and
   10240 contexts inside one jitted ``lax.scan``. Env-steps/s (one env step = a 1 s hold = 10 IDM steps).

Usage:  .venv/bin/python benchmarks/bench_traffic.py [--env traffic/signal-1x1[,traffic/resco/arterial4x4]] [--quick]
        [--skip-ring] [--sims 1,2] [--repeats 5] [--check-work] [--split] [--json out.json]
sumo-rl is optional (``pip install 'omnitask[bench]'``); without it part 1 reports only our env.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import time

import numpy as np

os.environ["LIBSUMO_AS_TRACI"] = "1"  # sumo-rl reads this at import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import envs  # noqa: E402
from envs.traffic.host import episode_seed  # noqa: E402
from envs.traffic.netgen import sumo_home  # noqa: E402

try:  # import sumo-rl before anything imports libsumo in this process (the inline run does)
    sumo_home()
    import sumo_rl  # noqa: F401
except ImportError:
    pass

SEED = 0
SIGNAL_OPTIONS = {"episode_seconds": 600, "time_to_teleport": -1}  # 120 decisions per episode; sumo-rl: no teleports


def _cpu_seconds(pids) -> float:
    """User+system CPU seconds of processes ``pids`` (from /proc; Linux only)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _options(env_id: str) -> dict:
    return dict(SIGNAL_OPTIONS) if env_id.startswith("traffic/signal-") else {}


@functools.lru_cache(maxsize=None)
def agents_per_sim(env_id: str) -> int:
    """Agents (lights) of one simulation of ``env_id``: 1, or the N of the factory's 'a multiple of N' error."""
    try:
        envs.make(env_id, num_envs=1, seed=SEED, **_options(env_id)).close()
        return 1
    except ValueError as err:
        m = re.search(r"multiple of (\d+)", str(err))
        if not m:
            raise
        return int(m.group(1))


def phase_counts(env) -> np.ndarray:
    """[B] number of valid actions per agent (an env's ``action_mask`` if it has one, e.g. padded phase sets)."""
    mask = getattr(env, "action_mask", None)
    if mask is None:
        return np.full(env.num_envs, env.spec.action.num_actions, np.int64)
    return np.asarray(mask, bool).sum(axis=1)


def random_actions(rng, n: np.ndarray) -> np.ndarray:
    """One uniform action in ``[0, n[b])`` per agent (the signal's own phase index). Both sides draw from this
    function with the same seed, agents in sorted signal-id order, simulation after simulation, so they simulate
    the same traffic."""
    return (rng.random(len(n)) * n).astype(np.int32)


def whole_episodes(env_id: str, at_least: int) -> int:
    """The fewest env steps >= ``at_least`` that are whole episodes of ``env_id`` (and of each of 2 simulations)."""
    length = envs.spec(env_id, **_options(env_id)).max_episode_steps or 1
    return -(-at_least // (2 * length)) * 2 * length if length < at_least else 2 * length


def bench_ours(env_id: str, sims: int, steps: int, inline: bool = False) -> tuple[float, float]:
    """(agent-steps per wall second, agent-steps per CPU second of parent + workers); ``steps`` env steps."""
    A = agents_per_sim(env_id)
    rng = np.random.default_rng(SEED)
    with envs.make(env_id, num_envs=sims * A, seed=SEED, inline=inline, **_options(env_id)) as env:
        n = phase_counts(env)
        env.reset()
        pids = [] if inline else env.pool.pids  # inline: the simulation's CPU is this process's
        c0, t0 = time.process_time() + _cpu_seconds(pids), time.perf_counter()
        for _ in range(steps):
            env.step(random_actions(rng, n))
        wall = time.perf_counter() - t0
        cpu = time.process_time() + _cpu_seconds(pids) - c0
        return steps * env.num_envs / wall, steps * env.num_envs / cpu


def sumo_rl_setup(env_id: str) -> dict:
    """sumo-rl arguments for the same network, demand and timing as ``env_id``'s simulations.

    For ``traffic/resco/<name>`` these are the files and window of sumo-rl's own RESCO helpers
    (``sumo_rl.environment.resco_envs``), given RESCO's timing as ours is (10-s decisions, 3-s yellow; arterial4x4
    5/2) with ``min_green=0`` (RESCO has no min-green beyond the decision), instead of the helpers' 5/2/5 defaults.
    The helpers return PettingZoo wrappers around the same ``SumoEnvironment``; the bench drives it directly."""
    A = agents_per_sim(env_id)
    env = envs.make(env_id, num_envs=A, seed=SEED, **_options(env_id))
    try:
        cfg = env.pool.cfgs[0]
        phases = phase_counts(env).tolist()
    finally:
        env.close()
    missing = [k for k in ("net_file", "route_file", "delta_time", "yellow_time") if not hasattr(cfg, k)]
    if missing:
        raise SystemExit(f"{env_id}: its simulation config {type(cfg).__name__} has no {missing}; the sumo-rl "
                         "comparison needs a signal-control id with SUMO net/route files")
    begin = int(getattr(cfg, "begin", 0))
    end = int(getattr(cfg, "end", begin + getattr(cfg, "episode_seconds", 3600)))
    return dict(net_file=cfg.net_file, route_file=cfg.route_file, begin_time=begin, num_seconds=end - begin,
                delta_time=int(cfg.delta_time), yellow_time=int(cfg.yellow_time),
                min_green=int(getattr(cfg, "min_green", 0)), time_to_teleport=int(getattr(cfg, "time_to_teleport", -1)),
                single_agent=A == 1, _phases=phases)


def _sumo_rl_env(setup: dict, single_agent: bool | None = None):
    from sumo_rl import SumoEnvironment

    kw = {k: v for k, v in setup.items() if not k.startswith("_")}
    if single_agent is not None:
        kw["single_agent"] = single_agent
    return SumoEnvironment(**kw, sumo_seed=episode_seed(SEED, 0, 0), sumo_warnings=False,
                           reward_fn="diff-waiting-time", use_gui=False)


def _sumo_rl_reset(env, seed: int, setup: dict):
    """``env.reset(seed=seed)``; with ``min_green=0`` (RESCO timing) also lets a signal switch at the episode's first
    decision as ours does: sumo-rl's own check (``time_since_last_phase_change < yellow_time + min_green``) would hold
    every signal on phase 0 for that one decision, and the two sides would then simulate different traffic."""
    out = env.reset(seed=seed)
    if setup["min_green"] == 0:
        for ts in env.traffic_signals.values():
            ts.time_since_last_phase_change = setup["yellow_time"]
    return out


def _sumo_rl_phases(env, setup: dict) -> tuple[list[str], np.ndarray]:
    """(signal ids in sorted order, [A] phases per signal), checked against ours (same action sets)."""
    ids = sorted(env.ts_ids)
    n = np.array([env.action_spaces(ts).n for ts in ids])
    if n.tolist() != setup["_phases"]:
        raise SystemExit(f"sumo-rl sees {n.tolist()} green phases per signal, ours {setup['_phases']}: the action "
                         "sets differ, so the two sides would not simulate the same traffic")
    return ids, n


def bench_sumo_rl(setup: dict, steps: int, count_vehicles: bool = False, sim_index: int = 0
                  ) -> tuple[float, float, float]:
    """(agent-steps per wall s, per CPU s, mean vehicles at decisions or nan). The episode seeds of our simulation
    ``sim_index`` and the same action stream as ``bench_ours`` (signals in sorted id order)."""
    env = _sumo_rl_env(setup)
    rng = np.random.default_rng(SEED)
    episode = 0
    _sumo_rl_reset(env, episode_seed(SEED, sim_index, episode), setup)
    ids, n = _sumo_rl_phases(env, setup)
    vehicles = []
    c0, t0 = time.process_time(), time.perf_counter()  # libsumo runs inside this process
    for _ in range(steps):
        acts = random_actions(rng, n)
        if setup["single_agent"]:
            _, _, _, done, _ = env.step(int(acts[0]))
        else:
            _, _, dones, _ = env.step({ts: int(a) for ts, a in zip(ids, acts)})
            done = dones["__all__"]
        if done:
            episode += 1
            _sumo_rl_reset(env, episode_seed(SEED, sim_index, episode), setup)
        if count_vehicles:  # after the reset, as our same-step autoreset does
            vehicles.append(env.sumo.vehicle.getIDCount())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return steps * len(ids) / wall, steps * len(ids) / cpu, float(np.mean(vehicles)) if vehicles else float("nan")


def _sumo_rl_process(setup: dict, steps: int, sim_index: int, conn) -> None:
    """One of the ``bench_sumo_rl_processes`` children: waits for 'go', runs, sends (wall start, wall end, cpu s)."""
    sumo_home()
    import sumo_rl  # noqa: F401 (import before anything else imports libsumo)

    conn.send("ready")
    conn.recv()
    t0 = time.time()
    rate_wall, rate_cpu, _ = bench_sumo_rl(setup, steps, sim_index=sim_index)
    conn.send((t0, time.time(), steps * len(setup["_phases"]) / rate_cpu))


def bench_sumo_rl_processes(setup: dict, sims: int, steps: int) -> tuple[float, float]:
    """sumo-rl on ``sims`` simulations at once, each in its own process (no IPC while stepping): an upper bound of
    what any vector wrapper around sumo-rl could reach. ``steps`` env steps in all (``steps // sims`` each)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for i in range(sims):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_sumo_rl_process, args=(setup, steps // sims, i, child), daemon=True)
        p.start()
        pipes.append(parent)
        procs.append(p)
    for c in pipes:
        c.recv()
    for c in pipes:
        c.send("go")
    res = [c.recv() for c in pipes]
    for p in procs:
        p.join()
    wall = max(r[1] for r in res) - min(r[0] for r in res)
    cpu = sum(r[2] for r in res)
    agent_steps = (steps // sims) * sims * len(setup["_phases"])
    return agent_steps / wall, agent_steps / cpu


def _seeded_sumo_rl_env(setup: dict, sim_index: int):
    """A sumo-rl ``single_agent`` env for AsyncVectorEnv whose every reset takes the seed of our simulation
    ``sim_index``'s next episode (the vector env's autoreset calls ``reset()`` without one)."""
    import gymnasium as gym

    class SeededEpisodes(gym.Wrapper):
        episode = 0

        def reset(self, *, seed=None, options=None):
            out = _sumo_rl_reset(self.env, episode_seed(SEED, sim_index, self.episode), setup)
            self.episode += 1
            return out

    sumo_home()
    return SeededEpisodes(_sumo_rl_env(setup, single_agent=True))


def bench_sumo_rl_async(setup: dict, sims: int, steps: int) -> tuple[float, float]:
    """sumo-rl ``single_agent`` envs in gymnasium's ``AsyncVectorEnv`` (one process per env, same-step autoreset):
    what a sumo-rl user runs for concurrency. ``steps // sims`` vector steps; CPU of parent + env processes."""
    import gymnasium as gym

    vec = gym.vector.AsyncVectorEnv([functools.partial(_seeded_sumo_rl_env, setup, i) for i in range(sims)],
                                    context="spawn", autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    try:
        vec.reset()
        n = np.repeat(np.array(setup["_phases"]), sims)
        rng = np.random.default_rng(SEED)
        pids = [p.pid for p in vec.processes]
        c0, t0 = time.process_time() + _cpu_seconds(pids), time.perf_counter()
        for _ in range(steps // sims):
            vec.step(random_actions(rng, n))
        wall = time.perf_counter() - t0
        cpu = time.process_time() + _cpu_seconds(pids) - c0
    finally:
        vec.close()
    agent_steps = (steps // sims) * sims
    return agent_steps / wall, agent_steps / cpu


def ours_mean_vehicles(env_id: str, steps: int) -> float:
    """Mean vehicles in the network at our decision points (inline run: libsumo is queried in this process)."""
    import libsumo

    A = agents_per_sim(env_id)
    rng = np.random.default_rng(SEED)
    counts = []
    with envs.make(env_id, num_envs=A, seed=SEED, inline=True, **_options(env_id)) as env:
        n = phase_counts(env)
        env.reset()
        for _ in range(steps):
            env.step(random_actions(rng, n))
            counts.append(libsumo.vehicle.getIDCount())
    return float(np.mean(counts))


def cpu_split(env_id: str, steps: int) -> dict:
    """CPU microseconds per agent-step in one process, ours ``inline`` vs sumo-rl on the same seeds and actions:
    SUMO's own stepping, SUMO (re)starts/loads, and everything else (the env code). SUMO's stepping is the same work
    on both sides, so (sumo-rl total) / (SUMO stepping + starts) bounds the ratio any env code could reach."""
    import libsumo
    import traci  # sumo-rl calls libsumo through ``traci`` (LIBSUMO_AS_TRACI=1), a copy of libsumo's functions

    spent: dict[str, float] = {}
    saved = []

    def timed(mod, name, key):
        fn = getattr(mod, name)
        saved.append((mod, name, fn))

        def wrapper(*a, **k):
            t0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[key] = spent.get(key, 0.0) + time.process_time() - t0
        setattr(mod, name, wrapper)

    for mod in {id(libsumo): libsumo, id(traci): traci}.values():
        timed(mod, "simulationStep", "sumo_step")
        timed(mod, "load", "sumo_start")
        timed(mod, "start", "sumo_start")
    out = {}
    try:
        A = agents_per_sim(env_id)
        for side in ("ours_inline", "sumo_rl"):
            spent.clear()
            c0 = time.process_time()
            if side == "ours_inline":
                rng = np.random.default_rng(SEED)
                with envs.make(env_id, num_envs=A, seed=SEED, inline=True, **_options(env_id)) as env:
                    n = phase_counts(env)
                    env.reset()
                    c0 = time.process_time()
                    for _ in range(steps):
                        env.step(random_actions(rng, n))
                    total = time.process_time() - c0
                agent_steps = steps * A
            else:
                try:
                    total = steps * A / bench_sumo_rl(sumo_rl_setup(env_id), steps)[1]
                except ImportError:
                    continue  # no sumo-rl: bench_signal already said so
                agent_steps = steps * A
            us = {k: v / agent_steps * 1e6 for k, v in spent.items()}
            out[side] = {"total": total / agent_steps * 1e6, **us,
                         "rest": (total - sum(spent.values())) / agent_steps * 1e6}
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    for side, d in out.items():
        print(f"  CPU split {side:12s} us/agent-step: total {d['total']:6.0f} = SUMO stepping "
              f"{d.get('sumo_step', 0):5.0f} + SUMO start/load {d.get('sumo_start', 0):4.0f} + env code {d['rest']:5.0f}")
    if len(out) == 2:
        # the same SUMO stepping plus the cheaper of the two ways to start an episode (our reload)
        floor = out["sumo_rl"].get("sumo_step", 0) + min(d.get("sumo_start", 0) for d in out.values())
        print(f"  => with zero env code, the ratio to sumo-rl could be at most {out['sumo_rl']['total'] / floor:.2f}x")
    return out


def bench_signal(env_id: str, steps: int, repeats: int, sims_list: list[int], check_work: bool) -> dict:
    """Every configuration below, interleaved (order reversed every other repeat), then paired ratios per repeat."""
    try:
        setup = sumo_rl_setup(env_id)
        sumo_home()
        import sumo_rl  # noqa: F401
    except ImportError as err:
        print(f"  sumo-rl not available ({err}); install the 'bench' extra")
        setup = None
    A = agents_per_sim(env_id)
    print(f"== signal control {env_id} ({A} agent(s) per simulation), {steps} env steps x {repeats} interleaved "
          f"repeats, random actions, load average {os.getloadavg()[0]:.1f} ==")
    configs: dict[str, tuple[str, callable]] = {
        "ours_1sim": ("omnitask default: 1 sim in 1 worker process", lambda: bench_ours(env_id, 1, steps)),
        "ours_inline": ("omnitask inline=True: 1 sim, no worker", lambda: bench_ours(env_id, 1, steps, inline=True)),
    }
    if setup is not None:
        configs["sumo_rl"] = ("sumo-rl SumoEnvironment, 1 sim in-process", lambda: bench_sumo_rl(setup, steps)[:2])
    for n in (n for n in sims_list if n > 1):
        configs[f"ours_{n}sim"] = (f"omnitask default: {n} sims in {n} worker processes",
                                   functools.partial(lambda n: bench_ours(env_id, n, steps // n), n))
        if setup is not None and A == 1:
            configs[f"sumo_rl_async_{n}"] = (f"sumo-rl x{n} in gymnasium AsyncVectorEnv",
                                             functools.partial(lambda n: bench_sumo_rl_async(setup, n, steps), n))
        if setup is not None:
            configs[f"sumo_rl_procs_{n}"] = (f"sumo-rl x{n} in {n} separate processes (no IPC)",
                                             functools.partial(lambda n: bench_sumo_rl_processes(setup, n, steps), n))
    runs: dict[str, list] = {k: [] for k in configs}
    order = list(configs)
    for r in range(repeats):
        for key in (order if r % 2 == 0 else order[::-1]):
            runs[key].append(configs[key][1]())
    res: dict = {"env_id": env_id, "steps": steps, "repeats": repeats, "load_avg_1min": os.getloadavg()[0],
                 "cpu_count": os.cpu_count()}
    print(f"  {'configuration':52s} {'agent-steps/s wall':>18s} {'per CPU-s':>10s}   (median of {repeats})")
    for key, vals in runs.items():
        med = np.median(np.array(vals), axis=0)
        res[key] = {"label": configs[key][0], "wall": med[0], "cpu": med[1], "runs": np.array(vals).tolist()}
        print(f"  {configs[key][0]:52s} {med[0]:18.1f} {med[1]:10.1f}")
    if setup is not None:
        pairs = [("ours_1sim", "sumo_rl", "1 sim vs 1 sim"), ("ours_inline", "sumo_rl", "1 sim vs 1 sim")]
        for n in (n for n in sims_list if n > 1):
            pairs.append((f"ours_{n}sim", "sumo_rl", f"{n} sims vs sumo-rl's {n} sims one after another (1 env)"))
            if A == 1:
                pairs.append((f"ours_{n}sim", f"sumo_rl_async_{n}", f"{n} sims vs {n} sims"))
            pairs.append((f"ours_{n}sim", f"sumo_rl_procs_{n}", f"{n} sims vs {n} sims"))
        print(f"  paired ratios, median (min-max) over the {repeats} repeats; > 1 = omnitask faster; "
              f"{os.cpu_count()} CPU cores")
        print(f"  {'omnitask':46s} {'vs':50s} {'wall':>18s} {'per CPU-s':>18s}  [compared]")
        res["ratios"] = []
        for ours, ref, what in pairs:
            cols = []
            out = {"ours": ours, "ref": ref, "compared": what}
            for j, name in enumerate(("wall", "cpu")):
                r = np.array(runs[ours])[:, j] / np.array(runs[ref])[:, j]  # repeat k of ours vs repeat k of ref
                out[name] = {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())}
                cols.append(f"{np.median(r):.2f}x ({r.min():.2f}-{r.max():.2f})")
            res["ratios"].append(out)
            print(f"  {configs[ours][0].removeprefix('omnitask '):46s} {configs[ref][0]:50s} {cols[0]:>18s} "
                  f"{cols[1]:>18s}  [{what}]")
    if check_work and setup is not None:
        work_steps = min(steps, 600)
        ours_v = ours_mean_vehicles(env_id, work_steps)
        rl_v = bench_sumo_rl(setup, work_steps, count_vehicles=True)[2]
        res["mean_vehicles"] = {"ours": ours_v, "sumo_rl": rl_v}
        print(f"  same SUMO work: mean vehicles in the network at the decisions ({work_steps} steps): "
              f"ours {ours_v:.2f}, sumo-rl {rl_v:.2f}")
    return res


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
    ap.add_argument("--env", default="traffic/signal-1x1",
                    help="traffic id(s) for the sumo-rl comparison, comma-separated (e.g. "
                         "traffic/signal-1x1,traffic/resco/arterial4x4)")
    ap.add_argument("--sims", default="1,2", help="simulations (worker processes) of our default mode to time")
    ap.add_argument("--steps", type=int, help="env steps per timed run (default: whole episodes, at least 1200 "
                                              "steps; --quick 120)")
    ap.add_argument("--repeats", type=int, help="interleaved repeats (default 5; --quick 1)")
    ap.add_argument("--quick", action="store_true", help="fewer steps (CI smoke)")
    ap.add_argument("--check-work", action="store_true", help="also print mean vehicles on both sides")
    ap.add_argument("--split", action="store_true",
                    help="also print the in-process CPU split (SUMO stepping / starts / env code), ours vs sumo-rl")
    ap.add_argument("--json", help="write the numbers to this file")
    ap.add_argument("--skip-signal", action="store_true")
    ap.add_argument("--skip-ring", action="store_true")
    ap.add_argument("--jax-sizes", default="1024,10240")
    args = ap.parse_args()
    steps = args.steps or (120 if args.quick else 1200)
    repeats = args.repeats or (1 if args.quick else 5)
    res: dict = {}
    if not args.skip_signal:
        res["signal"] = {}
        for env_id in args.env.split(","):
            env_steps = args.steps or (120 if args.quick else whole_episodes(env_id, 1200))
            out = bench_signal(env_id, env_steps, repeats, [int(x) for x in args.sims.split(",")], args.check_work)
            if args.split:
                out["cpu_split_us"] = cpu_split(env_id, env_steps)
            res["signal"][env_id] = out
    if not args.skip_ring:
        res.update(bench_ring(args.quick, args.jax_sizes))
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.replace(args.json + ".tmp", args.json)


def bench_ring(quick: bool, jax_sizes: str) -> dict:
    res: dict = {}
    print("== ring road: SUMO IDM vs JAX IDM (1 env step = 1 s hold = 10 x 0.1 s IDM steps) ==")
    ring_steps = 100 if quick else 300
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
    for n in (int(s) for s in jax_sizes.split(",")):
        key = f"ring_jax_{n}"
        res[key] = bench_ring_jax(n, 50 if quick else 200)
        row(f"traffic/ring-jax vmap B={n} ({res['jax_backend']})", res[key])
    return res


if __name__ == "__main__":
    main()
