"""PILOT (diagnostic, not a judged run): can the CPU-Atari world model learn action-conditioning from real frames,
and how fast? Offline: random-policy frames are collected once (cached in ``--data``), then only the learner
trains on them; every ``--every`` updates a fixed set of replay windows is probed.

Usage: python benchmarks/scalezero_atari_pilot.py [--set key=value ...] [--updates N] [--every K] [--data FILE]

Probe (windows with a full ``context_steps`` context, roots drawn once with a fixed seed):
  err     next-latent error of the taken action's prediction (online encoder's next latent as the truth)
  spread  mean distance of the 9 actions' predicted next latents from their mean
  top1    fraction of windows where the TAKEN action's prediction is the closest to the true next latent
          (chance 1/A): the sharp test that the dynamics use the action
  qrange  one-step Q range over actions (reward + discount * value of the predicted latent)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, without an install

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

CONFIG = "configs/scalezero/cpu_atari_asterix.yaml"


def collect_random(trainer, steps: int, seed: int):
    """``steps`` random actions per env in training mode; rows as the trainer stores them ([E, C] columns)."""
    from agents.scalezero import replay as rp
    c, e = trainer.cfg, trainer.num_envs
    rb = rp.init(e, steps, trainer.spec.observation.shape, np.uint8, trainer.dims.num_actions)
    rng = np.random.default_rng(seed)
    ts = trainer.loop.reset(seed)
    obs = np.asarray(ts.observation)
    episode = np.zeros(e, np.int32)
    uniform = np.full((e, trainer.dims.num_actions), 1.0 / trainer.dims.num_actions, np.float32)
    for _ in range(steps):
        a = rng.integers(0, trainer.dims.num_actions, e).astype(np.int32)
        ts = trainer.loop.step(a)
        r = np.clip(np.asarray(ts.reward, np.float32), -c.reward_clip, c.reward_clip) if c.reward_clip else \
            np.asarray(ts.reward, np.float32)
        term, trunc = np.asarray(ts.terminated), np.asarray(ts.truncated)
        rb = rp.add(rb, obs, a, r, term, trunc, uniform, None, np.zeros(e, np.float32), episode)
        episode = episode + (term | trunc).astype(np.int32)
        obs = np.asarray(ts.observation)
    return rb


def probe(trainer, params, batch):
    from agents.scalezero.transforms import logits_to_value
    from agents.scalezero.world_model import WorldModel
    c, model = trainer.cfg, trainer.model
    app = lambda *a, **k: model.apply({"params": params}, *a, **k)
    s = c.context_steps
    obs, act = batch
    z = app(obs, method=WorldModel.encode)
    n = z.shape[0]
    task = jnp.zeros((n,), jnp.int32)
    cache, _, _ = app(z[:, :s], act[:, :s], jnp.ones((n, s), bool), task, jnp.int32(0), method=WorldModel.prefill)
    preds, qs = [], []
    for a in range(trainer.dims.num_actions):
        r_l, nz, c2 = app(cache, jnp.full((n,), a, jnp.int32), task, jnp.int32(0), method=WorldModel.step_action)
        vl, _, _ = app(c2, nz, task, jnp.int32(0), method=WorldModel.step_latent)
        preds.append(np.asarray(nz))
        qs.append(np.asarray(logits_to_value(r_l, c.support_max))
                  + c.discount * np.asarray(logits_to_value(vl, c.support_max)))
    preds, qs = np.stack(preds, 1), np.stack(qs, 1)  # [n, A, D], [n, A]
    taken = np.asarray(act[:, s - 1])
    true_next = np.asarray(z[:, s])
    errs = np.linalg.norm(preds - true_next[:, None], axis=-1)  # [n, A]
    return {"err": errs[np.arange(n), taken].mean(),
            "spread": np.linalg.norm(preds - preds.mean(1, keepdims=True), axis=-1).mean(),
            "step": np.linalg.norm(true_next - np.asarray(z[:, s - 1]), axis=-1).mean(),
            "top1": float((errs.argmin(1) == taken).mean()), "qrange": float((qs.max(1) - qs.min(1)).mean())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--updates", type=int, default=600)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--steps", type=int, default=1000, help="random steps per env collected (once, cached)")
    p.add_argument("--data", type=Path, default=Path("/tmp/sz_pilot_asterix.npz"))
    a = p.parse_args(argv)
    from agents.scalezero import ScaleZeroTrainer
    from agents.scalezero import replay as rp
    from omnitask.config import load_config
    cfg = load_config(CONFIG, a.set)
    tr = ScaleZeroTrainer(cfg, None)
    st = tr.init(jax.random.PRNGKey(0))
    t0 = time.time()
    if a.data.exists():
        rb = rp.ReplayState(**dict(np.load(a.data)))
    else:
        rb = collect_random(tr, a.steps, 123)
        np.savez(a.data, **rb._asdict())
    print(f"data: {rb.obs.shape[:2]} rows, {int(rb.reward.astype(bool).sum())} rewarded, "
          f"{int(rb.terminated.sum())} terminations ({time.time() - t0:.0f} s)", flush=True)
    c = tr.cfg
    s = c.context_steps
    pb, _ = rp.sample(rb, np.random.default_rng(7), np.array([0]), 256, s + 1)
    ok = np.asarray(pb.seg[:, :s + 1] == 0).all(1) & ~np.asarray(pb.terminated[:, :s]).any(1)
    probe_batch = (pb.obs[ok], pb.action[ok])
    rng = np.random.default_rng(0)
    train = st.train
    length = c.unroll_steps + c.td_steps
    t0 = time.time()
    for u in range(a.updates + 1):
        if u % a.every == 0:
            m = probe(tr, train.params, probe_batch)
            print(f"upd {u:5d} ({time.time() - t0:5.0f} s) " + " ".join(f"{k} {v:.3f}" for k, v in m.items())
                  + (f" loss {metrics['loss']:.3f} lat {metrics['loss/latent']:.4f} rew {metrics['loss/reward']:.3f}"
                     if u else "")
                  + (f" inv_acc {metrics['loss/inverse_acc']:.3f}" if u and "loss/inverse_acc" in metrics else ""),
                  flush=True)
        if u == a.updates:
            break
        batch, _ = rp.sample(rb, rng, np.array([0]), c.batch_size, length)
        train, metrics, _ = tr._update(train, batch, jnp.int32(0))
        metrics = jax.device_get(metrics)
    tr.close()


if __name__ == "__main__":
    main()
