"""Short diagnostic run of the CPU Asterix config: train N env steps, then inspect heads, targets and search.

Usage: python benchmarks/scalezero_atari_diag.py N [--set-style overrides, e.g. scalezero.search=muzero]. Prints the
loss terms, value vs n-step target correlation, reward-head fit, stored policy-target entropy against the prior, and
the root Q / visits / policy weights of one search (README, ScaleZero section: diagnosis after v2)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, without an install

import sys, time, json
import jax, jax.numpy as jnp, numpy as np
from omnitask.config import load_config
from agents.scalezero import ScaleZeroTrainer
from agents.scalezero import replay as rp
from agents.scalezero.learner import bootstrap_values, absorbing_rows
from agents.scalezero.losses import n_step_targets
from agents.scalezero.world_model import WorldModel
from agents.scalezero.transforms import logits_to_value

steps = int(sys.argv[1]); over = sys.argv[2:]
cfg = load_config("configs/scalezero/cpu_atari_asterix.yaml", over)
tr = ScaleZeroTrainer(cfg, None)
st = tr.init(jax.random.PRNGKey(0))
n = 0; t0 = time.time(); hist = []
while n < steps:
    st, m, k = tr.train_step(st); n += k
    if "loss" in m:
        hist.append({kk: round(float(v), 4) for kk, v in m.items() if kk.startswith("loss") or kk in ("value_target_mean", "value_pred_mean", "grad_norm")})
    if "train/episode_return" in m: print("env", n, "train game", m["train/episode_return"], flush=True)
print("time", time.time() - t0, "updates", int(st.train.step))
for i in [0, len(hist)//4, len(hist)//2, 3*len(hist)//4, len(hist)-1]:
    print(i, hist[i])
c = tr.cfg; model = tr.model; params = st.train.params
rng = np.random.default_rng(1)
batch, _ = rp.sample(st.replay, rng, np.array([0]), 256, c.unroll_steps + c.td_steps)
batch = batch._replace(obs=tr.model_obs(batch.obs))
app = lambda p, *a, **k: model.apply({"params": p}, *a, **k)
tz = app(st.train.target_params, batch.obs, method=WorldModel.encode)
boot = bootstrap_values(st.train.target_params, tz, batch, 0, model, c)
valid = batch.seg == 0; inr = batch.seg >= 0
vt, ok = n_step_targets(batch.reward, batch.terminated, batch.truncated, valid, inr, boot, c.discount, c.td_steps, c.unroll_steps)
t = c.unroll_steps
z = app(params, batch.obs[:, :t], method=WorldModel.encode)
out = app(params, z, batch.action[:, :t], batch.seg[:, :t], batch.task, 0, 1, method=WorldModel.sequence)
v = np.asarray(logits_to_value(out.value_logits, c.support_max)); r = np.asarray(logits_to_value(out.reward_logits, c.support_max))
vt = np.asarray(vt); msk = np.asarray(valid[:, :t] & ok)
zz = np.asarray(z).reshape(-1, z.shape[-1]); print("encoder latent: per-dim std across states", zz.std(0).mean(), "mean abs", np.abs(zz).mean())
print("value pred vs nstep target corr", np.corrcoef(v[msk], vt[msk])[0, 1], "pred mean/sd", v[msk].mean(), v[msk].std(), "target mean/sd", vt[msk].mean(), vt[msk].std())
rw = np.asarray(batch.reward[:, :t]); mr = np.asarray(valid[:, :t])
print("reward pred on r=1 rows", r[mr & (rw > 0)].mean() if (mr & (rw > 0)).any() else None, "on r=0 rows", r[mr & (rw == 0)].mean(), "frac r>0", (rw[mr] > 0).mean())
term = np.asarray(batch.terminated[:, :t])
print("value pred at rows whose action was terminal", v[mr & term].mean() if (mr & term).any() else None, "n", (mr & term).sum())
# policy targets in replay
size = int(st.replay.size)
pol = np.asarray(st.replay.policy[:, :size]).reshape(-1, st.replay.policy.shape[-1])
ent = -(pol * np.log(np.maximum(pol, 1e-12))).sum(-1)
print("stored policy target entropy mean", ent.mean(), "max log(A)", np.log(pol.shape[-1]), "mean target", pol.mean(0).round(3))
prior = np.asarray(jax.nn.softmax(out.policy[:, 0]))
print("prior mean (online, roots)", prior.mean(0).round(3), "prior entropy", (-(prior*np.log(prior+1e-12)).sum(-1)).mean())
acts = np.asarray(st.replay.action[:, max(0,size-2000):size]).ravel()
print("recent collected action freq", np.bincount(acts, minlength=pol.shape[-1]) / acts.size)
# search at some roots: eval search on replay windows
w_obs = np.asarray(st.actor.obs); w_act = np.asarray(st.actor.act); w_val = np.asarray(st.actor.valid)
task = np.zeros(w_obs.shape[0], np.int32)
from agents.scalezero.search import run_policy
pl = tr.planner
root = pl.root(params, jax.random.PRNGKey(3), tr.model_obs(w_obs), w_act, w_val, task, jnp.int32(0))
po = run_policy(c, (params, jnp.int32(0)), jax.random.PRNGKey(4), root, pl.recurrent, c.eval_num_simulations, 0.0)
tree = po.search_tree; s = tree.summary()
print("root prior", np.asarray(jax.nn.softmax(root.prior_logits)).round(2))
print("root qvalues", np.asarray(s.qvalues).round(3))
print("visits", np.asarray(s.visit_counts))
print("action_weights", np.asarray(po.action_weights).round(2), "chosen", np.asarray(po.action))
# one-step per-action model predictions from the root (reward, value of next latent)
from agents.scalezero.world_model import WorldModel as WM
for a in range(pol.shape[-1]):
    rec, _ = pl.recurrent((params, jnp.int32(0)), jax.random.PRNGKey(5), jnp.full((w_obs.shape[0],), a, jnp.int32), root.embedding)
    print("a", a, "r", np.asarray(rec.reward).round(3), "v", np.asarray(rec.value).round(3))
print("root value", np.asarray(root.value).round(3))
ev = tr.evaluate(st, 8, jax.random.PRNGKey(7)); print("eval", {k: v for k, v in ev.items() if "return" in k})
tr.close()
