"""PVN benchmarks.

  python benchmarks/bench_pvn.py speed [--encoder nature|impala|minatar] [--batch 32] [--tasks 100]
      Pretraining updates/s with ``--tasks`` auxiliary tasks vs a single-head double-DQN update
      (``agents.dqn.learner.make_dqn_update``) with the same encoder and batch. Target: PVN <= 1.3x a DQN update.
      Three PVN numbers: the TD step alone (indicator rewards given), with the hash family's indicator
      computation, and with the rnd family's frozen random nets + quantile step.
  python benchmarks/bench_pvn.py reproduce [--run-dir DIR] [--set key=value ...]
      The CPU-sized reproduction (configs/pvn/minatar_breakout_cpu.yaml): trains it (unless --run-dir points at a
      finished run) and prints final returns of PVN-linear, random-linear and end-to-end DQN at equal budgets.
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


def speed(encoder: str, batch: int, tasks: int, repeats: int, tasks_per_net: int = 10, rounds: int = 5) -> dict:
    from agents.common.replay import NStepBatch
    from agents.dqn.config import DQNConfig
    from agents.dqn.learner import DQNTrainState, make_dqn_update, make_optimizer
    from agents.pvn.indicators import IndicatorConfig
    from agents.pvn.networks import Encoder, EncoderConfig, LinearQ
    from agents.pvn.pretrain import PretrainConfig, make_pretrainer

    shape = (10, 10, 4) if encoder == "minatar" else (84, 84, 4)
    enc = EncoderConfig(arch=encoder, width=1, feature_dim=128 if encoder == "minatar" else 512,
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
    cases["pvn_td_only"] = (jax.jit(td_update), (p_td, p_td, td_opt.init(p_td)), pvn_batch)
    for family in ("hash", "rnd"):
        net = EncoderConfig(arch="nature" if encoder != "minatar" else "minatar", width=1,
                            feature_dim=512 if encoder != "minatar" else 64, padding="VALID",
                            pixel_scale=enc.pixel_scale)
        cfg = PretrainConfig(num_tasks=tasks, encoder=enc, batch_size=batch, warmup_steps=0,
                             indicators=IndicatorConfig(family=family, net=net, tasks_per_net=tasks_per_net))
        pre = make_pretrainer(cfg, shape, num_actions)
        cases[f"pvn_{family}"] = (jax.jit(pre.update), pre.init(jax.random.PRNGKey(2)), pvn_batch)
    for name, rate in _interleaved(cases, repeats, rounds).items():
        out[f"{name}_updates_per_s"] = rate
    out["ratio_td_only"] = out["dqn_updates_per_s"] / out["pvn_td_only_updates_per_s"]
    out["ratio_hash"] = out["dqn_updates_per_s"] / out["pvn_hash_updates_per_s"]
    out["ratio_rnd"] = out["dqn_updates_per_s"] / out["pvn_rnd_updates_per_s"]
    return out


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
    rp = sub.add_parser("reproduce")
    rp.add_argument("--run-dir", default=None)
    rp.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    if args.cmd == "speed":
        r = speed(args.encoder, args.batch, args.tasks, args.repeats, args.tasks_per_net, args.rounds)
        print(json.dumps(r, indent=1))
        print(f"PVN ({args.tasks} tasks) cost / single-head DQN update cost: TD step {r['ratio_td_only']:.2f}x, "
              f"with hash indicators {r['ratio_hash']:.2f}x, with rnd indicators (random nets + quantile step) "
              f"{r['ratio_rnd']:.2f}x  [target <= 1.3x]")
    else:
        reproduce(args.run_dir, args.set)


if __name__ == "__main__":
    main()
