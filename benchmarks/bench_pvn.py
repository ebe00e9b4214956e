"""PVN benchmarks.

  python benchmarks/bench_pvn.py speed [--encoder nature|impala|minatar] [--batch 32] [--tasks 100]
      Pretraining updates/s with ``--tasks`` auxiliary tasks vs a single-head double-DQN update
      (``agents.dqn.learner.make_dqn_update``) with the same encoder and batch. Target: PVN <= 1.3x a DQN update.
      PVN numbers: the TD step alone (indicator rewards given), with the hash family's indicator computation, with
      the rnd family's frozen random nets + quantile step (the reference's 10 nets for 100 tasks; as grouped convs;
      with the reference's SAME padding) and, not the reference, one random net for all tasks. Printed as a table of
      the compiler's FLOP ratio (load-independent) and the measured-time ratio (interleaved rounds, median).
      Score cache (``rnd_cached``; agents.pvn.score_cache): the update that reads cached scores, the one-off scoring
      per stored transition (10 nets, SAME and VALID padding), and the amortised ratio (cached update + scoring /
      samples per transition) at the reference's sampling ratio and at our CPU configs' (``SAMPLING``).
      ``--cases`` picks the PVN cases (default all).
  python benchmarks/bench_pvn.py reproduce [--run-dir DIR] [--set key=value ...]
      The CPU-sized reproduction (configs/pvn/minatar_breakout_cpu.yaml): trains it (unless --run-dir points at a
      finished run) and prints final returns of PVN-linear, random-linear and end-to-end DQN at equal budgets.
  python benchmarks/bench_pvn.py atari [--out DIR] [--game UpNDown] [--collect-steps 20000] [--jobs 2] [--seeds 0 1 2] [--set key=value ...]
      Real Atari at a CPU budget (configs/pvn/atari_krull_cpu.yaml): (1) the DQN baseline learns the game while
      its env records every transition (agents.pvn.collect.RecordingEnv) -> DIR/dataset, learning curve ->
      DIR/collector_curve.json; (2) per seed, PVN pretrains on that dataset and PVN-linear, random-linear and
      end-to-end DQN train online at equal budgets (DIR/seed<k>); (3) DIR/pvn_atari.png and DIR/summary.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, state, batch, repeats: int) -> float:
    t = time.perf_counter()
    for _ in range(repeats):
        state = fn(state, batch)[0]
    jax.block_until_ready(state)
    return repeats / (time.perf_counter() - t)


def _interleaved(cases: dict, repeats: int, rounds: int) -> dict:
    """updates/s per case: compile all, then ``rounds`` interleaved timings; median per case (shared machines)."""
    for fn, state, batch in cases.values():
        jax.block_until_ready(fn(state, batch)[0])  # compile + warm up
    rates = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (fn, state, batch) in cases.items():
            rates[name].append(_time(fn, state, batch, repeats))
    return {name: float(np.median(r)) for name, r in rates.items()}


def _gflops(fn, state, batch) -> float:
    """GFLOPs of one update as XLA counts them (independent of machine load)."""
    cost = fn.lower(state, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan"))) / 1e9


# Samples per stored transition (updates x batch / transitions: each update draws ``batch`` transitions uniformly
# with replacement from the data, so a transition is drawn this many times on average). The reference: 1.56M updates
# x 256 over one game's 50M DQN Replay transitions (50 checkpoints x 1M). Ours: configs/pvn/minatar_breakout_cpu.yaml
# (2,000 x 64 over 100k collected) and configs/pvn/atari_krull_cpu.yaml (800 x 32 over the 16,000 transitions
# `bench_pvn.py atari` records by default).
SAMPLING = {"reference (1.56M x 256 / 50M)": 1_560_000 * 256 / 50_000_000,
            "minatar_breakout_cpu (2000 x 64 / 100k)": 2_000 * 64 / 100_000,
            "atari_krull_cpu (800 x 32 / 16k)": 800 * 32 / 16_000}
ALL_CASES = ("td_only", "hash", "rnd", "rnd_grouped", "rnd_same_padding", "rnd_one_net", "rnd_cached")


def speed(encoder: str, batch: int, tasks: int, repeats: int, tasks_per_net: int = 10, rounds: int = 5,
          width: int = 1, flops_only: bool = False, cases_wanted=ALL_CASES) -> dict:
    from agents.common.replay import NStepBatch
    from agents.dqn.config import DQNConfig
    from agents.dqn.learner import DQNTrainState, make_dqn_update, make_optimizer
    from agents.pvn.indicators import IndicatorConfig
    from agents.pvn.networks import Encoder, EncoderConfig, LinearQ
    from agents.pvn.pretrain import PretrainConfig, make_pretrainer

    shape = (10, 10, 4) if encoder == "minatar" else (84, 84, 4)
    enc = EncoderConfig(arch=encoder, width=width, feature_dim=128 if encoder == "minatar" else 512 * width,
                        padding="VALID", pixel_scale=1.0 if encoder == "minatar" else 255.0)
    num_actions = 18
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.integers(0, 2 if encoder == "minatar" else 256, (batch, *shape), dtype=np.uint8))
    nxt = jnp.asarray(rng.integers(0, 2 if encoder == "minatar" else 256, (batch, *shape), dtype=np.uint8))
    act = jnp.asarray(rng.integers(0, num_actions, batch), jnp.int32)
    out = {"encoder": encoder, "batch": batch, "tasks": tasks, "tasks_per_net": tasks_per_net, "obs_shape": list(shape),
           "device": jax.devices()[0].platform}

    # single-head DQN update, same encoder
    dqn_cfg = DQNConfig(lr=6.25e-5, adam_eps=1.5e-4, batch_size=batch, target_update_period=2000,
                        max_grad_norm=0.0)
    torso, head = Encoder(enc.spec()), LinearQ(num_actions)

    def q_fn(p, x):
        return head.apply(p["head"], torso.apply(p["encoder"], x))
    p_enc = torso.init(jax.random.PRNGKey(0), obs[:1])
    params = {"encoder": p_enc, "head": head.init(jax.random.PRNGKey(1), torso.apply(p_enc, obs[:1]))}
    opt = make_optimizer(dqn_cfg)
    dqn_state = DQNTrainState(params, params, opt.init(params), jnp.zeros((), jnp.int32))
    dqn_batch = NStepBatch(obs, act, jnp.ones((batch,)), jnp.full((batch,), 0.99), nxt)
    cases = {"dqn": (jax.jit(make_dqn_update(q_fn, opt, dqn_cfg)), dqn_state, dqn_batch)}

    pvn_batch = {"observation": obs, "next_observation": nxt, "action": act,
                 "terminated": jnp.zeros((batch,), bool)}

    # PVN TD step alone (indicator rewards given): the multi-head network, targets, loss, Adam, EMA
    from agents.pvn.losses import ema_update, pvn_td_loss, uniform_policy_targets
    from agents.pvn.networks import PVNNetwork
    net_td = PVNNetwork(enc.spec(), tasks, num_actions)
    td_opt = optax.adam(1.1e-4, eps=1.5e-4)
    rewards = jnp.asarray(rng.random((batch, tasks)) < 0.01, jnp.float32)

    def td_update(state, b):
        p, tp, o = state

        def loss(p):
            q = net_td.apply(p, b["observation"])
            y = uniform_policy_targets(rewards, b["terminated"], net_td.apply(tp, b["next_observation"]), 0.99)
            return pvn_td_loss(q, b["action"], y)
        g = jax.grad(loss)(p)
        u, o = td_opt.update(g, o, p)
        p = optax.apply_updates(p, u)
        return (p, ema_update(tp, p, 0.99), o), None
    p_td = net_td.init(jax.random.PRNGKey(3), obs[:1])
    if "td_only" in cases_wanted:
        cases["pvn_td_only"] = (jax.jit(td_update), (p_td, p_td, td_opt.init(p_td)), pvn_batch)
    # (case, family, tasks per random net, net batching, random nets' padding); rnd_* beyond "rnd" are variants
    indicator_cases = [("hash", "hash", tasks_per_net, "auto", "VALID"),
                       ("rnd", "rnd", tasks_per_net, "auto", "VALID"),  # per_net on CPU, grouped elsewhere
                       ("rnd_grouped", "rnd", tasks_per_net, "grouped", "VALID"),  # vmap -> grouped convs
                       ("rnd_same_padding", "rnd", tasks_per_net, "auto", "SAME"),  # the reference's flax default
                       ("rnd_one_net", "rnd", tasks, "auto", "VALID")]  # NOT the reference: one net, all tasks
    def rnd_pretrainer(per_net, batching, padding, family="rnd"):
        net = EncoderConfig(arch="nature" if encoder != "minatar" else "minatar", width=1,
                            feature_dim=512 if encoder != "minatar" else 64, padding=padding,
                            pixel_scale=enc.pixel_scale)
        cfg = PretrainConfig(num_tasks=tasks, encoder=enc, batch_size=batch, warmup_steps=0,
                             indicators=IndicatorConfig(family=family, net=net, tasks_per_net=per_net,
                                                        net_batching=batching))
        return make_pretrainer(cfg, shape, num_actions)
    for name, family, per_net, batching, padding in indicator_cases:
        if name in cases_wanted:
            pre = rnd_pretrainer(per_net, batching, padding, family)
            cases[f"pvn_{name}"] = (jax.jit(pre.update), pre.init(jax.random.PRNGKey(2)), pvn_batch)
    if "rnd_cached" in cases_wanted:
        # score cache (agents.pvn.score_cache): the update reads each transition's cached scores [B, T] (the same
        # update whatever the nets' padding); the one-off scoring runs once per stored transition, timed here at
        # the update's batch with the reference's SAME padding and with VALID
        from agents.pvn.score_cache import SCORES_KEY
        pre = rnd_pretrainer(tasks_per_net, "auto", "SAME")
        st = pre.init(jax.random.PRNGKey(2))
        cached = dict(pvn_batch, **{SCORES_KEY: jax.jit(pre.indicators.scores)(st.indicator, obs)})
        cases["pvn_rnd_cached"] = (jax.jit(pre.update), st, cached)
        for padding in ("SAME", "VALID"):
            pre = rnd_pretrainer(tasks_per_net, "auto", padding)
            ind = pre.init(jax.random.PRNGKey(2)).indicator
            cases[f"score_{padding.lower()}"] = (jax.jit(lambda s, o, pre=pre: (s, pre.indicators.scores(s, o))),
                                                 ind, obs)
    for name, (fn, st, b) in cases.items():  # compiler's FLOP count: a load-independent cost ratio
        out[f"{name}_gflops"] = _gflops(fn, st, b)
    out["encoder_width"] = width
    names = [n[len("pvn_"):] for n in cases if n.startswith("pvn_")]
    for name in names:
        out[f"flops_ratio_{name}"] = out[f"pvn_{name}_gflops"] / out["dqn_gflops"]
    timed = not flops_only
    if timed:
        for name, rate in _interleaved(cases, repeats, rounds).items():
            out[f"{name}_updates_per_s"] = rate
        for name in names:
            out[f"ratio_{name}"] = out["dqn_updates_per_s"] / out[f"pvn_{name}_updates_per_s"]
    if "rnd_cached" in cases_wanted:
        _amortised(out, batch, timed)
    return out


def _amortised(out: dict, batch: int, timed: bool) -> None:
    """Cost per update with the score cache, amortised: the cached update plus the one-off scoring of each stored
    transition spread over the times it is sampled, ``score_per_transition * batch / samples_per_transition``,
    over one DQN update. In FLOPs and, if timed, in time (a scoring call scores ``batch`` transitions)."""
    for padding in ("same", "valid"):
        out[f"score_{padding}_gflops_per_transition"] = out[f"score_{padding}_gflops"] / batch
        if timed:
            out[f"score_{padding}_s_per_transition"] = 1.0 / (out[f"score_{padding}_updates_per_s"] * batch)
    for label, per_transition in SAMPLING.items():
        for padding in ("same", "valid"):
            flops = (out["pvn_rnd_cached_gflops"] + out[f"score_{padding}_gflops"] / per_transition)
            out[f"amortised_flops_ratio_{padding}|{label}"] = flops / out["dqn_gflops"]
            if timed:
                secs = 1.0 / out["pvn_rnd_cached_updates_per_s"] + 1.0 / (out[f"score_{padding}_updates_per_s"]
                                                                           * per_transition)
                out[f"amortised_ratio_{padding}|{label}"] = secs * out["dqn_updates_per_s"]


CASE_LABELS = {"td_only": "TD step alone (rewards given)", "hash": "hash indicators",
               "rnd": "rnd, 10 nets/100 tasks (reference structure; default batching)",
               "rnd_grouped": "rnd, same, nets as grouped convs (vmap)",
               "rnd_same_padding": "rnd, same, SAME padding (the reference's conv default)",
               "rnd_one_net": "rnd, ONE net for all tasks (not the reference)",
               "rnd_cached": "rnd, score cache: the update alone (cached scores given)"}


def cost_table(r: dict) -> str:
    """PVN update cost / one DQN update: the compiler's FLOP ratio and the measured-time ratio, side by side."""
    timed = "dqn_updates_per_s" in r
    lines = [f"PVN update ({r['tasks']} tasks, batch {r['batch']}, {r['encoder']} x{r['encoder_width']}) cost / one "
             f"DQN update, target <= 1.3x", "| case | FLOPs ratio | time ratio |", "|---|---|---|"]
    for name, label in CASE_LABELS.items():
        if f"flops_ratio_{name}" in r:
            t = f"{r[f'ratio_{name}']:.2f}x" if timed else "-"
            lines.append(f"| {label} | {r[f'flops_ratio_{name}']:.2f}x | {t} |")
    if "pvn_rnd_cached_gflops" in r:
        for padding, label in (("same", "SAME padding (the reference)"), ("valid", "VALID padding")):
            t = (f", {r[f'score_{padding}_s_per_transition'] * 1e3:.2f} ms wall" if timed else "")
            lines.append(f"| one-off scoring per stored transition, 10 nets, {label} | "
                         f"{r[f'score_{padding}_gflops_per_transition'] * 1e3:.1f} MFLOP "
                         f"({r[f'score_{padding}_gflops'] / r['dqn_gflops']:.2f}x a DQN update's cost per "
                         f"sample){t} | - |")
        for label, per_transition in SAMPLING.items():
            for padding in ("same", "valid"):
                t = f"{r[f'amortised_ratio_{padding}|{label}']:.2f}x" if timed else "-"
                lines.append(f"| rnd, score cache amortised, {padding.upper()}, {label}: {per_transition:.2f} "
                             f"samples/transition | {r[f'amortised_flops_ratio_{padding}|{label}']:.2f}x | {t} |")
    return "\n".join(lines)


def reproduce(run_dir: str | None, overrides: list[str]) -> dict:
    if run_dir is None:
        from omnitask.config import load_config
        from omnitask.runner import train
        cfg = load_config(ROOT / "configs" / "pvn" / "minatar_breakout_cpu.yaml",
                          ["run.progress=false", "run.name=pvn_cpu_reproduction"] + overrides)
        run_dir = str(Path(cfg.run.out_dir) / cfg.run.name)
        train(cfg, Path(run_dir))
    final = json.loads((Path(run_dir) / "final_eval.json").read_text())
    rows = {"PVN + linear Q (frozen)": final.get("return_mean/pvn_linear"),
            "random encoder + linear Q (frozen)": final.get("return_mean/random_linear"),
            "DQN end-to-end (same architecture)": final.get("return_mean/dqn")}
    print(f"| learner | final eval return @ {final['env_steps']:,} env steps |\n|---|---|")
    for name, value in rows.items():
        if value is not None:
            print(f"| {name} | {value:.2f} |")
    fr = Path(run_dir) / "firing_rates.json"
    if fr.exists():
        f = json.loads(fr.read_text())
        print(f"indicator firing rate: mean {f['mean']:.3f} (min {f['min']:.3f}, max {f['max']:.3f}), "
              f"target {f['target']}")
    print(f"plot: {Path(run_dir) / 'pvn_comparison.png'}")
    return final


# The collector: the DQN baseline (agents.dqn, unchanged) with data-efficient settings for a CPU budget of ~20k env
# steps (Dopamine/Nature DQN: replay 1M, learning starts 20k, epsilon over 250k, target period 8k updates,
# lr 6.25e-5 -- nothing would be learned in 20k steps). Deviations and why: replay = the whole run (nothing is
# evicted); learning starts after 1.6k steps and epsilon decays 1 -> 0.05 over the next 4k; one update per vector
# step of 4 envs (= Nature's update period 4); 10-step returns and a target copy every 100 updates (so Q propagates
# over ~100 steps within ~5k updates; data-efficient Rainbow uses 20-step returns); lr 2.5e-4 (Nature's RMSProp
# rate; with Adam eps 1.5e-4 as Dopamine). The same settings as the online learners (configs/pvn/atari_upndown_cpu.yaml).
COLLECTOR_DQN = dict(lr=2.5e-4, adam_eps=1.5e-4, gamma=0.99, n_step=10, buffer_size=32_000, batch_size=32,
                     learning_starts=1_600, train_every=1, gradient_steps=1, target_update_period=100,
                     max_grad_norm=10.0, epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_steps=4_000,
                     eval_epsilon=0.01, torso="cnn", steps_per_train_step=250)
ATARI_GAME = "UpNDown"  # chosen after a pilot of the collector (README): DQN clearly above random play in 8k steps
ATARI_EVAL_FRAMES = 4_000  # eval episodes capped at 4k frames (1k agent steps), as the PVN config's eval_options


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of this process (``resource.RUSAGE_SELF``) or its waited-for children."""
    import resource
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def score_policy(game: str, policy, episodes: int, seed: int) -> dict:
    """Mean/std raw game score of ``policy(obs, key) -> actions`` over ``episodes`` eval-mode games (no reward
    clipping, sticky actions 0.25 as the dqn protocol, capped at ``ATARI_EVAL_FRAMES``)."""
    import envs
    from agents.common.trainer_utils import evaluate_host
    env = envs.make(game, num_envs=min(4, episodes), seed=seed, protocol="dqn", mode="eval",
                    max_episode_frames=ATARI_EVAL_FRAMES)
    try:
        return evaluate_host(env, policy, episodes, jax.random.PRNGKey(seed), ATARI_EVAL_FRAMES // 4)
    finally:
        env.close()


def random_policy_score(game: str, episodes: int, seed: int = 12345) -> dict:
    """The uniform random policy's score under the same evaluation protocol as the learners."""
    import envs
    n = envs.spec(game, protocol="dqn").action.num_actions
    rng = np.random.default_rng(seed)
    return score_policy(game, lambda obs, key: rng.integers(0, n, len(obs)).astype(np.int32), episodes, seed)


def collect_with_dqn(out: Path, game: str, steps: int, seed: int = 0, eval_episodes: int = 8,
                     eval_every: int = 0) -> dict:
    """The DQN baseline (unchanged: agents.dqn) learns ``game``; every transition it steps is recorded.
    Returns (and writes ``out/collector_curve.json``) its training curve, its greedy evaluations (every
    ``eval_every`` env steps, 0: only the final one; not recorded) and CPU time."""
    import envs
    from agents.common.engines import HostEngine
    from agents.dqn.agent import make_dqn_agent
    from agents.dqn.config import DQNConfig
    from agents.dqn.trainer import dqn_host_agent
    from agents.pvn.collect import RecordingEnv
    from agents.pvn.dataset import TransitionWriter

    root = out / "dataset"
    if (root / "meta.json").exists() and (out / "collector_curve.json").exists():
        return json.loads((out / "collector_curve.json").read_text())
    import resource
    import shutil
    shutil.rmtree(root, ignore_errors=True)
    cpu0 = cpu_seconds(resource.RUSAGE_SELF)
    cfg = DQNConfig(**COLLECTOR_DQN)
    options = {"protocol": "dqn", "mode": "train"}
    env = RecordingEnv(envs.make(game, num_envs=4, seed=seed, **options), TransitionWriter(str(root), 5_000))
    agent = make_dqn_agent(cfg, env.spec, env.num_envs)
    engine = HostEngine(env, dqn_host_agent(agent, cfg), seed, None, ATARI_EVAL_FRAMES // 4)
    state = engine.init(jax.random.PRNGKey(seed))
    curve, evals, t0, done = [], [], time.perf_counter(), 0
    while done < steps:
        state, metrics, n = engine.train_step(state)
        done += n
        if eval_every and done < steps and done // eval_every > (done - n) // eval_every:
            evals.append({"env_steps": done, **score_policy(game, engine.policy(state), eval_episodes, seed + 1)})
            print(f"collector eval at {done} steps: {evals[-1]['return_mean']:.1f}", flush=True)
        curve.append({"env_steps": done, "episode_return": metrics.get("train/episode_return", float("nan")),
                      "episodes": metrics.get("train/episodes", 0.0), "epsilon": metrics.get("epsilon"),
                      "wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds(resource.RUSAGE_SELF) - cpu0})
        print(f"collect {done} steps: train return {curve[-1]['episode_return']:.1f} "
              f"({curve[-1]['episodes']:.0f} games) eps {curve[-1]['epsilon']:.2f} cpu {curve[-1]['cpu_s']:.0f}s",
              flush=True)
    policy = engine.policy(state)  # eval_epsilon-greedy
    engine.close()  # closes the recording env: flushes the last chunk
    final = score_policy(game, policy, eval_episodes, seed + 1)
    evals.append({"env_steps": done, **final})
    result = {"game": game, "env_steps": done, "dqn": COLLECTOR_DQN, "curve": curve, "final_eval": final,
              "evals": evals,
              "wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds(resource.RUSAGE_SELF) - cpu0}
    print(f"collector final eval ({eval_episodes} games): {final['return_mean']:.1f} +- {final['return_std']:.1f}",
          flush=True)
    from omnitask.fileio import atomic_write_json
    atomic_write_json(out / "collector_curve.json", result)
    return result


def atari_config(game: str) -> Path:
    path = ROOT / "configs" / "pvn" / f"atari_{game.lower()}_cpu.yaml"
    if not path.exists():
        have = sorted(p.name for p in (ROOT / "configs" / "pvn").glob("atari_*_cpu.yaml"))
        raise SystemExit(f"no config {path.name} for --game {game}; shipped: {', '.join(have)}")
    return path


def atari(out: str, collect_steps: int, seeds: list[int], overrides: list[str], jobs: int = 1,
          game: str = ATARI_GAME, eval_episodes: int = 16, summarize_only: bool = False, collect_eval_every: int = 0,
          random_episodes: int = 32) -> dict:
    """Collector -> per seed (PVN pretraining -> online arms) -> summary.json and the PNG; CPU and wall times.
    ``jobs``: seeds run as that many concurrent processes. ``summarize_only``: launch nothing; summarise what the
    seeds' run directories hold (unfinished runs included, up to their last evaluation)."""
    import resource
    import subprocess
    import sys
    from omnitask.fileio import atomic_write_json
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    config = atari_config(game)
    t0 = time.perf_counter()
    summary_file = out_dir / "summary.json"
    if summarize_only and summary_file.exists() and "random_policy" in json.loads(summary_file.read_text()):
        random_score = json.loads(summary_file.read_text())["random_policy"]
    else:
        random_score = random_policy_score(f"atari/{game}", random_episodes)
    if summarize_only:
        collector = json.loads((out_dir / "collector_curve.json").read_text())
    else:
        collector = collect_with_dqn(out_dir, f"atari/{game}", collect_steps, eval_episodes=eval_episodes,
                                     eval_every=collect_eval_every)
    runs, procs = {}, []
    t1 = time.perf_counter()
    for seed in seeds:  # one process per seed: a crash loses one seed only
        run_dir = out_dir / f"seed{seed}"
        if not summarize_only and not (run_dir / "final_eval.json").exists():
            while sum(p.poll() is None for p in procs) >= jobs:  # at most ``jobs`` seeds at once
                time.sleep(5)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "omnitask.cli", "train", str(config), "--set", f"seed={seed}",
                 "--set", f"pvn.data.path={out_dir / 'dataset'}", "--set", f"run.out_dir={out_dir}",
                 "--set", f"run.name=seed{seed}", "--set", "run.progress=false",
                 "--set", f"run.eval_episodes={eval_episodes}",
                 *[a for o in overrides for a in ("--set", o)]], cwd=ROOT))
    for p in procs:
        p.wait()
    for seed in seeds:
        done = (out_dir / f"seed{seed}" / "final_eval.json").exists()
        if done or (summarize_only and (out_dir / f"seed{seed}" / "metrics.jsonl").exists()):
            runs[seed] = out_dir / f"seed{seed}"
    cost = {"collector_cpu_s": collector.get("cpu_s"), "collector_wall_s": collector.get("wall_s"),
            "seeds_cpu_s": cpu_seconds(resource.RUSAGE_CHILDREN) if procs else None,
            "seeds_wall_s": time.perf_counter() - t1 if procs else None, "total_wall_s": time.perf_counter() - t0,
            "this_process_cpu_s": cpu_seconds(resource.RUSAGE_SELF)}
    summary = summarize_atari(out_dir, collector, runs, random_score)
    if summarize_only and summary_file.exists():  # keep the full run's measured cost
        cost = json.loads(summary_file.read_text()).get("cost", cost)
    summary["cost"] = cost
    atomic_write_json(summary_file, summary)
    print(json.dumps({"final": summary["final"], "comparison": summary["comparison"], "random_policy": random_score["return_mean"],
                      "collector_final": collector.get("final_eval"), "firing_rates": summary["firing_rates"],
                      "cost": cost}, indent=1))
    return summary


def compare_learners(final: dict, random_score: dict | None) -> dict:
    """The pre-registered comparison (configs/pvn/atari_upndown_cpu.yaml): a learner *learns* when its final mean
    over seeds exceeds the random policy's mean by more than 2 standard errors, ``z = (mean - random) /
    sqrt(SD_seeds^2 / n_seeds + SD_random^2 / n_random_games) > 2``; PVN-linear vs random-linear (and vs DQN) as
    per-seed paired differences of the final evaluation means; PVN is better if their mean exceeds 2 SE (round 2)."""
    out: dict = {"learners": {}, "paired": {}}
    for name, f in final.items():
        per_seed = np.asarray(f["per_seed"], float)
        per_seed = per_seed[np.isfinite(per_seed)]
        n = len(per_seed)
        sd = float(np.std(per_seed, ddof=1)) if n > 1 else float("nan")
        row = {"n_seeds": n, "mean": float(np.mean(per_seed)) if n else float("nan"), "sd_seeds": sd,
               "se": sd / np.sqrt(n) if n > 1 else float("nan")}
        if random_score and n > 1:
            se_random = random_score["return_std"] / np.sqrt(random_score["episodes"])
            row["z_vs_random"] = (row["mean"] - random_score["return_mean"]) / float(np.hypot(row["se"], se_random))
            row["learns"] = bool(row["z_vs_random"] > 2)
        out["learners"][name] = row
    for other in ("random_linear", "dqn"):
        if "pvn_linear" in final and other in final:
            d = np.asarray(final["pvn_linear"]["per_seed"], float) - np.asarray(final[other]["per_seed"], float)
            d = d[np.isfinite(d)]
            sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
            row = {"per_seed": d.tolist(), "mean": float(np.mean(d)) if len(d) else float("nan"), "sd": sd,
                   "pvn_wins": int(np.sum(d > 0)), "n": int(len(d))}
            if len(d) > 1:  # round 2's rule: PVN's edge is shown if the mean paired difference exceeds 2 SE
                row["se"] = sd / float(np.sqrt(len(d)))
                row["pvn_better_by_2se"] = bool(row["mean"] > 2 * row["se"])
            out["paired"][f"pvn_linear-{other}"] = row
    return out


def summarize_atari(out_dir: Path, collector: dict, runs: dict, random_score: dict | None = None) -> dict:
    """Per-learner eval curves over seeds (mean and per seed) and the PNG: collector curve + online comparison."""
    from omnitask.metrics_log import read_metrics
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from agents.pvn.trainer import LABELS

    curves = {name: {} for name in LABELS}
    for seed, run_dir in runs.items():
        rows = [r for r in read_metrics(run_dir) if r.get("split") == "eval"]
        final_file = Path(run_dir) / "final_eval.json"
        if final_file.exists():  # the run's final evaluation (also when run.eval_every=0)
            rows.append(json.loads(final_file.read_text()))
        for r in rows:
            for name in LABELS:
                if f"return_mean/{name}" in r:
                    curves[name].setdefault(int(r["env_steps"]), {})[seed] = r[f"return_mean/{name}"]
    final = {}
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    pts = [(c["env_steps"], c["episode_return"]) for c in collector["curve"] if c["episode_return"] == c["episode_return"]]
    if pts:
        ax0.plot(*zip(*pts), ".-", label="training games (clipped-reward learner, raw score)")
    evals = collector.get("evals") or ([{"env_steps": collector["env_steps"], **collector["final_eval"]}]
                                       if "final_eval" in collector else [])
    if evals:  # error bars: standard error over the evaluation's games
        ax0.errorbar([e["env_steps"] for e in evals], [e["return_mean"] for e in evals],
                     yerr=[e["return_std"] / np.sqrt(e["episodes"]) for e in evals], fmt="s-", color="k",
                     label="greedy evaluation (eps 0.01) +- SE")
    if random_score:
        for ax in (ax0, ax1):
            ax.axhline(random_score["return_mean"], color="grey", ls="--", lw=1, label="random policy")
    ax0.set_title(f"collector: DQN baseline on {collector['game']} (recorded = PVN's dataset)", fontsize=9)
    ax0.set_xlabel("env steps (agent steps, 4 frames each)")
    ax0.set_ylabel("game score")
    ax0.legend(fontsize=7)
    for name, by_step in curves.items():
        if not by_step:
            continue
        steps = sorted(by_step)
        per_seed = [[by_step[s].get(seed, np.nan) for seed in runs] for s in steps]
        mean = [float(np.nanmean(v)) for v in per_seed]
        ax1.plot(steps, mean, "o-", label=LABELS[name])
        for k, seed in enumerate(runs):
            ax1.plot(steps, [v[k] for v in per_seed], ":", alpha=0.35, color=ax1.lines[-1].get_color())
        last = per_seed[-1]
        final[name] = {"env_steps": steps[-1], "mean": float(np.nanmean(last)),
                       "std_over_seeds": float(np.nanstd(last)), "min": float(np.nanmin(last)), "max": float(np.nanmax(last)), "per_seed": last}
    ax1.set_title(f"online, equal budgets, {len(runs)} seeds (dotted: per seed)", fontsize=9)
    ax1.set_xlabel("online env steps per learner")
    ax1.set_ylabel("evaluation game score")
    ax1.legend(fontsize=7)
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "pvn_atari.png", dpi=110)
    plt.close(fig)
    fire = {seed: json.loads((d / "firing_rates.json").read_text()) for seed, d in runs.items()
            if (d / "firing_rates.json").exists()}
    return {"final": final, "comparison": compare_learners(final, random_score), "curves": {n: {str(k): v for k, v in c.items()} for n, c in curves.items()},
            "firing_rates": {s: {k: f[k] for k in ("target", "mean", "min", "max")} for s, f in fire.items()},
            "random_policy": random_score,
            "collector": {k: collector[k] for k in ("game", "env_steps", "wall_s", "cpu_s", "final_eval")
                          if k in collector}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--encoder", default="nature", choices=["nature", "impala", "minatar"])
    sp.add_argument("--batch", type=int, default=32)
    sp.add_argument("--tasks", type=int, default=100)
    sp.add_argument("--repeats", type=int, default=10, help="updates per timing")
    sp.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    sp.add_argument("--tasks-per-net", type=int, default=10, help="rnd family: indicator outputs per random net")
    sp.add_argument("--width", type=int, default=1, help="encoder width multiplier (the paper: IMPALA x8)")
    sp.add_argument("--flops-only", action="store_true", help="only the compiler's FLOP counts (no timing)")
    sp.add_argument("--cases", nargs="+", default=list(ALL_CASES), choices=ALL_CASES,
                    help="PVN cases to build and time (DQN is always measured)")
    rp = sub.add_parser("reproduce")
    rp.add_argument("--run-dir", default=None)
    rp.add_argument("--set", action="append", default=[])
    at = sub.add_parser("atari")
    at.add_argument("--game", default=ATARI_GAME, help="configs/pvn/atari_<game>_cpu.yaml must exist")
    at.add_argument("--out", default=None, help="default runs/pvn_atari_<game>")
    at.add_argument("--collect-steps", type=int, default=20_000)
    at.add_argument("--eval-episodes", type=int, default=16, help="games per evaluation (each learner, each seed)")
    at.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    at.add_argument("--set", action="append", default=[])
    at.add_argument("--jobs", type=int, default=1, help="seeds run as this many concurrent processes")
    at.add_argument("--collect-eval-every", type=int, default=5_000,
                    help="greedy evaluation of the collector every N env steps (0: final only)")
    at.add_argument("--random-episodes", type=int, default=32, help="games of the uniform random policy")
    at.add_argument("--summarize-only", action="store_true", help="launch nothing; summarise the run directories")
    args = ap.parse_args(argv)
    if args.cmd == "speed":
        r = speed(args.encoder, args.batch, args.tasks, args.repeats, args.tasks_per_net, args.rounds, args.width,
                  args.flops_only, tuple(args.cases))
        print(json.dumps(r, indent=1))
        print(cost_table(r))
    elif args.cmd == "atari":
        if args.jobs < 1:
            raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
        atari(args.out or f"runs/pvn_atari_{args.game.lower()}", args.collect_steps, args.seeds, args.set,
              args.jobs, args.game, args.eval_episodes, args.summarize_only, args.collect_eval_every,
              args.random_episodes)
    else:
        reproduce(args.run_dir, args.set)


if __name__ == "__main__":
    main()
