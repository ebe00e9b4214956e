"""ScaleZero benchmark: search decisions/s, learner samples/s, replay memory, and the MoE/DPS ablations.

    python benchmarks/bench_scalezero.py                 # speed at CPU width + printed reference-size model
    python benchmarks/bench_scalezero.py --ref           # also time the reference-size Atari-8 model (GPU)
    python benchmarks/bench_scalezero.py --ablations 6000  # MoE vs dense, DPS on vs off on the CPU multi-task suite

Speed: the Atari-8 architecture (ViT encoder, 4 transformer layers, MoE 8 experts, 18 actions, 8 task heads, 64x64
RGB) at a CPU-sized width; search = 50 simulations, batch 8; learner = batch 64 x unroll 10.
Ablations: each config trains for N env steps with an evaluation every N/6; reported are the final normalised
score and the env steps at which the run first reached 90% of it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np


def _cfg(path, **overrides):
    from omnitask.config import load_config
    cfg = load_config(path)
    return dataclasses.replace(cfg.scalezero, **overrides)


def speed(width: str, repeats: int = 5) -> dict:
    from agents.scalezero import replay as rp
    from agents.scalezero.learner import init_train_state, make_update_fn
    from agents.scalezero.search import Planner, make_search_fn
    from agents.scalezero.world_model import ModelDims, WorldModel, count_params, init_params

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
                     "env_steps": done, "active_env_steps": int(state["active_steps"]), "stage": int(state["curriculum"].stage),
                     "solved": int(state["curriculum"].solved.sum()), "curve": curve,
                     "wall_s": time.perf_counter() - t0}
        tr.close()
        print(name, json.dumps(res[name]), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", action="store_true", help="also time the reference-size model")
    ap.add_argument("--ablations", type=int, default=0, help="env steps per ablation run (0 = skip)")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    print("backend:", jax.default_backend(), jax.devices()[0].device_kind)
    print("replay memory:", json.dumps(replay_memory()))
    if not args.skip_speed:
        print("speed (CPU width):", json.dumps(speed("cpu")), flush=True)
    if args.ref:
        print("speed (reference size):", json.dumps(speed("ref")), flush=True)
    else:
        from agents.scalezero.world_model import ModelDims, WorldModel, init_params
        c = _cfg("configs/scalezero/atari8.yaml")
        model = WorldModel(c, ModelDims((64, 64, 3), 8, num_actions=18, max_steps=15))
        shapes = jax.eval_shape(lambda k: init_params(model, k), jax.random.PRNGKey(0))
        print("reference Atari-8 model params:", int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes))))
    if args.ablations:
        ablations(args.ablations)


if __name__ == "__main__":
    main()
