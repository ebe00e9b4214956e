"""DQN: hand-computed n-step / double-DQN targets, replay sampling, scan-vs-loop equality, host path, learning."""
from __future__ import annotations

import os
from types import SimpleNamespace as NS

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.common.replay import n_step_target, replay_add, replay_init, replay_sample
from agents.dqn import DQNConfig, DQNTrainer, double_q_target, huber, make_jax_dqn
from envs.functional import jax_functions

FULL = os.environ.get("OMNITASK_FULL") == "1"


def experiment(dqn: DQNConfig, total: int, num_envs: int = 4, seed: int = 0, env_id="classic/CartPole-v1"):
    return NS(seed=seed, env=NS(id=env_id, num_envs=num_envs, context={}, options={}),
              run=NS(total_env_steps=total), dqn=dqn)


# ---------------------------------------------------------------------------------------------- pure math
@pytest.mark.parametrize("jit", [False, True])
def test_n_step_target_hand_computed(jit):
    f = jax.jit(n_step_target, static_argnums=3) if jit else n_step_target
    r = jnp.array([1.0, 2.0, 3.0])
    no, yes = jnp.array([False, False, False]), jnp.array([True, False, False])
    # no episode end: 1 + 0.5*2 + 0.25*3, bootstrap gamma^3 from the last step
    ret, disc, last = f(r, no, no, 0.5)
    np.testing.assert_allclose([ret, disc, last], [2.75, 0.125, 2])
    # terminated at k=1: 1 + 0.5*2, no bootstrap
    ret, disc, last = f(r, jnp.array([False, True, False]), no, 0.5)
    np.testing.assert_allclose([ret, disc, last], [2.0, 0.0, 1])
    # truncated at k=0: r_0 then bootstrap from next_obs of step 0 with gamma^1
    ret, disc, last = f(r, no, yes, 0.5)
    np.testing.assert_allclose([ret, disc, last], [1.0, 0.5, 0])


@pytest.mark.parametrize("jit", [False, True])
def test_double_q_target_hand_computed(jit):
    f = jax.jit(double_q_target, static_argnums=4) if jit else double_q_target
    q_online, q_target = jnp.array([1.0, 3.0, 2.0]), jnp.array([10.0, 20.0, 30.0])
    assert float(f(q_online, q_target, jnp.float32(1.0), jnp.float32(0.5), True)) == pytest.approx(11.0)
    assert float(f(q_online, q_target, jnp.float32(1.0), jnp.float32(0.5), False)) == pytest.approx(16.0)
    assert float(f(q_online, q_target, jnp.float32(1.0), jnp.float32(0.0), True)) == pytest.approx(1.0)


def test_huber():
    np.testing.assert_allclose(huber(jnp.array([-3.0, -0.5, 0.0, 2.0]), 1.0), [2.5, 0.125, 0.0, 1.5])
    np.testing.assert_allclose(huber(jnp.array([-3.0, 2.0]), 0.0), [4.5, 2.0])  # delta 0: plain L2


def test_replay_sample_matches_python_reference_with_wraparound():
    """Fill a 5-row x 2-env ring past capacity, then check every sampled n-step transition by hand."""
    rows, envs_, n, gamma = 5, 2, 2, 0.9
    state = replay_init(rows, envs_, (1,), jnp.float32)
    rng = np.random.default_rng(0)
    log = []  # (obs, action, reward, term, trunc, next_obs) per vector step
    for t in range(8):  # 8 > 5 rows: the oldest 3 steps are overwritten
        obs = np.array([[t], [100 + t]], np.float32)
        step = (obs, np.array([t % 2, 1], np.int32), rng.normal(size=2).astype(np.float32),
                np.array([t == 4, False]), np.array([False, t == 6]), obs + 0.5)
        log.append(step)
        state = replay_add(state, *map(jnp.asarray, step))
    assert int(state.size) == rows and int(state.ptr) == 8 % rows
    batch = replay_sample(state, jax.random.PRNGKey(1), 64, n, gamma)
    valid = range(3, 8 - n + 1)  # still stored and followed by n-1 stored steps
    for i in range(64):
        b = 0 if batch.obs[i, 0] < 100 else 1
        t = int(batch.obs[i, 0]) - 100 * b
        assert t in valid
        ret, disc, boot = 0.0, 1.0, None
        for k in range(n):
            _, _, r, term, trunc, nxt = log[t + k]
            ret += disc * r[b]
            disc *= gamma
            boot = nxt[b]
            if term[b] or trunc[b]:
                disc = 0.0 if term[b] else disc
                break
        assert batch.action[i] == log[t][1][b]
        np.testing.assert_allclose(batch.reward[i], ret, rtol=1e-5)
        np.testing.assert_allclose(batch.discount[i], disc, rtol=1e-5)
        np.testing.assert_allclose(batch.next_obs[i], boot)


# ------------------------------------------------------------------------------------------ jitted loop
def test_scan_equals_step_by_step_loop():
    """run(runner, 6) in one scan == six single-step runs (so chunking / resuming never changes results)."""
    spec, fns = jax_functions("classic/CartPole-v1")
    cfg = DQNConfig(learning_starts=8, batch_size=8, buffer_size=64, target_update_period=2)
    _, init, run = make_jax_dqn(cfg, spec, fns, num_envs=2)
    contexts = jnp.tile(jnp.array([[1.0, 0.1, 0.5, 9.8, 10.0]]), (2, 1))
    runner = init(jax.random.PRNGKey(0), contexts)
    whole, metrics = jax.jit(lambda r: run(r, 6))(runner)
    one = jax.jit(lambda r: run(r, 1))
    looped = runner
    for _ in range(6):
        looped, _ = one(looped)
    assert float(metrics["learned"].sum()) > 0  # updates happened inside the compared window
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(looped)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_bad_config_refused():
    with pytest.raises(ValueError, match="learning_starts"):
        DQNTrainer(experiment(DQNConfig(learning_starts=1), 100), None)
    with pytest.raises(ValueError, match="unknown dqn config key"):
        from agents.dqn import dqn_config_from
        dqn_config_from({"learning_rate": 1e-3})


def test_host_path_smoke_through_jax_batched_env():
    """The Atari/SUMO code path (host env.step + jitted act/observe with donated state) on CartPole's adapter."""
    cfg = DQNConfig(host_loop=True, learning_starts=32, batch_size=16, buffer_size=256, steps_per_train_step=40,
                    target_update_period=5)
    trainer = DQNTrainer(experiment(cfg, total=160, num_envs=2), None)
    assert not trainer.jax_native
    state = trainer.init(jax.random.PRNGKey(0))
    before = np.asarray(jax.tree.leaves(state.train_state.params)[0]).copy()
    state, metrics, n = trainer.train_step(state)
    assert n == 80 and int(state.env_steps) == 80 and int(state.replay.size) == 40
    assert int(state.train_state.num_updates) == 40 - 15  # learning starts at 32 env steps = vector step 16
    assert np.isfinite(metrics["loss/td"]) and metrics["train/episodes"] > 0
    assert not np.allclose(before, np.asarray(jax.tree.leaves(state.train_state.params)[0]))
    out = trainer.evaluate(state, 2, jax.random.PRNGKey(1))
    # CartPole pays +1 per step: the mean return is the mean length; evaluation is a pure function of its key
    assert out["episodes"] == 2 and out["return_mean"] == out["length_mean"] and 8 <= out["return_mean"] <= 500
    assert trainer.evaluate(state, 2, jax.random.PRNGKey(1)) == out
    trainer.close()


def test_host_replay_samples_the_device_replays_transitions_and_trains_alike():
    """``run.replay: host`` (numpy replay, minibatches gathered on the host): from one seed it stores the same
    transitions, draws the same indices and ends with the same parameters as the device replay (allclose: the
    host computes the n-step sums in numpy, the device in XLA)."""
    from agents.common.replay import host_replay_sample, replay_sample
    cfg = DQNConfig(host_loop=True, learning_starts=32, batch_size=16, buffer_size=256, steps_per_train_step=40,
                    target_update_period=5, gradient_steps=2)
    ends = {}
    for where in ("device", "host"):
        exp = experiment(cfg, total=160, num_envs=2)
        exp.run.replay = where
        trainer = DQNTrainer(exp, None)
        assert trainer.agent_fns.replay_location == where
        state = trainer.init(jax.random.PRNGKey(0))
        for _ in range(2):
            state, metrics, _ = trainer.train_step(state)
        assert np.isfinite(metrics["loss/td"]) and int(state.train_state.num_updates) == 2 * (80 - 15)
        ends[where] = jax.device_get(state)
        trainer.close()
    assert isinstance(ends["host"].replay.obs, np.ndarray)
    for a, b in zip(jax.tree.leaves(ends["device"].replay), jax.tree.leaves(ends["host"].replay)):
        np.testing.assert_array_equal(a, b)  # identical transitions stored
    key = jax.random.PRNGKey(7)
    on_device = replay_sample(jax.tree.map(jnp.asarray, ends["device"].replay), key, 64, cfg.n_step, cfg.gamma)
    on_host = host_replay_sample(ends["host"].replay, key, 64, cfg.n_step, cfg.gamma)
    np.testing.assert_array_equal(on_device.obs, on_host.obs)  # the same indices: the same starts and bootstraps
    np.testing.assert_array_equal(on_device.next_obs, on_host.next_obs)
    np.testing.assert_allclose(on_device.reward, on_host.reward, rtol=1e-6)
    np.testing.assert_allclose(on_device.discount, on_host.discount, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(ends["device"].train_state), jax.tree.leaves(ends["host"].train_state)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_dqn_learns_cartpole():
    """Greedy return >= 195 (the CartPole-v0 solved level) after 32k env steps (OMNITASK_FULL=1: 3 seeds)."""
    for seed in (0, 1, 2) if FULL else (0,):
        cfg = DQNConfig(steps_per_train_step=1000)
        trainer = DQNTrainer(experiment(cfg, total=32_000, num_envs=4, seed=seed), None)
        state = trainer.init(jax.random.PRNGKey(seed))
        steps = 0
        while steps < 32_000:
            state, metrics, n = trainer.train_step(state)
            steps += n
        result = trainer.evaluate(state, 20, jax.random.PRNGKey(100 + seed))
        trainer.close()
        assert result["return_mean"] >= 195, (seed, result, metrics)
