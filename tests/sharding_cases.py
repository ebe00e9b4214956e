"""Data parallelism over ``run.mesh`` on 2 forced host devices; run by tests/test_sharding.py in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (the device count is fixed when JAX starts, so these cannot
share the main test process). Every check compares the 2-device result with the 1-device result on the same global
batch: the compiler's all-reduce only reorders float sums, so they agree to float32 rounding."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnitask.config import load_config
from omnitask.mesh import DataParallel, make_mesh
from omnitask.run_dir import new_run_dir
from omnitask.runner import train

pytestmark = pytest.mark.skipif(jax.device_count() < 2, reason="needs XLA_FLAGS=--xla_force_host_platform_"
                                "device_count=2 (run through tests/test_sharding.py)")
MESH2 = "run.mesh={data: 2}"


def _leaves_close(a, b, rtol=2e-4, atol=2e-6):
    for x, y in zip(jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b)), strict=True):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


def _steps(trainer_of, overrides, n):
    """State and metrics after ``n`` train steps of the trainer built from ``overrides``."""
    trainer = trainer_of(overrides)
    state = trainer.init(jax.random.PRNGKey(0))
    for _ in range(n):
        state, metrics, _ = trainer.train_step(state)
    trainer.close()
    return state, metrics


def _trainer(config):
    from omnitask.runner import make_trainer
    return lambda overrides: make_trainer(load_config(config, overrides), None)


PPO = ("configs/ppo/cartpole.yaml", ["env.num_envs=4", "ppo.num_steps=32", "ppo.num_minibatches=2",
                                     "ppo.num_epochs=2", "ppo.updates_per_train_step=2", "ppo.hidden_sizes=[32]"])
DQN = ("configs/dqn/cartpole.yaml", ["env.num_envs=4", "dqn.steps_per_train_step=50", "dqn.learning_starts=100",
                                     "dqn.buffer_size=800", "dqn.batch_size=16", "dqn.hidden_sizes=[32]"])


@pytest.mark.parametrize("config, overrides", [PPO, DQN], ids=["ppo", "dqn"])
def test_updates_on_two_devices_equal_one_device(config, overrides):
    """JAX-native PPO and DQN: rollout + sharded updates (env batch and minibatches split, params replicated)."""
    one, m1 = _steps(_trainer(config), overrides, 2)
    two, m2 = _steps(_trainer(config), overrides + [MESH2], 2)
    assert one.__class__ is two.__class__
    _leaves_close(one, two)
    assert m1.keys() == m2.keys()
    np.testing.assert_allclose([m1[k] for k in sorted(m1) if "per_second" not in k],
                               [m2[k] for k in sorted(m2) if "per_second" not in k], rtol=1e-3, atol=1e-5)
    params = jax.tree.leaves(two)[0]
    assert params.sharding.is_fully_replicated and len(params.sharding.device_set) == 2


def test_pvn_pretraining_update_on_two_devices_equals_one_device():
    from agents.pvn.pretrain import PretrainConfig, make_pretrainer
    from agents.pvn.indicators import IndicatorConfig
    from agents.pvn.networks import EncoderConfig
    small = EncoderConfig(arch="minatar", width=1, feature_dim=16, padding="VALID", pixel_scale=1.0)
    cfg = PretrainConfig(num_tasks=8, encoder=small, batch_size=8, warmup_steps=1,
                         indicators=IndicatorConfig(family="rnd", tasks_per_net=4, net=small))
    pre = make_pretrainer(cfg, (10, 10, 4), 3)
    rng = np.random.default_rng(0)
    batches = {"observation": rng.integers(0, 255, (2, 8, 10, 10, 4), dtype=np.uint8),  # [K, B, ...]
               "next_observation": rng.integers(0, 255, (2, 8, 10, 10, 4), dtype=np.uint8),
               "action": rng.integers(0, 3, (2, 8)).astype(np.int32), "terminated": rng.random((2, 8)) < 0.2}
    dp = DataParallel(make_mesh({"data": 2}))
    state = jax.jit(pre.init)(jax.random.PRNGKey(0))
    one = jax.jit(pre.update_many)(state, batches)
    two = dp.jit(pre.update_many, out_axes=None)(dp.put(state), batches)
    # Pixel-scale inputs (0..255, pixel_scale 1) give Adam second moments ~1e3-1e4 summed in another order over two
    # shards: float32 rounding reaches ~3e-4 relative on single elements.
    _leaves_close(one, two, rtol=1e-3)
    assert float(one[1]["td_active"]) == 0.5  # the second update took a TD step: the check covers the gradient


def _pvn_online_learner():
    from agents.pvn.evaluate import LinearEvalConfig, make_online_learner
    from agents.pvn.env_access import jax_env
    from agents.pvn.networks import EncoderSpec
    ev = LinearEvalConfig(replay_capacity=256, min_replay=16, batch_size=8, n_step=2, update_period=2,
                          iterations_per_call=8, sticky_prob=0.25, eval_max_steps=20)
    spec, fns, _ = jax_env("minatar/Breakout", 4)
    return make_online_learner(ev, EncoderSpec("minatar", 1, 16, "VALID", 1.0), spec, fns,
                               spec.resolve_context(None, 4), 4, fine_tune=False)


def test_pvn_online_update_on_two_devices_equals_one_device():
    """PVN's online learners (the DQN agent with a frozen encoder: feature replay, head-only update), vmapped over 2
    learner seeds: the updates of one learning step (2 minibatches sampled from replay columns split over 2
    devices, params replicated) equal the 1-device updates."""
    from agents.pvn.evaluate import ONLINE_BATCH_AXES
    agent = _pvn_online_learner().agent
    states = jax.jit(jax.vmap(agent.init))(jax.random.split(jax.random.PRNGKey(0), 2))  # [S=2, ...]
    rng = np.random.default_rng(0)
    rp = states.replay  # obs/next_obs [S, R, E, F] frozen-encoder features
    states = states._replace(replay=rp._replace(
        obs=rng.random(rp.obs.shape, np.float32), next_obs=rng.random(rp.obs.shape, np.float32),
        action=rng.integers(0, 3, rp.action.shape).astype(np.int32),
        reward=rng.normal(size=rp.reward.shape).astype(np.float32), terminated=rng.random(rp.reward.shape) < 0.1,
        size=np.full(2, rp.reward.shape[1], np.int32)))
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    one, m1 = jax.jit(jax.vmap(agent.learn_on))(states, keys)
    dp = DataParallel(make_mesh({"data": 2}))
    axes = ONLINE_BATCH_AXES.agent
    two, m2 = dp.jit(jax.vmap(agent.learn_on), out_axes=(axes, None))(dp.put(states, axes), keys)
    assert int(one.train_state.num_updates[0]) == 2
    head = lambda s: s.train_state.params["params"]["Dense_0"]["kernel"]  # noqa: E731
    assert not np.allclose(head(one), head(states))  # the head learned; the encoder is frozen
    _leaves_close(one.train_state.params["params"]["torso"], states.train_state.params["params"]["torso"], 0, 0)
    _leaves_close(one, two)
    _leaves_close(m1, m2)
    assert len(two.replay.obs.sharding.device_set) == 2 and not two.replay.obs.sharding.is_fully_replicated
    assert jax.tree.leaves(two.train_state.params)[0].sharding.is_fully_replicated


def test_pvn_online_train_call_on_two_devices_equals_one_device():
    """The trainer's whole online train call (env steps, feature replay writes, updates; env batch split) and its
    evaluation on 2 devices equal 1 device."""
    from agents.pvn.evaluate import ONLINE_BATCH_AXES
    from agents.pvn.trainer import jit_online
    learner = _pvn_online_learner()
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    init, train, evaluate = jit_online(learner, DataParallel(None))
    state = init(keys)
    one, m1 = train(jax.tree.map(jnp.copy, state))
    dp = DataParallel(make_mesh({"data": 2}))
    _, train2, _ = jit_online(learner, dp)
    two, m2 = train2(dp.put(state, ONLINE_BATCH_AXES))
    assert int(one.agent.train_state.num_updates[0]) == 2 * (8 - 3)  # learning starts at 16 env steps = step 4
    _leaves_close(one, two)
    _leaves_close(m1, m2)
    np.testing.assert_allclose(evaluate(one, keys, 2), evaluate(two, keys, 2), rtol=1e-5)


def scalezero_batch(rng, b: int, length: int):
    """A ScaleZero learner batch of ``b`` rows (2 task slots) of ``length`` steps, 4-d observations, 3 actions."""
    from agents.scalezero import replay as rp
    return rp.Batch(obs=rng.normal(size=(b, length, 4)).astype(np.float32),
                    action=rng.integers(0, 3, (b, length)).astype(np.int32),
                    reward=rng.normal(size=(b, length)).astype(np.float32), terminated=np.zeros((b, length), bool),
                    truncated=np.zeros((b, length), bool),
                    policy=np.tile(np.array([0.7, 0.2, 0.1], np.float32), (b, length, 1)),
                    sampled=np.zeros((b, length, 0, 0), np.float32), seg=np.zeros((b, length), np.int32),
                    task=np.array([0, 1], np.int32), weight=np.ones((b,), np.float32))


def test_scalezero_search_and_update_on_two_devices_equal_one_device():
    """Search roots split over the mesh give the same decisions; an update on batch rows split over the mesh gives
    the same loss and gradient moments (the first Adam step is ~lr*sign(g), so params are compared to 2*lr)."""
    from agents.scalezero.config import ScaleZeroConfig
    from agents.scalezero.learner import init_train_state, make_update_fn
    from agents.scalezero.search import Planner, make_search_fn
    from agents.scalezero.world_model import ModelDims, WorldModel, init_params
    cfg = ScaleZeroConfig(latent_dim=16, num_layers=1, num_heads=2, num_experts=2, mlp_encoder_hidden=16,
                          num_bins=21, support_max=10.0, head_hidden_ratio=1, expert_hidden_ratio=2, unroll_steps=3,
                          td_steps=2, num_simulations=4)
    dims = ModelDims((4,), 2, 3, 0, max_steps=5)
    model = WorldModel(cfg, dims)
    dp = DataParallel(make_mesh({"data": 2}))
    rng = np.random.default_rng(0)
    b, length = 4, cfg.unroll_steps + cfg.td_steps
    params = init_params(model, jax.random.PRNGKey(0))
    roots = (rng.normal(size=(b, cfg.context_steps, 4)).astype(np.float32),
             rng.integers(0, 3, (b, cfg.context_steps)).astype(np.int32), np.ones((b, cfg.context_steps), bool),
             np.array([0, 0, 1, 1], np.int32))
    searches = [make_search_fn(Planner(model, cfg, dims), mesh)(
        p, jax.random.PRNGKey(1), *roots, jnp.int32(0), jnp.float32(1.0), num_simulations=4)
        for mesh, p in ((None, params), (dp, dp.put(params)))]
    np.testing.assert_array_equal(searches[0].action, searches[1].action)
    _leaves_close(searches[0].root_value, searches[1].root_value)
    batch = scalezero_batch(rng, b, length)
    fresh = lambda: init_train_state(jax.tree.map(jnp.copy, params), cfg)  # noqa: E731 (updates donate the state)
    one = make_update_fn(model, cfg)(fresh(), batch, jnp.int32(0))
    two = make_update_fn(model, cfg, dp)(dp.put(fresh()), batch, jnp.int32(0))
    np.testing.assert_allclose(one[1]["loss"], two[1]["loss"], rtol=1e-5)
    np.testing.assert_allclose(one[1]["grad_norm"], two[1]["grad_norm"], rtol=1e-4)
    mu = [jax.tree.leaves(jax.device_get(s.opt_state))[:len(jax.tree.leaves(params))] for s in (one[0], two[0])]
    _leaves_close(mu[0], mu[1], rtol=1e-3, atol=1e-7)
    _leaves_close(one[0].params, two[0].params, rtol=0, atol=2 * cfg.learning_rate)


def _run(tmp_path, name, total, mesh, config=DQN, resume_dir=None):
    raw = config[1] + [f"run.total_env_steps={total}", "run.eval_every=0", "run.eval_episodes=4",
                       "run.checkpoint_every=400", f"run.out_dir={tmp_path}", f"run.name={name}", "run.progress=false",
                       "run.loggers=[jsonl]", f"run.mesh={mesh}"]
    cfg = load_config(config[0], raw)
    if resume_dir is not None:
        return train(cfg, resume_dir, resume=True)
    return train(cfg, new_run_dir(cfg))


def test_short_run_on_two_devices_learns_like_one_device(tmp_path):
    """Same seed and global batch: the logged training curve and the final evaluation agree."""
    runs = [_run(tmp_path, f"ppo{i}", 1536, mesh, config=PPO) for i, mesh in enumerate(["{}", "{data: 2}"])]
    curves = [[json.loads(line) for line in open(r.run_dir / "metrics.jsonl")] for r in runs]
    ret = [[m["train/episode_return"] for m in c if m.get("train/episode_return") is not None] for c in curves]
    assert len(ret[0]) == len(ret[1]) >= 5
    np.testing.assert_allclose(ret[0], ret[1], rtol=0.02)
    assert runs[1].final_eval["return_mean"] == pytest.approx(runs[0].final_eval["return_mean"], rel=0.05)


@pytest.mark.parametrize("first, second", [("{data: 2}", "{}"), ("{}", "{data: 2}")], ids=["2to1", "1to2"])
def test_checkpoint_resumes_on_another_device_count(tmp_path, first, second):
    """A DQN run checkpointed at 400 env steps on one mesh and resumed on the other ends like the run that never
    stopped (the replay, sharded by env column on 2 devices, is restored whole)."""
    straight = _run(tmp_path, "straight", 800, second)
    part = _run(tmp_path, "part", 400, first)
    resumed = _run(tmp_path, "part", 800, second, resume_dir=part.run_dir)
    assert resumed.env_steps == 800
    _leaves_close(straight.state, resumed.state)
    replay = jax.tree.leaves(resumed.state.agent.replay)[0]
    assert len(replay.sharding.device_set) == (2 if second != "{}" else 1)
