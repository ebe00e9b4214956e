"""Data-parallel scaling of every learner over ``run.mesh`` (omnitask/mesh.py), and 2 processes vs 1.

  python benchmarks/bench_scaling.py [--devices 1,2,4] [--rounds 3]
      CPU: one worker process with max(--devices) forced host devices (XLA_FLAGS) times each learner's jitted update
      on meshes of 1, 2, 4 of them, same global batch. Forced host devices share the same CPU cores, so these numbers
      only show the sharding overhead, not a speed-up; on a GPU/TPU host the same code splits the batch over chips.
  python benchmarks/bench_scaling.py --processes
      The 2-process run (jax.distributed on 127.0.0.1, gloo collectives, one CPU device each) vs one process with
      2 forced devices: PPO and DQN updates/s on the same global batch.
  python benchmarks/bench_scaling.py --gpu-check [--cpu-smoke]
      What benchmarks/gpu_check.sh runs: PPO env-steps/s on gymnax CartPole, DQN Atari-CNN updates/s, ScaleZero
      reference-size search decisions/s and learner samples/s, PVN pretraining updates/s, each on 1 and on all local
      devices, float32 vs bfloat16 (where the learner supports run.precision), as one table. --cpu-smoke: tiny sizes.

Rates are medians over ``--rounds`` interleaved timings (the cases take turns, so load changes hit all of them).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace as NS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------------------------------------- cases
def _ppo_case(dp, precision, size):
    import jax
    import numpy as np

    from agents.ppo.config import PPOConfig
    from agents.ppo.learner import Rollout, make_learner
    from envs.functional import jax_functions
    spec, _ = jax_functions("classic/CartPole-v1")
    t, b = (32, 8) if size == "smoke" else (128, 64)
    cfg = PPOConfig(num_steps=t, num_minibatches=4, num_epochs=4)
    learner = make_learner(cfg, spec, b, 1000, precision)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(t, b, 4)).astype(np.float32)
    batch = Rollout(obs, rng.integers(0, 2, (t, b)).astype(np.int32), np.full((t, b), -0.69, np.float32),
                    np.zeros((t, b), np.float32), np.ones((t, b), np.float32), np.zeros((t, b), bool),
                    np.zeros((t, b), bool), obs)
    state = dp.put(learner.init(jax.random.PRNGKey(0)))
    batch = dp.put(batch, 1)  # env columns over the mesh, as the JAX-native engine keeps them
    return dp.jit(learner.update, out_axes=None), state, (batch,), 1, "updates/s"


def _dqn_setup(dp, size):
    """Spec, config and env count of the DQN cases."""
    from agents.dqn.config import DQNConfig
    from envs.spec import ArraySpec, DiscreteActionSpec, EnvSpec
    if size == "smoke":
        from envs.functional import jax_functions
        spec, _ = jax_functions("classic/CartPole-v1")
        return spec, DQNConfig(batch_size=32, buffer_size=4096, hidden_sizes=[64, 64]), 8
    # Atari: Nature CNN on [84, 84, 4] uint8 frames, batch 32 per device
    spec = EnvSpec("atari/bench", ArraySpec((84, 84, 4), "uint8"), DiscreteActionSpec(6))
    return spec, DQNConfig(batch_size=32 * dp.size, buffer_size=64 * 1024, torso="cnn"), 64


def _dqn_case(dp, precision, size):
    import jax

    from agents.dqn.agent import make_dqn_agent
    from agents.dqn.trainer import STATE_BATCH_AXES
    spec, cfg, num_envs = _dqn_setup(dp, size)
    agent = make_dqn_agent(cfg, spec, num_envs, precision=precision)
    state = dp.put(agent.init(jax.random.PRNGKey(0)), STATE_BATCH_AXES)
    state = state._replace(replay=state.replay._replace(size=state.replay.size + 64))  # sample from 64 rows
    learn = dp.jit(agent.learn_on, out_axes=(STATE_BATCH_AXES, None), donate_argnums=0)
    return learn, state, (jax.random.PRNGKey(1),), cfg.gradient_steps, "updates/s"


def _dqn_host_replay_case(dp, precision, size):
    """``_dqn_case`` under ``run.replay: host``, on the trainer's own code path (``make_dqn_agent(replay="host")``,
    its ``learn_on`` as the host loop calls it): a numpy ring buffer, minibatch indices drawn as the device replay
    draws them, gathered on the host and copied to the device for every update."""
    import jax
    import numpy as np

    from agents.dqn.agent import make_dqn_agent
    spec, cfg, num_envs = _dqn_setup(dp, size)
    agent = make_dqn_agent(cfg, spec, num_envs, precision=precision, replay="host")
    state = agent.init(jax.random.PRNGKey(0))  # the replay in host memory, the learner on the mesh
    state = state._replace(train_state=dp.put(state.train_state),
                           replay=state.replay._replace(size=np.asarray(64, np.int32)))  # sample from 64 rows

    def learn(state, key):
        with dp.active():  # as HostEngine.train_step: the update's shard_batch sees the mesh
            return agent.learn_on(state, key)

    return learn, state, (jax.random.PRNGKey(1),), cfg.gradient_steps, "updates/s"


def _pvn_case(dp, precision, size):
    import jax
    import numpy as np

    from agents.pvn.indicators import IndicatorConfig
    from agents.pvn.networks import EncoderConfig
    from agents.pvn.pretrain import PretrainConfig, make_pretrainer
    if size == "smoke":
        small = EncoderConfig(arch="minatar", width=1, feature_dim=32, padding="VALID", pixel_scale=1.0)
        cfg, shape = PretrainConfig(num_tasks=10, batch_size=32, warmup_steps=0, encoder=small,
                                    indicators=IndicatorConfig(family="rnd", tasks_per_net=5, net=small)), (10, 10, 4)
    else:
        cfg, shape = PretrainConfig(warmup_steps=0, encoder=EncoderConfig(arch="nature", width=1, feature_dim=512)), \
            (84, 84, 4)
    pre = make_pretrainer(cfg, shape, 6, precision)
    k, b = 4, cfg.batch_size
    rng = np.random.default_rng(0)
    batches = dp.put({"observation": rng.integers(0, 255, (k, b, *shape), dtype=np.uint8),
                      "next_observation": rng.integers(0, 255, (k, b, *shape), dtype=np.uint8),
                      "action": rng.integers(0, 6, (k, b)).astype(np.int32),
                      "terminated": np.zeros((k, b), bool)}, 1)
    state = dp.put(jax.jit(pre.init)(jax.random.PRNGKey(0)))
    return dp.jit(pre.update_many, out_axes=None), state, (batches,), k, "updates/s"


def _scalezero_parts(dp, size, precision="float32"):
    import jax

    from agents.scalezero.config import ScaleZeroConfig
    from agents.scalezero.world_model import ModelDims, WorldModel, init_params
    from omnitask.config import load_config
    from omnitask.precision import compute_dtype
    name = "cartpole" if size == "smoke" else "atari8"
    cfg = load_config(ROOT / "configs" / "scalezero" / f"{name}.yaml").scalezero
    cfg = ScaleZeroConfig(**{f: getattr(cfg, f) for f in ScaleZeroConfig.__dataclass_fields__})
    obs, tasks, actions, roots = ((4,), 1, 2, 8) if size == "smoke" else ((64, 64, 3), 8, 18, 64)
    dims = ModelDims(obs, tasks, actions, 0, max_steps=max(cfg.unroll_steps + cfg.td_steps, cfg.context_steps))
    model = WorldModel(cfg, dims, compute_dtype(precision))  # run.precision: bf16 compute, f32 master weights
    return cfg, dims, model, dp.put(init_params(model, jax.random.PRNGKey(0))), roots


def _scalezero_search_case(dp, precision, size):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from agents.scalezero.search import Planner, make_search_fn
    cfg, dims, model, params, b = _scalezero_parts(dp, size, precision)
    search = make_search_fn(Planner(model, cfg, dims), dp)
    rng = np.random.default_rng(0)
    s = cfg.context_steps
    roots = (rng.integers(0, 255, (b, s, *dims.obs_shape)).astype(np.uint8 if len(dims.obs_shape) == 3 else
                                                                  np.float32),
             rng.integers(0, dims.num_actions, (b, s)).astype(np.int32), np.ones((b, s), bool),
             (np.arange(b) % dims.num_tasks).astype(np.int32))

    def decide(p, key):
        return p, search(p, key, *roots, jnp.int32(0), jnp.float32(1.0), num_simulations=cfg.num_simulations)

    return decide, params, (jax.random.PRNGKey(1),), b, "decisions/s"


def _scalezero_learner_case(dp, precision, size):
    import jax.numpy as jnp
    import numpy as np

    from agents.scalezero import replay as rp
    from agents.scalezero.learner import init_train_state, make_update_fn
    cfg, dims, model, params, _ = _scalezero_parts(dp, size, precision)
    b, length = cfg.batch_size, cfg.unroll_steps + cfg.td_steps
    rng = np.random.default_rng(0)
    dtype = np.uint8 if len(dims.obs_shape) == 3 else np.float32
    a = dims.num_actions
    batch = rp.Batch(obs=rng.integers(0, 255, (b, length, *dims.obs_shape)).astype(dtype),
                     action=rng.integers(0, a, (b, length)).astype(np.int32),
                     reward=rng.normal(size=(b, length)).astype(np.float32), terminated=np.zeros((b, length), bool),
                     truncated=np.zeros((b, length), bool), policy=np.full((b, length, a), 1.0 / a, np.float32),
                     sampled=np.zeros((b, length, 1, 1), np.float32), seg=np.zeros((b, length), np.int32),
                     task=np.arange(dims.num_tasks, dtype=np.int32), weight=np.ones((b,), np.float32))
    update = make_update_fn(model, cfg, dp)
    state = dp.put(init_train_state(params, cfg))
    return (lambda s, bt: update(s, bt, jnp.int32(0))), state, (batch,), b, "samples/s"


def _scalezero_replay_case(where):
    """ScaleZero's whole learn step (``ScaleZeroTrainer.learn``: ``updates_per_iter`` = 4 updates of 48 sequences,
    configs/scalezero/cartpole.yaml) with ``run.replay: host`` (numpy sample + copy per update) or ``device``
    (sampled inside the jitted update), on a replay filled with 512 random decisions: updates/s."""
    def case(dp, precision, size):
        import jax
        import numpy as np

        from agents.scalezero import ScaleZeroTrainer
        from agents.scalezero import device_replay as drp
        from agents.scalezero import replay as rp
        from omnitask.config import load_config
        cfg = load_config(ROOT / "configs" / "scalezero" / "cartpole.yaml",
                          [f"run.replay={where}", f"run.mesh={{data: {dp.size}}}", f"run.precision={precision}"])
        trainer = ScaleZeroTrainer(cfg, None)
        state = trainer.init(jax.random.PRNGKey(0))
        host = jax.device_get(state.replay)
        host = rp.init(host.obs.shape[0], host.obs.shape[1], host.obs.shape[2:], host.obs.dtype,
                       host.policy.shape[-1], env_task=host.env_task)
        rng = np.random.default_rng(0)
        e, a = host.obs.shape[0], host.policy.shape[-1]
        for _ in range(512 // e):
            host = rp.add(host, rng.normal(size=host.obs.shape[:1] + host.obs.shape[2:]).astype(np.float32),
                          rng.integers(0, a, e).astype(np.int32), rng.normal(size=e).astype(np.float32),
                          rng.random(e) < 0.05, np.zeros(e, bool), np.full((e, a), 1.0 / a, np.float32), None,
                          np.zeros(e, np.float32), np.zeros(e, np.int32))
        replay = drp.to_device(host, trainer.dp.put) if where == "device" else host
        state = state._replace(replay=replay)
        learn = lambda s: (trainer.learn(s)[0],)  # noqa: E731
        return learn, state, (), trainer.cfg.updates_per_iter, "updates/s"
    return case


CASES = {"ppo": _ppo_case, "dqn": _dqn_case, "dqn_host_replay": _dqn_host_replay_case, "pvn": _pvn_case, "scalezero_search": _scalezero_search_case,
         "scalezero_learner": _scalezero_learner_case, "scalezero_host_replay": _scalezero_replay_case("host"),
         "scalezero_device_replay": _scalezero_replay_case("device")}

BF16 = {"ppo", "dqn", "pvn", "scalezero"}  # learners that take run.precision (pvn: pretraining)


def _ppo_env_steps_case(dp, precision, size):
    """The whole PPO train step (rollout on gymnax CartPole + update, one jitted scan): env-steps/s."""
    from agents.ppo.config import PPOConfig
    from agents.ppo.trainer import PPOTrainer
    num_envs = 8 if size == "smoke" else 2048
    cfg = NS(seed=0, env=NS(id="classic/CartPole-v1", num_envs=num_envs * dp.size, context={}, options={}),
             run=NS(total_env_steps=10**9, mesh={"data": dp.size}, precision=precision),
             ppo=PPOConfig(num_steps=32, num_minibatches=4, num_epochs=2, updates_per_train_step=2))
    trainer = PPOTrainer(cfg)
    import jax
    state = trainer.init(jax.random.PRNGKey(0))
    step = lambda s: trainer.train_step(s)[0]  # noqa: E731
    return (lambda s: (step(s),)), state, (), trainer.agent.steps_per_chunk, "env-steps/s"


# ------------------------------------------------------------------------------------------------- timing
def _rates(cases: dict, rounds: int, min_s: float) -> dict:
    """Median rate per case over ``rounds`` interleaved timings of >= ``min_s`` seconds each (after a warm-up)."""
    import jax
    states = {}
    for name, (fn, state, args, _, _) in cases.items():
        states[name] = fn(state, *args)[0]  # compile + warm up
        jax.block_until_ready(states[name])
    rates = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (fn, _, args, units, _) in cases.items():
            n, t0 = 0, time.perf_counter()
            while True:
                states[name] = fn(states[name], *args)[0]
                n += 1
                jax.block_until_ready(states[name])
                if time.perf_counter() - t0 >= min_s:
                    break
            rates[name].append(n * units / (time.perf_counter() - t0))
    import numpy as np
    return {name: float(np.median(r)) for name, r in rates.items()}


def worker(args) -> None:
    """Times the cases on the meshes asked for; prints one JSON line per (case, devices, precision)."""
    import jax
    if args.coordinator:
        from omnitask.distributed import initialize
        initialize(NS(distributed={"coordinator": args.coordinator, "num_processes": args.num_processes,
                                   "process_id": args.process_id}))
    from omnitask.mesh import DataParallel, make_mesh
    devices = [int(d) if d != "all" else len(jax.devices()) for d in args.devices.split(",")]
    cases, units = {}, {}
    size = "smoke" if args.cpu_smoke or not args.gpu_check else "reference"
    table = dict(CASES, ppo_env_steps=_ppo_env_steps_case) if args.gpu_check else CASES
    if args.gpu_check:  # the whole PPO train step instead of the update; host replay: CartPole-sized CPU comparison
        table.pop("ppo")
        table.pop("dqn_host_replay")
    names = args.only.split(",") if args.only else list(table)
    for n in devices:
        dp = DataParallel(make_mesh({"data": n}))
        for name in names:
            for precision in (["float32", "bfloat16"] if args.gpu_check and name.split("_")[0] in BF16
                              else ["float32"]):
                key = (name, n, precision)
                try:
                    cases[key] = table[name](dp, precision, size if args.gpu_check else "smoke")
                    units[key] = cases[key][4]
                except Exception as err:  # one failing case must not hide the others' numbers
                    print(json.dumps({"case": name, "devices": n, "precision": precision,
                                      "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}), flush=True)
    rates = _rates(cases, args.rounds, args.min_seconds)
    if jax.process_index() == 0:
        for (name, n, precision), rate in rates.items():
            print(json.dumps({"case": name, "devices": n, "precision": precision, "rate": rate, "unit": units[
                (name, n, precision)], "processes": jax.process_count(), "platform": jax.devices()[0].platform}),
                  flush=True)


def _run_workers(argv_extra: list[str], forced: int | None, processes: int = 1, timeout: int = 1800) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if forced:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={forced}"
    else:
        env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"] + argv_extra
    if processes > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs = [subprocess.Popen(cmd + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(processes),
                                         "--process-id", str(i)], env=env, stdout=subprocess.PIPE, text=True)
                 for i in range(processes)]
    else:
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)]
    out = [p.communicate(timeout=timeout)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed (exit codes {[p.returncode for p in procs]})")
    return [json.loads(line) for text in out for line in text.splitlines() if line.startswith("{")]


def _print_table(rows: list[dict], base_key) -> None:
    base = {base_key(r): r["rate"] for r in rows if "rate" in r and r["devices"] == 1 and r.get("processes", 1) == 1}
    print(f"{'case':20s} {'devices':>7s} {'procs':>5s} {'precision':>9s} {'rate':>14s} {'unit':12s} {'vs 1 dev':>8s}")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:20s} {r['devices']:>7} {'':>5s} {r['precision']:>9s} failed: {r['error']}")
            continue
        ratio = r["rate"] / base[base_key(r)] if base_key(r) in base else float("nan")
        print(f"{r['case']:20s} {r['devices']:>7} {r.get('processes', 1):>5} {r['precision']:>9s} "
              f"{r['rate']:>14,.1f} {r['unit']:12s} {ratio:>8.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", default="1,2,4")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--only", default="", help="comma-separated cases (default: all)")
    p.add_argument("--processes", action="store_true", help="2 processes vs 1 process with 2 devices")
    p.add_argument("--gpu-check", action="store_true")
    p.add_argument("--cpu-smoke", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--coordinator", default="", help=argparse.SUPPRESS)
    p.add_argument("--num-processes", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--process-id", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    common = ["--rounds", str(args.rounds), "--min-seconds", str(args.min_seconds)] + (
        ["--only", args.only] if args.only else [])
    if args.gpu_check:
        forced = 2 if args.cpu_smoke else None  # CPU smoke: 2 forced host devices stand in for "all devices"
        rows = _run_workers(common + ["--gpu-check", "--devices", "1,all"] + (["--cpu-smoke"] if args.cpu_smoke
                                                                                else []), forced)
        _print_table(rows, lambda r: (r["case"], r["precision"]))
        return
    if args.processes:
        only = ["--only", args.only or "ppo,dqn"]
        rows = _run_workers(["--rounds", str(args.rounds), "--min-seconds", str(args.min_seconds), "--devices", "2"]
                            + only, forced=2)
        rows += _run_workers(["--rounds", str(args.rounds), "--min-seconds", str(args.min_seconds), "--devices", "2"]
                             + only, forced=None, processes=2)
        base = {r["case"]: r["rate"] for r in rows if r.get("processes") == 1}
        print(f"{'case':10s} {'1 process x 2 dev':>18s} {'2 processes x 1 dev':>20s} {'ratio':>6s}")
        for r in rows:
            if r.get("processes") == 2:
                print(f"{r['case']:10s} {base[r['case']]:>18,.1f} {r['rate']:>20,.1f} {r['rate'] / base[r['case']]:>6.2f}"
                      f"  {r['unit']}")
        return
    devices = [int(d) for d in args.devices.split(",")]
    rows = _run_workers(common + ["--devices", args.devices], forced=max(devices))
    _print_table(rows, lambda r: (r["case"], r["precision"]))


if __name__ == "__main__":
    main()
