"""Conformance of the JAX-native MinAtar family (``minatar/<Game>``, gymnax)."""
import numpy as np
import pytest

import envs
from envs.functional import jax_functions
from envs.minatar import GAMES

IDS = [f"minatar/{g}" for g in GAMES]
CHANNELS = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}


def test_every_game_is_listed_with_its_spec():
    assert envs.list_ids("minatar") == sorted(IDS + ["minatar/multitask"])
    for game, channels in CHANNELS.items():
        spec = envs.spec(f"minatar/{game}")
        assert spec.observation.shape == (10, 10, channels) and spec.observation.dtype == "uint8"
        assert spec.context_vars == ()


@pytest.mark.parametrize("env_id", ["minatar/Breakout", "minatar/SpaceInvaders"])
def test_random_play_conforms_and_episodes_end(env_id):
    env = envs.make(env_id, num_envs=4, seed=0)
    rng = np.random.default_rng(0)
    ts = env.reset()
    envs.check_timestep(ts, env.spec, 4)
    finished = 0
    for _ in range(300):
        ts = env.step(rng.integers(0, env.spec.action.num_actions, 4))
        envs.check_timestep(ts, env.spec, 4)
        assert set(np.unique(ts.observation)) <= {0, 1}
        done = envs.episode_over(ts)
        finished += int(done.sum())
        # Same-step autoreset: a finished env's counters restart, its terminal frame is in final_observation.
        assert (ts.info["episode_length"][done] > 0).all()
    assert finished > 0  # random play loses Breakout / SpaceInvaders within 300 steps


def test_seeded_determinism_and_pure_functions():
    def rollout(seed):
        env = envs.make("minatar/Asterix", num_envs=2, seed=seed)
        obs = [env.reset().observation]
        for t in range(30):
            obs.append(env.step(np.full(2, t % 5)).observation)
        return np.stack(obs)
    np.testing.assert_array_equal(rollout(1), rollout(1))
    assert not np.array_equal(rollout(1), rollout(2))
    spec, fns = jax_functions("minatar/Freeway")  # JAX-native: usable inside jit by PPO/DQN/PVN/ScaleZero
    assert spec.action.num_actions == 3 and fns.reset is not None


def test_bad_ids_and_options_are_named():
    with pytest.raises(ValueError, match="unknown environment id 'minatar/Pong'"):
        envs.make("minatar/Pong")
    with pytest.raises(ValueError, match="MinAtar envs take none"):
        envs.make("minatar/Breakout", frameskip=4)


def test_multitask_batch_pads_planes_maps_tasks_and_resumes_exactly():
    env = envs.make("minatar/multitask", num_envs=5, seed=1, games=["Breakout", "Asterix"])
    assert env.spec.task_names == ("Breakout", "Asterix") and env.spec.action.num_actions == 6
    assert env.spec.observation.shape == (10, 10, 10)
    ts = env.reset(seed=3)
    envs.check_timestep(ts, env.spec, 5)
    assert ts.task_id.tolist() == [0, 0, 0, 1, 1]
    assert not ts.observation[:3, ..., 4:].any()  # Breakout's 4 planes padded with zeros to 10
    rng = np.random.default_rng(0)
    ended = set()
    for _ in range(200):
        ts = env.step(rng.integers(0, 6, 5))
        envs.check_timestep(ts, env.spec, 5)
        ended |= set(ts.task_id[envs.episode_over(ts)].tolist())
    assert 0 in ended  # random Breakout games end within 200 steps
    snap = env.snapshot()
    a = env.step(np.ones(5, int))
    env.restore(snap)
    b = env.step(np.ones(5, int))
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="each at most once"):
        envs.make("minatar/multitask", num_envs=4, games=["Pong"])
    with pytest.raises(ValueError, match="smaller than the number of games"):
        envs.make("minatar/multitask", num_envs=2)
