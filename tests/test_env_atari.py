"""Conformance tests of the Atari family (real ALE emulators, no mocks).

Covers: spec vs arrays on every step, seeded determinism, same-step autoreset, episodic life, unclipped returns,
multi-task task ids, a single frame skip, the two backends agreeing bit-for-bit, clone/restore, raw RGB, contexts
(ALE mode/difficulty) and the error messages for bad ids, options, actions and contexts.
"""
from __future__ import annotations

import numpy as np
import pytest

ale_py = pytest.importorskip("ale_py")
cv2 = pytest.importorskip("cv2")

import envs  # noqa: E402
from envs.atari import games as atari_games  # noqa: E402
from envs.atari.env import AtariEnv  # noqa: E402

BACKENDS = ("vector", "ale")


def _rollout(env: AtariEnv, steps: int, seed: int = 0, reset_seed: int | None = None):
    """Reset (re-seeding with ``reset_seed`` if given) + ``steps`` uniformly random actions drawn with ``seed``;
    every TimeStep is checked against the spec."""
    rng = np.random.default_rng(seed)
    out = [env.reset(seed=reset_seed)]
    envs.check_timestep(out[0], env.spec, env.num_envs)
    for _ in range(steps):
        ts = env.step(rng.integers(0, env.spec.action.num_actions, env.num_envs))
        envs.check_timestep(ts, env.spec, env.num_envs)
        out.append(ts)
    return out


def test_every_single_player_rom_is_registered():
    from ale_py import roms

    shipped = [r for r in roms.get_all_rom_ids() if r not in {"combat", "joust", "maze_craze", "warlords"}]
    assert list(atari_games.ROM_IDS) == shipped
    ids = envs.list_ids("atari")
    assert len(ids) == len(shipped) + 1 and "atari/multitask" in ids
    assert {"atari/Pong", "atari/MsPacman", "atari/MontezumaRevenge", "atari/SpaceInvaders"} <= set(ids)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("protocol,shape", [("dqn", (84, 84, 4)), ("world_model", (64, 64, 3))])
def test_spec_matches_arrays_on_every_step(backend, protocol, shape):
    # 200-frame episodes: the 60 steps cross a truncation + autoreset.
    with envs.make("atari/Breakout", num_envs=2, seed=0, protocol=protocol, backend=backend,
                   max_episode_frames=200) as env:
        assert env.backend_name == backend
        assert env.spec.observation.shape == shape and env.spec.observation.dtype == "uint8"
        assert env.spec.action.names == ("NOOP", "FIRE", "RIGHT", "LEFT")
        assert env.spec.max_episode_steps == 50
        out = _rollout(env, 60)
    assert any(ts.truncated.any() for ts in out)
    for ts in out[1:]:
        assert set(np.unique(ts.reward)) <= {-1.0, 0.0, 1.0}  # train mode clips


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeded_determinism(backend):
    def observations(env, reset_seed=None):
        return np.stack([ts.observation for ts in _rollout(env, 40, reset_seed=reset_seed)])

    # no-ops and sticky actions on: both random streams must follow the seed
    with envs.make("atari/Pong", num_envs=1, seed=0, backend=backend) as env:
        a = observations(env)
        np.testing.assert_array_equal(a, observations(env, reset_seed=0))  # reset(seed=) restarts the streams
        assert not np.array_equal(a, observations(env, reset_seed=1))
    with envs.make("atari/Pong", num_envs=1, seed=0, backend=backend) as env:
        np.testing.assert_array_equal(a, observations(env))  # same make seed, same observations


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_step_autoreset_and_counters(backend):
    with envs.make("atari/Breakout", num_envs=2, seed=0, backend=backend, mode="eval", noop_max=0,
                   max_episode_frames=40) as env:
        out = _rollout(env, 12)
    for t in range(1, 11):
        np.testing.assert_array_equal(out[t].info["episode_length"], [t, t])
        if t < 10:
            np.testing.assert_array_equal(out[t].info["episode_frame_number"], [4 * t, 4 * t])
    end = out[10]
    assert end.truncated.all() and not end.terminated.any() and end.info["game_over"].all()
    for i in range(2):
        assert not np.array_equal(end.info["final_observation"][i], end.observation[i])
        # the new episode's first observation: a fresh stack (zeros except the newest frame)
        assert not end.observation[i][..., :3].any() and end.observation[i][..., 3].any()
        # the final observation continues the previous stack
        np.testing.assert_array_equal(end.info["final_observation"][i][..., :3], out[9].observation[i][..., 1:])
    np.testing.assert_array_equal(out[11].info["episode_length"], [1, 1])
    np.testing.assert_array_equal(out[11].info["episode_frame_number"], [4, 4])


def test_game_over_terminates_and_episodic_life():
    # world_model train: a lost life ends the agent's episode without resetting the game.
    with envs.make("atari/Breakout", num_envs=2, seed=0, protocol="world_model", mode="train",
                   backend="vector") as env:
        rng = np.random.default_rng(1)
        out = [env.reset()]
        while not out[-1].info["game_over"].any() and len(out) < 600:  # random play loses 5 lives in ~130 steps
            out.append(env.step(rng.integers(0, 4, 2)))
        out.append(env.step(rng.integers(0, 4, 2)))
    life_loss = [(t, i) for t, ts in enumerate(out) for i in range(2)
                 if ts.terminated[i] and not ts.info["game_over"][i]]
    game_over = [(t, i) for t, ts in enumerate(out) for i in range(2) if ts.info["game_over"][i]]
    assert len(life_loss) >= 4 and game_over
    t, i = life_loss[0]
    ts = out[t]
    np.testing.assert_array_equal(ts.info["final_observation"][i], ts.observation[i])  # same game goes on
    assert ts.info["lives"][i] == out[t - 1].info["lives"][i] - 1
    assert out[t + 1].info["episode_length"][i] == ts.info["episode_length"][i] + 1  # game totals continue
    t, i = game_over[0]
    assert out[t].terminated[i] and not out[t].truncated[i]
    assert not np.array_equal(out[t].info["final_observation"][i], out[t].observation[i])
    assert out[t + 1].info["episode_length"][i] == 1 and out[t + 1].info["lives"][i] == 5


def test_rewards_clipped_in_train_but_returns_raw():
    for mode in ("train", "eval"):
        with envs.make("atari/Assault", num_envs=2, seed=0, mode=mode, backend="vector") as env:
            out = _rollout(env, 40)
        summed = np.sum([ts.reward for ts in out[1:]], axis=0)
        raw = out[-1].info["episode_return"]
        assert raw.max() >= 21  # Assault scores 21 per kill
        if mode == "train":
            assert np.all(raw >= summed) and np.any(raw > summed)
        else:
            np.testing.assert_array_equal(summed, raw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frame_skip_is_not_doubled(backend):
    with envs.make("atari/Pong", num_envs=2, seed=0, backend=backend) as env:
        out = _rollout(env, 25)
    frames = np.stack([ts.info["episode_frame_number"] for ts in out])  # [T+1, B]
    np.testing.assert_array_equal(np.diff(frames, axis=0), 4)  # exactly 4 emulator frames per agent step


def test_ale_emulator_itself_does_not_skip():
    with envs.make("atari/Pong", num_envs=1, seed=0, backend="ale") as env:
        env.reset()
        ale = env._backend._ales[0]
        assert ale.getInt("frame_skip") == 1
        before = ale.getEpisodeFrameNumber()
        env.step(np.array([0]))
        assert ale.getEpisodeFrameNumber() - before == 4


@pytest.mark.parametrize("protocol", ["dqn", "world_model"])
def test_vector_and_per_env_backends_agree(protocol):
    """Same seeds, no no-ops and no sticky actions (their RNG streams differ): identical arrays, episodic life on."""
    kw = dict(num_envs=2, seed=3, protocol=protocol, noop_max=0, sticky_actions=0.0, max_episode_frames=120,
              mode="train")
    with envs.make("atari/Breakout", backend="vector", **kw) as a, envs.make("atari/Breakout", backend="ale",
                                                                            **kw) as b:
        out_a, out_b = _rollout(a, 40), _rollout(b, 40)
    for ta, tb in zip(out_a, out_b):
        for field in ("observation", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field), err_msg=field)
        for key in ("episode_return", "episode_length", "lives", "episode_frame_number", "game_over"):
            np.testing.assert_array_equal(ta.info[key], tb.info[key], err_msg=key)
        keep = ~ta.info["game_over"]  # ale-py leaves the newest final frame stale on ending steps (documented)
        np.testing.assert_array_equal(ta.info["final_observation"][keep], tb.info["final_observation"][keep])
        if protocol == "dqn":
            np.testing.assert_array_equal(ta.info["final_observation"][..., :3], tb.info["final_observation"][..., :3])
    assert any(ts.truncated.any() for ts in out_a)


@pytest.mark.parametrize("backend", ["auto", "ale", "vector"])
def test_final_observation_against_a_continuing_reference(backend):
    """Reference: the same game without the frame limit continues past the truncation step, so its observation on
    that step is the exact final observation. 'auto' (= 'ale') matches it; ale-py's vector env leaves the newest
    frame stale (documented in envs/atari/__init__.py), the three older frames match."""
    kw = dict(num_envs=2, seed=3, noop_max=0, sticky_actions=0.0, mode="eval", backend=backend)
    with envs.make("atari/Breakout", max_episode_frames=120, **kw) as cut, \
            envs.make("atari/Breakout", max_episode_frames=100_000, **kw) as ref:
        cut.reset(), ref.reset()
        rng = np.random.default_rng(0)
        for _ in range(40):
            actions = rng.integers(0, 4, 2)
            a, b = cut.step(actions), ref.step(actions)
            if a.truncated.any():
                break
        assert a.truncated.all() and not b.truncated.any()
        final = a.info["final_observation"]
        if cut.backend_name == "ale":
            np.testing.assert_array_equal(final, b.observation)
        else:
            np.testing.assert_array_equal(final[..., :3], b.observation[..., :3])
    assert envs.make("atari/Pong", num_envs=1).backend_name == "ale"  # the default is the exact backend


def test_clone_restore_replays_exactly_with_sticky_actions_over_many_seeds():
    """Sticky actions 0.25: the last action and the stickiness stream are part of the cloned state, so a restored
    state replays the same actions identically for every one of 30 seeds (ALE's own stickiness did not)."""
    with envs.make("atari/Breakout", num_envs=1, seed=0, backend="ale", sticky_actions=0.25) as env:
        for seed in range(30):
            rng = np.random.default_rng(seed)
            env.reset(seed=seed)
            for a in rng.integers(0, 4, 15):
                env.step(np.array([a]))
            states = env.clone_state()
            actions = rng.integers(0, 4, (25, 1))
            first = [env.step(a) for a in actions]
            env.restore_state(states)
            second = [env.step(a) for a in actions]
            for x, y in zip(first, second):
                np.testing.assert_array_equal(x.observation, y.observation, err_msg=f"seed {seed}")
                np.testing.assert_array_equal(x.reward, y.reward, err_msg=f"seed {seed}")


def test_clone_restore_replays_exactly():
    with envs.make("atari/Breakout", num_envs=2, seed=1, backend="ale", raw_rgb=True) as env:  # sticky 0.25 on
        _rollout(env, 30)
        states = env.clone_state()
        assert len(states) == 2 and states[0].emulator.frames.shape == (4, 84, 84)
        actions = np.random.default_rng(5).integers(0, 4, (80, 2))
        first = [env.step(a) for a in actions]
        env.restore_state(states)
        second = [env.step(a) for a in actions]
        for x, y in zip(first, second):
            np.testing.assert_array_equal(x.observation, y.observation)
            np.testing.assert_array_equal(x.reward, y.reward)
            np.testing.assert_array_equal(x.info["rgb"], y.info["rgb"])
            np.testing.assert_array_equal(x.info["episode_return"], y.info["episode_return"])
            np.testing.assert_array_equal(x.info["lives"], y.info["lives"])
        # branching: env 0's state into both envs -> identical futures
        env.restore_state([states[0], states[0]])
        for a in actions[:20]:
            ts = env.step(np.array([a[0], a[0]]))
            np.testing.assert_array_equal(ts.observation[0], ts.observation[1])
        with pytest.raises(ValueError, match="needs 2 states"):
            env.restore_state(states[:1])


def test_clone_errors():
    with envs.make("atari/Pong", num_envs=1, backend="vector") as env:
        env.reset()
        with pytest.raises(NotImplementedError, match="backend='ale'"):
            env.clone_state()
        with pytest.raises(NotImplementedError, match="backend='ale'"):
            env.render()
    with envs.make("atari/multitask", num_envs=2, games=["Pong", "Breakout"], backend="ale") as env:
        env.reset()
        states = env.clone_state()
        with pytest.raises(ValueError, match="from game 'pong' but env 1 plays 'breakout'"):
            env.restore_state([states[0], states[0]])


def test_multitask_task_ids_and_full_action_space():
    with envs.make("atari/multitask", num_envs=5, seed=0, games=["Pong", "Breakout", "MsPacman"],
                   protocol="world_model") as env:
        assert env.spec.task_names == ("Pong", "Breakout", "MsPacman")
        assert env.spec.action.num_actions == 18 and env.spec.action.names[:3] == ("NOOP", "FIRE", "UP")
        assert env.spec.context_vars == ()
        out = _rollout(env, 10)
    for ts in out:
        np.testing.assert_array_equal(ts.task_id, [0, 0, 1, 1, 2])
    obs = out[-1].observation
    assert not np.array_equal(obs[0], obs[2]) and not np.array_equal(obs[2], obs[4])


def test_multitask_refusals():
    with pytest.raises(ValueError, match="full_action_space is always on"):
        envs.make("atari/multitask", num_envs=2, games=["Pong", "Breakout"], full_action_space=False)
    with pytest.raises(ValueError, match="smaller than the number of games"):
        envs.make("atari/multitask", num_envs=1, games=["Pong", "Breakout"])
    with pytest.raises(ValueError, match="more than once"):
        envs.make("atari/multitask", num_envs=2, games=["Pong", "pong"])
    with pytest.raises(ValueError, match="Close matches: .*Breakout"):
        envs.make("atari/multitask", num_envs=2, games=["Pong", "Breakot"])
    with pytest.raises(ValueError, match="unknown context variable"):
        envs.make("atari/multitask", num_envs=2, games=["Pong", "Breakout"], context={"mode": 1})


def test_bad_ids_options_and_actions_are_refused():
    with pytest.raises(ValueError, match="Close matches: .*atari/Pong"):
        envs.make("atari/Pongg")
    with pytest.raises(ValueError, match="'world_model', 'dqn'"):
        envs.make("atari/Pong", protocol="dq")
    with pytest.raises(ValueError, match="'train', 'eval'"):
        envs.make("atari/Pong", mode="training")
    with pytest.raises(ValueError, match="unknown option 'raw_rbg' .*did you mean 'raw_rgb'"):
        envs.make("atari/Pong", raw_rbg=True)
    with pytest.raises(ValueError, match="'auto', 'vector', 'ale'"):
        envs.make("atari/Pong", backend="gpu")
    with pytest.raises(ValueError, match="cannot provide raw_rgb"):
        envs.make("atari/Pong", backend="vector", raw_rgb=True)
    with envs.make("atari/Pong", num_envs=2) as env:
        env.reset()
        with pytest.raises(ValueError, match=r"action 6 outside \[0, 6\)"):
            env.step(np.array([0, 6]))
        with pytest.raises(ValueError, match=r"shape \(2,\)"):
            env.step(np.array([0]))
        with pytest.raises(ValueError, match="integers"):
            env.step(np.array([0.5, 1.0]))


def test_context_mode_and_difficulty_take_effect():
    def first_obs(game, context, steps=0):
        with envs.make(f"atari/{game}", num_envs=2, seed=0, context=context, noop_max=0, sticky_actions=0.0) as env:
            ts = env.reset()
            for _ in range(steps):
                ts = env.step(np.ones(2, np.int64))
            return env, ts

    env, ts = first_obs("Breakout", {"difficulty": [0, 1]})  # difficulty 1: the narrow paddle, visible at once
    assert env.backend_name == "ale"
    np.testing.assert_array_equal(ts.context, [[0, 0], [0, 1]])
    assert not np.array_equal(ts.observation[0], ts.observation[1])
    _, ts = first_obs("Breakout", {})
    assert np.array_equal(ts.observation[0], ts.observation[1])
    _, ts = first_obs("SpaceInvaders", {"mode": [0, 1]}, steps=10)
    assert not np.array_equal(ts.observation[0], ts.observation[1])
    spec = envs.make("atari/Breakout").spec
    assert [v.name for v in spec.context_vars] == ["mode", "difficulty"]
    assert (spec.context_vars[0].low, spec.context_vars[0].high, spec.context_vars[0].default) == (0, 44, 0)
    with pytest.raises(ValueError, match=r"mode=3 is not supported by Breakout; allowed: \[0, 4, 8"):
        envs.make("atari/Breakout", context={"mode": 3})
    with pytest.raises(ValueError, match="outside its allowed range"):
        envs.make("atari/Breakout", context={"difficulty": 2})
    with pytest.raises(ValueError, match="did you mean 'difficulty'"):
        envs.make("atari/Breakout", context={"dificulty": 1})


def test_raw_rgb_frames():
    with envs.make("atari/Pong", num_envs=2, seed=0, raw_rgb=True) as env:
        ts = env.reset()
        rgb = ts.info["rgb"]
        assert rgb.shape == (2, 210, 160, 3) and rgb.dtype == np.uint8
        np.testing.assert_array_equal(env.render(), rgb)
        for i in range(2):  # the reset observation's newest frame is the resized grayscale of this screen
            gray = cv2.resize(cv2.cvtColor(rgb[i], cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA)
            np.testing.assert_array_equal(ts.observation[i][..., -1], gray)
        ts2 = env.step(np.zeros(2, np.int64))
        assert ts2.info["rgb"].shape == (2, 210, 160, 3)
    assert not np.shares_memory(ts.observation, ts2.observation)  # handed-out observations are never rewritten


def test_multitask_backends_agree_on_the_full_action_space():
    kw = dict(num_envs=2, seed=0, games=["Pong", "Breakout"], noop_max=0, protocol="world_model", mode="eval")
    with envs.make("atari/multitask", backend="vector", **kw) as a, envs.make("atari/multitask", backend="ale",
                                                                              **kw) as b:
        out_a, out_b = _rollout(a, 15), _rollout(b, 15)  # all 18 actions, incl. ones outside minimal sets
    for ta, tb in zip(out_a, out_b):
        np.testing.assert_array_equal(ta.observation, tb.observation)
        np.testing.assert_array_equal(ta.task_id, tb.task_id)
