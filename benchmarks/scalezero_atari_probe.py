"""Probe a finished CPU-Atari ScaleZero run (its final checkpoint): does the world model separate actions?

Usage: python benchmarks/scalezero_atari_probe.py RUN_DIR [--actions]. Prints, over replay windows with a full context, the
next-latent error of the taken action, the spread of the predicted next latents over the actions, the true one-step
latent change, and the range of the one-step Q over actions against the SD of the state value (README, ScaleZero)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, without an install

from pathlib import Path
import jax, jax.numpy as jnp, numpy as np
from omnitask.config import load_config
from omnitask.checkpoint import Checkpoints
from agents.scalezero import ScaleZeroTrainer
from agents.scalezero import replay as rp
from agents.scalezero.world_model import WorldModel
from agents.scalezero.transforms import logits_to_value

import sys
args = [a for a in sys.argv[1:] if not a.startswith("--")]
run = Path(args[0] if args else "runs/sz_asterix/asterix-v3-s0")
cfg = load_config(str(run / "config.yaml"))
tr = ScaleZeroTrainer(cfg, None)
tmpl = tr.init(jax.random.PRNGKey(0))
st, meta = Checkpoints(run).restore(tmpl)
print("restored", meta, "replay size", int(st.replay.size), "updates", int(st.train.step))
c, model, params = tr.cfg, tr.model, st.train.params
app = lambda *a, **k: model.apply({"params": params}, *a, **k)
rng = np.random.default_rng(2)
S = c.context_steps
batch, _ = rp.sample(st.replay, rng, np.array([0]), 128, S + 1)
ok = np.asarray(batch.seg[:, :S + 1] == 0).all(1) & ~np.asarray(batch.terminated[:, :S]).any(1)
print("windows with a full context", ok.sum())
obs, act = batch.obs[ok], batch.action[ok]
z = app(obs, method=WorldModel.encode)  # [n, S+1, D]
n = z.shape[0]; task = jnp.zeros((n,), jnp.int32)
cache, v_logits, pol = app(z[:, :S], act[:, :S], jnp.ones((n, S), bool), task, jnp.int32(0), method=WorldModel.prefill)
v0 = np.asarray(logits_to_value(v_logits, c.support_max))
preds, qs = [], []
for a in range(tr.dims.num_actions):
    r_l, nz, c2 = app(cache, jnp.full((n,), a, jnp.int32), task, jnp.int32(0), method=WorldModel.step_action)
    vl, _, _ = app(c2, nz, task, jnp.int32(0), method=WorldModel.step_latent)
    preds.append(np.asarray(nz)); qs.append(np.asarray(logits_to_value(r_l, c.support_max)) + c.discount * np.asarray(logits_to_value(vl, c.support_max)))
preds, qs = np.stack(preds, 1), np.stack(qs, 1)  # [n, A, D], [n, A]
taken = np.asarray(act[:, S - 1])
true_next = np.asarray(z[:, S])
err_taken = np.linalg.norm(preds[np.arange(n), taken] - true_next, axis=-1)
spread = np.linalg.norm(preds - preds.mean(1, keepdims=True), axis=-1).mean(1)
step = np.linalg.norm(np.asarray(z[:, S]) - np.asarray(z[:, S - 1]), axis=-1)
print("next-latent: error of the taken action %.3f, spread over actions %.3f, true one-step latent change %.3f, |z| %.2f"
      % (err_taken.mean(), spread.mean(), step.mean(), np.linalg.norm(true_next, axis=-1).mean()))
print("Q over actions: mean range (max-min) %.4f, state value SD %.3f, mean value %.3f" % ((qs.max(1) - qs.min(1)).mean(), v0.std(), v0.mean()))
# does the encoder see the action's effect at all? latent change after different actions from similar states
print("prior entropy", float(-(jax.nn.softmax(pol) * jax.nn.log_softmax(pol)).sum(-1).mean()))
if "--actions" in sys.argv:  # which actions does the greedy evaluation take?
    counts = np.zeros(tr.dims.num_actions, np.int64)
    search = tr._search_windows

    def counted(*a, **k):
        out = search(*a, **k)
        np.add.at(counts, np.asarray(out.action), 1)
        return out

    tr._search_windows = counted
    r = tr.evaluate(st, 8, jax.random.PRNGKey(5))
    print("greedy eval (8 games, key 5): mean %.1f; action counts %s" % (r["return_mean"], counts.tolist()))
tr.close()
