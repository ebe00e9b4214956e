"""Bad actions and sizes: the host API refuses them with one line; inside jit the documented clamp policy holds
(envs/jax_env.py) so one bad action never poisons an episode."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.functional import jax_functions


@pytest.mark.parametrize("num_envs", [2.7, 2.0, "2", True, 0])
def test_make_refuses_non_integer_num_envs(num_envs):
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        envs.make("classic/CartPole-v1", num_envs=num_envs)


@pytest.mark.parametrize("env_id, actions, message", [
    ("classic/CartPole-v1", np.array([np.nan, 0.0]), "must be integers"),
    ("classic/CartPole-v1", np.array([0.7, 1.0]), "must be integers"),
    ("classic/CartPole-v1", np.array([5, 0]), r"must be in \[0, 2\), got 5"),
    ("classic/CartPole-v1", np.array([-1, 0]), r"must be in \[0, 2\), got -1"),
    ("classic/CartPole-v1", np.array([0, 1, 0]), r"must have shape \(2,\)"),
    ("classic/Pendulum-v1", np.array([[np.nan], [0.0]]), "contain NaN/inf"),
    ("classic/Pendulum-v1", np.array([[np.inf], [0.0]]), "contain NaN/inf"),
    ("classic/Pendulum-v1", np.array([0.0, 0.0]), r"must have shape \(2, 1\)"),
    ("traffic/ring-jax", np.array([[np.nan], [0.0]]), "contain NaN/inf"),
])
def test_jax_native_host_api_refuses_bad_actions(env_id, actions, message):
    env = envs.make(env_id, num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=message) as err:
        env.step(actions)
    assert str(err.value).startswith(env_id) and "\n" not in str(err.value)


@pytest.mark.parametrize("env_id", ["traffic/ring-sumo", "traffic/ecodrive"])
def test_sumo_envs_refuse_nan_before_sumo_sees_it(env_id):
    spec = envs.spec(env_id)
    bad = np.zeros((2, *spec.action.shape), np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=f"{env_id}: actions contain NaN/inf"):
        spec.check_actions(bad, 2)
    np.testing.assert_array_equal(spec.check_actions(np.full((2, *spec.action.shape), 3.0), 2), 3.0)  # env clips


def test_sumo_ring_step_refuses_nan():
    env = envs.make("traffic/ring-sumo", num_envs=1, seed=0)
    try:
        env.reset()
        with pytest.raises(ValueError, match="contain NaN/inf"):
            env.step(np.array([[np.nan]], np.float32))
        assert np.all(np.isfinite(env.step(np.array([[0.5]], np.float32)).observation))  # still usable
    finally:
        env.close()


def _rollout(env_id, first_action, steps=50):
    """One env, one (possibly bad) first action inside jit, then zero/neutral actions: [steps, obs] observations."""
    spec, fns = jax_functions(env_id)
    params = fns.params_from_context(jnp.asarray([v.default for v in spec.context_vars], jnp.float32))
    state, ts = fns.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(fns.step)
    neutral = jnp.zeros(spec.action.shape, jnp.float32 if spec.action.dtype == "float32" else jnp.int32)
    obs = []
    for t in range(steps):
        state, ts = step(jax.random.PRNGKey(t), state, first_action if t == 0 else neutral, params)
        obs.append(np.asarray(ts.observation))
    return np.stack(obs)


@pytest.mark.parametrize("env_id, bad, clamped", [
    ("classic/CartPole-v1", jnp.int32(5), jnp.int32(1)),  # out of range -> the nearest action, not a 9x push
    ("classic/CartPole-v1", jnp.int32(-1), jnp.int32(0)),
    ("classic/Pendulum-v1", jnp.array([jnp.nan]), jnp.array([0.0])),  # NaN -> 0
    ("classic/Pendulum-v1", jnp.array([7.0]), jnp.array([1.0])),  # clipped to the box
    ("traffic/ring-jax", jnp.array([jnp.nan]), jnp.array([0.0])),
    ("traffic/ring-jax", jnp.array([-jnp.inf]), jnp.array([-1.0])),
])
def test_in_jit_clamp_policy(env_id, bad, clamped):
    got, want = _rollout(env_id, bad), _rollout(env_id, clamped)
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, want)
