"""Every ScaleZero config loads through the real config loader and constructs its model (shapes only, no compile);
the sampled-action (continuous) path runs a tiny train_step + evaluation on Pendulum; bad configs are refused."""
import dataclasses
import glob

import jax
import numpy as np
import pytest

from agents.scalezero import ScaleZeroTrainer
from agents.scalezero.config import validate
from agents.scalezero.world_model import ModelDims, WorldModel, init_params
from omnitask.config import ConfigError, build_config, load_config

CONFIGS = sorted(glob.glob("configs/scalezero/*.yaml")) + ["configs/quickstart.yaml"]


def _dims(cfg, sz):
    env = cfg.env
    if env.id == "atari/multitask":
        return ModelDims((64, 64, 3), len(env.options["games"]), num_actions=18, max_steps=15)
    if env.id.startswith("atari/"):
        return ModelDims((64, 64, 3), 1, num_actions=18, max_steps=15)
    if env.id == "minatar/multitask":
        return ModelDims((10, 10, 10), len(env.options["games"]), num_actions=6, max_steps=15)
    if env.id == "metaworld/MT10":
        return ModelDims((39,), 10, action_dim=4, max_steps=15)
    import envs
    spec = envs.make(env.id, num_envs=1).spec
    a = spec.action
    return ModelDims(tuple(spec.observation.shape), max(1, len(sz.context_tasks)),
                     num_actions=getattr(a, "num_actions", 0), action_dim=0 if hasattr(a, "num_actions") else 1,
                     max_steps=sz.unroll_steps + sz.td_steps)


@pytest.mark.parametrize("path", CONFIGS)
def test_config_loads_and_model_constructs(path):
    cfg = load_config(path)
    assert cfg.agent == "scalezero"
    sz = cfg.scalezero
    validate(sz)
    dims = _dims(cfg, sz)
    for name in ("target_returns", "random_returns", "human_returns", "task_names"):
        values = getattr(sz, name)
        assert not values or len(values) == dims.num_tasks, (name, len(values), dims.num_tasks)
    assert sz.batch_size % dims.num_tasks == 0
    shapes = jax.eval_shape(lambda k: init_params(WorldModel(sz, dims), k), jax.random.PRNGKey(0))
    n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
    assert n > 10_000
    if "atari8" in path and sz.ffn == "moe":
        assert 50e6 < n < 2e9, n  # reference-size model


def test_unknown_key_and_bad_value_refused():
    with pytest.raises(ConfigError, match="num_expert"):
        build_config({"agent": "scalezero", "scalezero": {"num_expert": 4}})
    cfg = build_config({"agent": "scalezero", "scalezero": {"ffn": "sparse"}})
    with pytest.raises(ValueError, match="allowed: moe, dense"):
        ScaleZeroTrainer(cfg, None)
    cfg = build_config({"agent": "scalezero", "env": {"num_envs": 4},
                        "scalezero": {"context_tasks": [{"length": 0.5}, {"length": 1.0}, {"length": 2.0}],
                                      "batch_size": 6}})
    with pytest.raises(ValueError, match="multiple of len"):
        ScaleZeroTrainer(cfg, None)


def test_sampled_action_variant_trains_and_evaluates_on_pendulum():
    cfg = load_config("configs/scalezero/pendulum_sampled.yaml", [
        "env.num_envs=4", "scalezero.latent_dim=16", "scalezero.mlp_encoder_hidden=16", "scalezero.num_experts=2",
        "scalezero.num_heads=2", "scalezero.head_hidden_ratio=1", "scalezero.num_sampled_actions=4",
        "scalezero.num_simulations=4", "scalezero.eval_num_simulations=4", "scalezero.unroll_steps=2",
        "scalezero.td_steps=2", "scalezero.batch_size=4", "scalezero.collect_steps=4", "scalezero.updates_per_iter=1",
        "scalezero.warmup_transitions=8", "scalezero.num_bins=21", "scalezero.support_max=20.0",
        "scalezero.max_eval_steps=8", "scalezero.reanalyse_fraction=0.5", "scalezero.prioritized=true"])
    tr = ScaleZeroTrainer(cfg, None)
    state = tr.init(jax.random.PRNGKey(0))
    for _ in range(3):
        state, metrics, n = tr.train_step(state)
    assert n == 16 and np.isfinite(metrics["loss"]) and metrics["loss/policy"] != 0.0
    rb = state["replay"]
    assert rb.action.shape[-1] == 1 and rb.sampled.shape[2:] == (4, 1)
    assert np.abs(rb.action[:, :12]).max() <= 1.0
    np.testing.assert_allclose(rb.policy[:, :12].sum(-1), 1.0, atol=1e-5)  # search policy over the K samples
    # reanalyse: half the sequences get fresh search policies over freshly sampled candidate actions
    from agents.scalezero import replay as rp
    batch, _ = rp.sample(rb, np.random.default_rng(0), np.array([0]), 4, 4)
    new = tr.reanalyse(state["train"].params, batch, jax.numpy.int32(0), jax.random.PRNGKey(5))
    changed = np.any(new.sampled != batch.sampled, axis=(1, 2, 3))
    assert changed.sum() == 2, changed
    np.testing.assert_allclose(new.policy[changed, :2].sum(-1), 1.0, atol=1e-5)
    # evaluation with a step cap (max_eval_steps) reports returns only for finished episodes: 8 steps never finish a
    # 200-step Pendulum episode, so there is no number to report (NaN), not a made-up partial return
    result = tr.evaluate(state, 1, jax.random.PRNGKey(1))
    assert np.isnan(result["return_mean"]) and np.isnan(result["return_mean/default"]), result
    # without the cap the 200-step episodes finish: a finite (negative: Pendulum costs) return per task
    tr.cfg = dataclasses.replace(tr.cfg, max_eval_steps=0)
    result = tr.evaluate(state, 1, jax.random.PRNGKey(1))
    assert np.isfinite(result["return_mean"]) and result["return_mean"] == result["return_mean/default"] < 0, result
    tr.close()
