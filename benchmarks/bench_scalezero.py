"""ScaleZero benchmark: search decisions/s and learner sequences/s of the code as it stood before the speed work
(``--baseline`` git revision, loaded in this same process) next to the working tree, plus replay memory, a profile
and the MoE/DPS ablations.

    python benchmarks/bench_scalezero.py                    # UniZero reference shape (latent 768) and latent 256
    python benchmarks/bench_scalezero.py --widths 768       # one width only
    python benchmarks/bench_scalezero.py --widths --atari8 cpu ref  # Atari-8 architecture (ref size: GPU)
    python benchmarks/bench_scalezero.py --ablations 6000   # MoE vs dense, DPS on vs off on the CPU multi-task suite
    python benchmarks/bench_scalezero.py --widths --reanalyse 12  # reanalysis cost only (on vs off; default 5 rounds)

Shape (the single-task UniZero reference): ResNet encoder on 64x64 RGB, 2 transformer layers x 8 heads, dense GELU
FFN, 18 actions, context 4 steps, muzero search with 50 simulations on 8 roots; learner 32 sequences x unroll 10
(+ td 5 rows). Baseline and new path are timed alternately in one process (the machine may be loaded: ratios are
the meaningful numbers). The profile splits the new path's time into its parts (encoder, root prefill, one
recurrent step, heads; learner forward vs backward).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE_REV = "b69cf20"  # main when issue 12 was taken up: recompute search, 4D heads, all-experts MoE
REF_SHAPE = dict(encoder="resnet", resnet_channels=64, resnet_blocks=1, latent_norm="simnorm", num_layers=2,
                 num_heads=8, ffn="dense", expert_hidden_ratio=4, search="muzero", num_simulations=50,
                 eval_num_simulations=50, context_steps=4, unroll_steps=10, td_steps=5, batch_size=32)
NUM_ACTIONS, ROOTS, SIMS = 18, 8, 50


def load_baseline(rev: str):
    """Import ``agents/scalezero`` as of git ``rev`` under the package name ``_szbase`` (same process)."""
    root = tempfile.mkdtemp(prefix="szbase")
    pkg = os.path.join(root, "_szbase")
    os.makedirs(pkg)
    names = subprocess.run(["git", "-C", REPO, "ls-tree", "--name-only", rev, "agents/scalezero/"],
                           check=True, capture_output=True, text=True).stdout.split()
    for path in names:
        src = subprocess.run(["git", "-C", REPO, "show", f"{rev}:{path}"], check=True, capture_output=True,
                             text=True).stdout
        with open(os.path.join(pkg, os.path.basename(path)), "w") as f:
            f.write(src.replace("agents.scalezero", "_szbase"))
    sys.path.insert(0, root)
    return lambda mod: importlib.import_module(f"_szbase.{mod}")


def current():
    return lambda mod: importlib.import_module(f"agents.scalezero.{mod}")


def _batch(rp, bsz, length, rng):
    return rp.Batch(obs=rng.integers(0, 255, (bsz, length, 64, 64, 3), dtype=np.uint8),
                    action=rng.integers(0, NUM_ACTIONS, (bsz, length)).astype(np.int32),
                    reward=rng.normal(size=(bsz, length)).astype(np.float32),
                    terminated=np.zeros((bsz, length), bool), truncated=np.zeros((bsz, length), bool),
                    policy=np.full((bsz, length, NUM_ACTIONS), 1 / NUM_ACTIONS, np.float32),
                    sampled=np.zeros((bsz, length, 0, 0), np.float32), seg=np.zeros((bsz, length), np.int32),
                    task=np.zeros(1, np.int32), weight=np.ones(bsz, np.float32))


class Setup:
    """Compiled search and learner update of one code version at one width."""

    def __init__(self, mod, latent: int, head_ratio: int):
        cfg_mod, wm, search, learner, rp = (mod(n) for n in ("config", "world_model", "search", "learner", "replay"))
        self.cfg = c = cfg_mod.ScaleZeroConfig(**REF_SHAPE, latent_dim=latent, head_hidden_ratio=head_ratio)
        self.dims = dims = wm.ModelDims((64, 64, 3), 1, num_actions=NUM_ACTIONS,
                                        max_steps=c.unroll_steps + c.td_steps)
        self.model = wm.WorldModel(c, dims)
        self.params = wm.init_params(self.model, jax.random.PRNGKey(0))
        self.planner = search.Planner(self.model, c, dims)
        self.search = search.make_search_fn(self.planner)
        rng = np.random.default_rng(0)
        s = c.context_steps
        self.obs = jnp.asarray(rng.integers(0, 255, (ROOTS, s, 64, 64, 3), dtype=np.uint8))
        self.act = jnp.asarray(rng.integers(0, NUM_ACTIONS, (ROOTS, s)).astype(np.int32))
        self.valid = jnp.ones((ROOTS, s), bool).at[: ROOTS // 2, 0].set(False)  # some windows at episode start
        self.task = jnp.zeros((ROOTS,), jnp.int32)
        self.batch = _batch(rp, c.batch_size, c.unroll_steps + c.td_steps, rng)
        self.update = learner.make_update_fn(self.model, c)
        self.state = learner.init_train_state(self.params, c)  # the update donates it: search reads state.params
        self.compile_s = {}
        t = time.perf_counter()
        self.search_once(0)
        self.compile_s["search"] = time.perf_counter() - t
        t = time.perf_counter()
        self.learn_once()
        self.compile_s["learner"] = time.perf_counter() - t

    def search_once(self, i):
        out = self.search(self.state.params, jax.random.PRNGKey(i), self.obs, self.act, self.valid, self.task,
                          jnp.int32(0), jnp.float32(1.0), num_simulations=SIMS)
        return jax.block_until_ready(out)

    def learn_once(self):
        self.state, m, _ = self.update(self.state, self.batch, jnp.int32(0))
        jax.block_until_ready(m["loss"])


def _time(fn, repeats):
    best = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        best.append(time.perf_counter() - t)
    return float(np.median(best))


def compare(latent: int, baseline_mod, repeats: int) -> dict:
    old = Setup(baseline_mod, latent, head_ratio=4)
    new = Setup(current(), latent, head_ratio=1)
    res = {"latent_dim": latent, "compile_s": {"baseline": old.compile_s, "new": new.compile_s}}
    # alternate old/new so load changes on a shared machine hit both alike
    t_s = {"baseline": [], "new": []}
    t_l = {"baseline": [], "new": []}
    for r in range(repeats):
        for name, s in (("baseline", old), ("new", new)):
            t_s[name].append(_time(s.search_once, 1))
            t_l[name].append(_time(lambda i, s=s: s.learn_once(), 1))
    for name in ("baseline", "new"):
        res[name] = {"search_decisions_per_s": ROOTS / float(np.median(t_s[name])),
                     "learner_sequences_per_s": old.cfg.batch_size / float(np.median(t_l[name]))}
    res["ratio"] = {k: res["new"][k] / res["baseline"][k] for k in res["new"]}
    res["profile"] = profile(new, repeats)
    return res


def profile(s: Setup, repeats: int) -> dict:
    """Where the new path's time goes (ms, median of ``repeats``), each part jitted on its own."""
    from agents.scalezero.world_model import WorldModel
    p, m = jax.tree_util.tree_map(jnp.copy, s.state.params), s.model
    enc = jax.jit(lambda p, o: m.apply({"params": p}, o, method=WorldModel.encode))
    root = jax.jit(lambda p, k: s.planner.root(p, k, s.obs, s.act, s.valid, s.task, jnp.int32(0)))
    r = root(p, jax.random.PRNGKey(0))
    rec = jax.jit(lambda p, k, a, e: s.planner.recurrent((p, jnp.int32(0)), k, a, e))
    a = jnp.zeros((ROOTS,), jnp.int32)
    parts = {"encode_root_window": lambda i: jax.block_until_ready(enc(p, s.obs)),
             "root_fn (encode + prefill)": lambda i: jax.block_until_ready(root(p, jax.random.PRNGKey(i))),
             "recurrent_fn x1": lambda i: jax.block_until_ready(rec(p, jax.random.PRNGKey(i), a, r.embedding)),
             "whole search": s.search_once}
    out = {k: 1e3 * np.median([_time(f, 1) for _ in range(repeats)]) for k, f in parts.items()}
    out["recurrent_fn x50 (share of search)"] = SIMS * out["recurrent_fn x1"] / out["whole search"]
    # learner: forward loss alone vs the full update (backward + AdamW + EMA)
    from agents.scalezero import learner
    fwd = jax.jit(lambda st, b: learner.loss_fn(st.params, st.target_params, b, jnp.int32(0), s.model, s.cfg)[0])
    obs = s.batch.obs
    tenc = jax.jit(lambda p, o: m.apply({"params": p}, o, method=WorldModel.encode))
    parts = {"learner forward (loss)": lambda i: jax.block_until_ready(fwd(s.state, s.batch)),
             "learner encoder fwd (all rows)": lambda i: jax.block_until_ready(tenc(p, obs)),
             "learner full update": lambda i: s.learn_once()}
    for k, f in parts.items():
        f(0)
        out[k] = 1e3 * np.median([_time(f, 1) for _ in range(repeats)])
    return {k: round(v, 3) for k, v in out.items()}


def _cfg(path: str, **overrides):
    """The ``scalezero:`` section of a config YAML as a ScaleZeroConfig, with field ``overrides``."""
    from agents.scalezero.trainer import as_config
    from omnitask.config import load_config
    return dataclasses.replace(as_config(load_config(os.path.join(REPO, path)).scalezero), **overrides)


REANALYSE_FIELDS = ("reanalyse_fraction", "reanalyse_every", "reanalyse_batch", "reanalyse_partition",
                    "reanalyse_noise")


def reanalyse_cost(config: str, reference: str, rounds: int) -> dict:
    """Collect and learner throughput of ``config`` with the reanalysis settings of ``reference`` (the Atari /
    Meta-World configs: buffer reanalysis every 50 train steps of 160 windows from the oldest 75% of rows, searched
    by the target network with root noise; no per-batch reanalysis) on vs off, in this one process.

    Off: the train step without reanalysis (collect ``collect_steps x num_envs`` env steps by search, then
    ``updates_per_iter`` learner updates). On: the same plus one buffer reanalysis (timed by calling the trainer's
    own ``reanalyse_buffer`` on the live replay) per ``reanalyse_every`` train steps, amortised over them; a
    per-batch ``reanalyse_fraction`` > 0 would be inside the learner's time. Rounds alternate a train step and a
    reanalysis so load changes hit both; medians are reported."""
    from agents.scalezero import ScaleZeroTrainer
    from omnitask.config import load_config
    ref = _cfg(reference)
    settings = {k: getattr(ref, k) for k in REANALYSE_FIELDS}
    every = settings["reanalyse_every"]
    # the timed train steps run without buffer reanalysis (reanalyse_every 0); reanalyse_buffer is timed apart
    sets = [f"scalezero.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]
    cfg = load_config(os.path.join(REPO, config), sets + ["scalezero.reanalyse_every=0"])
    tr = ScaleZeroTrainer(cfg, None)
    c = tr.cfg
    state = tr.init(jax.random.PRNGKey(0))
    while int(state.train.step) == 0:
        state, _, _ = tr.train_step(state)  # fill replay until every task has warmup_transitions
    rng = np.random.default_rng(0)
    slots = np.arange(tr.num_tasks)
    stage = jnp.int32(0)

    def reanalyse(i):
        nonlocal state
        replay, seconds = tr.reanalyse_buffer(state.train.target_params, state.replay, rng, slots, stage,
                                              jax.random.PRNGKey(i))
        state = state._replace(replay=replay)
        return seconds

    reanalyse(0)  # compile at the reanalysis batch
    state, _, _ = tr.train_step(state)
    collect_s, learn_s, re_s = [], [], []
    for r in range(rounds):
        state, m, _ = tr.train_step(state)
        collect_s.append(m["time/collect_s"])
        learn_s.append(m["time/learn_s"])
        re_s.append(reanalyse(r + 1))
    tr.close()
    col, lrn, rea = (float(np.median(x)) for x in (collect_s, learn_s, re_s))
    env_steps = c.collect_steps * tr.num_envs
    seqs = c.updates_per_iter * c.batch_size
    on_step = col + lrn + rea / every
    roots = max(1, c.reanalyse_batch // tr.num_tasks) * tr.num_tasks * c.unroll_steps
    return {"config": config, "reanalysis": settings, "reanalysis_roots": roots,
            "reanalysis_s": rea, "train_step_s": {"off": col + lrn, "on (amortised)": on_step},
            "env_steps_per_s": {"off": env_steps / (col + lrn), "on": env_steps / on_step},
            "learner_sequences_per_s": {"off": seqs / lrn, "on": seqs / (lrn + rea / every)},
            "on_over_off_train_step_time": on_step / (col + lrn)}


def speed_atari8(width: str, repeats: int = 5) -> dict:
    """The Atari-8 architecture (ViT, 4 layers, MoE 8 experts, 8 task heads) of the working tree: ``cpu`` width or
    the reference size (GPU); search 50 simulations x batch 8, learner batch 64 x unroll 10."""
    from agents.scalezero import replay as rp
    from agents.scalezero.learner import init_train_state, make_update_fn
    from agents.scalezero.search import Planner, make_search_fn
    from agents.scalezero.world_model import ModelDims, WorldModel, init_params

    if width == "cpu":
        c = _cfg("configs/scalezero/atari8.yaml", latent_dim=64, num_heads=4, vit_depth=2, vit_heads=4,
                 vit_mlp_dim=128, lora_rank=8)
    else:
        c = _cfg("configs/scalezero/atari8.yaml")
    dims = ModelDims((64, 64, 3), 8, num_actions=18, max_steps=c.unroll_steps + c.td_steps)
    model = WorldModel(c, dims)
    out = {"width": width, "latent_dim": c.latent_dim, "layers": c.num_layers, "experts": c.num_experts}
    shapes = jax.eval_shape(lambda k: init_params(model, k), jax.random.PRNGKey(0))
    out["params"] = int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes)))
    params = init_params(model, jax.random.PRNGKey(0))
    # ---- search: 50 simulations, batch 8 ----
    b, s = 8, c.context_steps
    search = make_search_fn(Planner(model, c, dims))
    obs = jnp.zeros((b, s, 64, 64, 3), jnp.uint8)
    act, valid, task = jnp.zeros((b, s), jnp.int32), jnp.ones((b, s), bool), jnp.arange(b, dtype=jnp.int32) % 8
    call = lambda k: search(params, k, obs, act, valid, task, jnp.int32(0), jnp.float32(1.0), num_simulations=50)
    t = time.perf_counter()
    jax.block_until_ready(call(jax.random.PRNGKey(0)))
    out["search_compile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(repeats):
        jax.block_until_ready(call(jax.random.PRNGKey(i)))
    dt = (time.perf_counter() - t) / repeats
    out["search_decisions_per_s"] = b / dt
    out["search_call_ms"] = dt * 1e3
    # ---- learner: batch 64 x unroll 10 ----
    bsz, length = 64, c.unroll_steps + c.td_steps
    rng = np.random.default_rng(0)
    batch = rp.Batch(obs=rng.integers(0, 255, (bsz, length, 64, 64, 3), dtype=np.uint8),
                     action=rng.integers(0, 18, (bsz, length)).astype(np.int32),
                     reward=rng.normal(size=(bsz, length)).astype(np.float32),
                     terminated=np.zeros((bsz, length), bool), truncated=np.zeros((bsz, length), bool),
                     policy=np.full((bsz, length, 18), 1 / 18, np.float32),
                     sampled=np.zeros((bsz, length, 0, 0), np.float32), seg=np.zeros((bsz, length), np.int32),
                     task=np.arange(8, dtype=np.int32), weight=np.ones(bsz, np.float32))
    update = make_update_fn(model, c)
    state = init_train_state(params, c)
    t = time.perf_counter()
    state, m, _ = update(state, batch, jnp.int32(0))
    jax.block_until_ready(m["loss"])
    out["learner_compile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(repeats):
        state, m, _ = update(state, batch, jnp.int32(0))
    jax.block_until_ready(m["loss"])
    dt = (time.perf_counter() - t) / repeats
    out["learner_samples_per_s"] = bsz / dt
    out["learner_update_ms"] = dt * 1e3
    return out


def replay_memory() -> dict:
    from agents.scalezero import replay as rp
    res = {}
    for name, shape, dtype, pdim in (("atari_64x64x3_uint8_18act", (64, 64, 3), np.uint8, 18),
                                     ("cartpole_4f32_2act", (4,), np.float32, 2)):
        rb = rp.init(8, 1000, shape, dtype, pdim)
        res[name] = {"bytes_per_100k": rp.bytes_per_100k(rb), "GB_per_100k": rp.bytes_per_100k(rb) / 1e9}
    rb = rp.init(8, 1000, (39,), np.float32, 20, action_dim=4, num_sampled=20)
    res["metaworld_39f32_K20"] = {"bytes_per_100k": rp.bytes_per_100k(rb), "GB_per_100k": rp.bytes_per_100k(rb) / 1e9}
    return res


def ablations(env_steps: int) -> dict:
    from agents.scalezero import ScaleZeroTrainer
    from omnitask.config import load_config
    res = {}
    for name in ("cpu_multitask", "cpu_multitask_dense", "cpu_multitask_dps"):
        cfg = load_config(f"configs/scalezero/{name}.yaml")
        tr = ScaleZeroTrainer(cfg, None)
        state = tr.init(jax.random.PRNGKey(cfg.seed))
        done, curve, t0, next_eval = 0, [], time.perf_counter(), env_steps // 6
        while done < env_steps:
            state, metrics, n = tr.train_step(state)
            done += n
            if done >= next_eval or done >= env_steps:
                ev = tr.evaluate(state, 4, jax.random.PRNGKey(done))
                curve.append((done, ev["normalized_mean"], ev["return_mean"]))
                next_eval += env_steps // 6
        final = curve[-1][1]
        reach = next((s for s, v, _ in curve if v >= 0.9 * final), None)
        res[name] = {"final_normalized": final, "final_return": curve[-1][2], "steps_to_90pct_final": reach,
                     "env_steps": done, "active_env_steps": int(state["active_steps"]),
                     "stage": int(state["curriculum"].stage), "solved": int(state["curriculum"].solved.sum()),
                     "curve": curve, "wall_s": time.perf_counter() - t0}
        tr.close()
        print(name, json.dumps(res[name]), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="*", default=[768, 256], help="latent widths to compare")
    ap.add_argument("--baseline", default=BASELINE_REV, help="git revision of the baseline code")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per path (medians are reported)")
    ap.add_argument("--atari8", choices=("cpu", "ref"), nargs="*", default=[],
                    help="also time the Atari-8 architecture at CPU width and/or reference size (GPU)")
    ap.add_argument("--ablations", type=int, default=0, help="env steps per ablation run (0 = skip)")
    ap.add_argument("--reanalyse", type=int, default=5, metavar="ROUNDS",
                    help="time reanalysis on vs off over ROUNDS alternated train steps / reanalyses (0 = skip)")
    ap.add_argument("--reanalyse-config", default="configs/scalezero/cartpole.yaml",
                    help="model / env config for --reanalyse (its reanalysis settings are replaced)")
    ap.add_argument("--reanalyse-reference", default="configs/scalezero/atari8.yaml",
                    help="config whose reanalyse_* settings are timed (the Atari and Meta-World configs share them)")
    args = ap.parse_args()
    print("backend:", jax.default_backend(), jax.devices()[0].device_kind, "| load:", os.getloadavg())
    print("replay memory:", json.dumps(replay_memory()))
    base = load_baseline(args.baseline) if args.widths else None
    for latent in args.widths:
        res = compare(latent, base, args.repeats)
        print(f"latent {latent}:", json.dumps(res), flush=True)
        for k, v in res["ratio"].items():
            print(f"  {k}: baseline {res['baseline'][k]:.2f}  new {res['new'][k]:.2f}  ratio {v:.2f}x")
        for k, v in res["profile"].items():
            print(f"  profile {k}: {v}")
    for width in args.atari8:
        print(f"speed Atari-8 ({width} width):", json.dumps(speed_atari8(width)), flush=True)
    if args.reanalyse:
        res = reanalyse_cost(args.reanalyse_config, args.reanalyse_reference, args.reanalyse)
        print("reanalyse cost:", json.dumps(res), flush=True)
        for k in ("env_steps_per_s", "learner_sequences_per_s"):
            off, on = res[k]["off"], res[k]["on"]
            print(f"  {k}: reanalyse off {off:.1f}  on {on:.1f}  on/off {on / off:.2f}x")
    if args.ablations:
        ablations(args.ablations)


if __name__ == "__main__":
    main()
