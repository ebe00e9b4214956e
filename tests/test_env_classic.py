"""Conformance of the JAX-native classic-control family and of the shared env API (registry, contexts)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.classic import CLASSIC, classic_functions

IDS = sorted(CLASSIC)


def _random_actions(spec, n, rng):
    if isinstance(spec.action, envs.DiscreteActionSpec):
        return rng.integers(0, spec.action.num_actions, n)
    return rng.uniform(spec.action.low, spec.action.high, (n, *spec.action.shape)).astype(np.float32)


@pytest.mark.parametrize("env_id", IDS)
def test_spec_matches_every_step(env_id):
    env = envs.make(env_id, num_envs=3, seed=0)
    rng = np.random.default_rng(0)
    ts = env.reset()
    envs.check_timestep(ts, env.spec, 3)
    assert not ts.done.any() and (ts.reward == 0).all()
    for _ in range(60):
        ts = env.step(_random_actions(env.spec, 3, rng))
        envs.check_timestep(ts, env.spec, 3)


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_determinism(env_id):
    def rollout(seed):
        env = envs.make(env_id, num_envs=2, seed=seed)
        rng = np.random.default_rng(1)
        obs = [env.reset().observation]
        for _ in range(25):
            obs.append(env.step(_random_actions(env.spec, 2, rng)).observation)
        return np.stack(obs)
    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


def test_same_step_autoreset_cartpole():
    env = envs.make("classic/CartPole-v1", num_envs=1, seed=0)
    ts = env.reset()
    length = 0
    while True:  # always push right: the pole falls within a few dozen steps
        ts = env.step(np.ones(1, np.int32))
        length += 1
        if ts.done[0]:
            break
    assert ts.terminated[0] and not ts.truncated[0]
    assert ts.info["episode_length"][0] == length
    assert ts.info["episode_return"][0] == pytest.approx(length)
    # The returned observation already belongs to the next episode (near the upright start state) ...
    assert np.abs(ts.observation[0]).max() <= 0.05
    # ... while final_observation is the terminal state (pole or cart out of bounds).
    final = ts.info["final_observation"][0]
    assert abs(final[2]) > 0.2 or abs(final[0]) > 2.4
    nxt = env.step(np.ones(1, np.int32))
    assert nxt.info["episode_length"][0] == 1 and not nxt.done[0]


def test_truncation_is_not_termination():
    env = envs.make("classic/Pendulum-v1", num_envs=2, seed=0)
    env.reset()
    for t in range(200):
        ts = env.step(np.zeros((2, 1), np.float32))
    assert ts.truncated.all() and not ts.terminated.any()
    assert (ts.info["episode_length"] == 200).all()


def test_context_takes_effect_and_is_reported():
    lengths = [0.25, 0.5, 2.0, 4.0]
    env = envs.make("classic/CartPole-v1", num_envs=4, seed=0, context={"length": lengths, "masscart": 2.0})
    ts = env.reset()
    j = env.spec.context_names.index("length")
    np.testing.assert_allclose(ts.context[:, j], lengths)
    np.testing.assert_allclose(ts.context[:, env.spec.context_names.index("masscart")], 2.0)
    # Identical start states, identical actions: a longer pole falls more slowly, so episodes last longer.
    spec, fns = classic_functions(CLASSIC["classic/CartPole-v1"])
    key = jax.random.PRNGKey(0)
    params = jax.vmap(fns.params_from_context)(jnp.asarray(spec.resolve_context({"length": lengths}, 4)))
    state, ts = jax.vmap(fns.reset, in_axes=(None, 0))(key, params)
    first_done = np.full(4, -1)
    for t in range(200):
        state, ts = jax.vmap(fns.step, in_axes=(None, 0, None, 0))(key, state, jnp.int32(t % 3 == 0), params)
        first_done[(first_done < 0) & np.asarray(ts.done)] = t
    assert (first_done > 0).all() and np.all(np.diff(first_done) >= 0) and first_done[-1] > first_done[0], first_done


def test_functional_form_vmaps_inside_jit_over_contexts():
    spec, fns = classic_functions(CLASSIC["classic/Pendulum-v1"])
    contexts = jnp.asarray(spec.resolve_context({"m": np.linspace(0.2, 5.0, 64)}, 64))

    @jax.jit
    def run(key):
        params = jax.vmap(fns.params_from_context)(contexts)
        keys = jax.random.split(key, 64)
        state, ts = jax.vmap(fns.reset)(keys, params)

        def body(carry, _):
            state, key = carry
            key, sub = jax.random.split(key)
            state, ts = jax.vmap(fns.step)(jax.random.split(sub, 64), state, jnp.ones((64, 1)), params)
            return (state, key), ts.reward
        _, rewards = jax.lax.scan(body, (state, key), None, length=50)
        return rewards
    rewards = np.asarray(run(jax.random.PRNGKey(0)))
    assert rewards.shape == (50, 64) and np.isfinite(rewards).all()
    assert np.std(rewards.sum(0)) > 0  # different masses -> different returns


def test_unknown_id_lists_close_matches():
    with pytest.raises(ValueError, match="classic/CartPole-v1"):
        envs.make("classic/CartPol-v1")


def test_bad_contexts_refused_with_allowed_values():
    with pytest.raises(ValueError, match=r"did you mean 'length'"):
        envs.make("classic/CartPole-v1", context={"lenght": 1.0})
    with pytest.raises(ValueError, match=r"outside its allowed range \[0.05, 5\]"):
        envs.make("classic/CartPole-v1", context={"length": 30.0})
    with pytest.raises(ValueError, match="one per env"):
        envs.make("classic/CartPole-v1", num_envs=3, context={"length": [0.5, 1.0]})
    with pytest.raises(ValueError, match="unknown option"):
        envs.make("classic/CartPole-v1", protocol="dqn")
    with pytest.raises(ValueError, match="num_envs"):
        envs.make("classic/CartPole-v1", num_envs=0)


def test_step_before_reset_refused():
    env = envs.make("classic/CartPole-v1")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.int32))
