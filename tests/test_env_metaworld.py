"""Conformance tests for the Meta-World v3 family (real MuJoCo simulations, short episodes to stay fast)."""
from __future__ import annotations

import multiprocessing
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("metaworld")

import envs  # noqa: E402
from envs.metaworld import tasks as T  # noqa: E402

FAST = {"num_goals": 5}  # 5 goals per task instead of Meta-World's 50: goal-set generation is the slow part


def _rollout(env, steps: int, seed: int = 0):
    """Reset, then step ``steps`` times with seeded uniform actions; every TimeStep is spec-checked."""
    rng = np.random.default_rng(seed)
    out = [env.reset()]
    envs.check_timestep(out[0], env.spec, env.num_envs)
    for _ in range(steps):
        ts = env.step(rng.uniform(-1, 1, (env.num_envs, 4)).astype(np.float32))
        envs.check_timestep(ts, env.spec, env.num_envs)
        out.append(ts)
    return out


def _same(a, b) -> bool:
    return all(np.array_equal(x.observation, y.observation) and np.array_equal(x.reward, y.reward)
               and np.array_equal(x.context, y.context) and np.array_equal(x.done, y.done)
               and np.array_equal(x.info["final_observation"], y.info["final_observation"]) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def mt10():
    env = envs.make("metaworld/MT10", num_envs=10, seed=0, one_hot=True, max_episode_steps=8, **FAST)
    yield env
    env.close()


def test_ids_listed_without_importing_mujoco():
    code = ("import sys, envs; ids = envs.list_ids('metaworld'); "
            "assert 'mujoco' not in sys.modules and 'metaworld' not in sys.modules, 'heavy import'; "
            "print(len(ids))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) == 3 * 50 + 6
    ids = envs.list_ids("metaworld")
    assert "metaworld/MT1/reach-v3" in ids and "metaworld/ML1-test/sweep-into-v3" in ids
    assert {"metaworld/MT10", "metaworld/MT50", "metaworld/ML10-train", "metaworld/ML10-test",
            "metaworld/ML45-train", "metaworld/ML45-test"} <= set(ids)


def test_static_task_tables_match_metaworld():
    from metaworld import env_dict as D

    assert T.ALL_TASKS == tuple(D.ALL_V3_ENVIRONMENTS)
    assert T.MT10_TASKS == tuple(D.MT10_V3) and T.MT50_TASKS == tuple(D.MT50_V3)
    assert T.ML10_TRAIN_TASKS == tuple(D.ML10_V3["train"]) and T.ML10_TEST_TASKS == tuple(D.ML10_V3["test"])
    assert T.ML45_TRAIN_TASKS == tuple(D.ML45_V3["train"]) and T.ML45_TEST_TASKS == tuple(D.ML45_V3["test"])
    assert T.SETTABLE_GOAL_TASKS <= set(T.ALL_TASKS)


def test_goal_sets_match_metaworld_benchmarks():
    import metaworld

    from envs.metaworld.env import _generated_tasks

    def goals(tasks):
        return [pickle.loads(t.data)["rand_vec"].tolist() for t in tasks]

    saved = metaworld._N_GOALS
    metaworld._N_GOALS = 5  # the reference, built the way metaworld.ML1 builds it, with 5 goals per task
    try:
        ref = metaworld.ML1("reach-v3", seed=7)
    finally:
        metaworld._N_GOALS = saved
    for split, want in (("train", ref.train_tasks), ("test", ref.test_tasks)):
        got = _generated_tasks("ML1", split, ("reach-v3",), 7, 5)
        assert len(got) == 5 and goals(got) == goals(want)
    assert metaworld._N_GOALS == saved  # the module global is restored
    assert goals(ref.train_tasks) != goals(ref.test_tasks)


def test_mt10_spec_task_ids_one_hot_and_autoreset(mt10):
    spec = mt10.spec
    assert spec.task_names == T.MT10_TASKS and spec.observation.shape == (39 + 10,)
    assert spec.observation.dtype == "float32" and spec.action.shape == (4,) and spec.max_episode_steps == 8
    for i, vec_env in enumerate(mt10._vec.envs):  # static goal spaces == the simulator's
        space = vec_env.unwrapped.goal_space
        np.testing.assert_allclose(space.low, T.GOAL_SPACES[T.MT10_TASKS[i]][0], atol=1e-6)
        np.testing.assert_allclose(space.high, T.GOAL_SPACES[T.MT10_TASKS[i]][1], atol=1e-6)
    assert envs.metaworld.spec_for("metaworld/MT10", one_hot=True, max_episode_steps=8) == spec  # static spec
    low, high = (np.array([getattr(v, k) for v in spec.context_vars]) for k in ("low", "high"))
    traj = _rollout(mt10, 17)  # two full 8-step episodes + 1 step
    for t, ts in enumerate(traj):
        np.testing.assert_array_equal(ts.task_id, np.arange(10))
        np.testing.assert_array_equal(ts.observation[:, 39:], np.eye(10, dtype=np.float32))
        # MT: the goal is observed, and the context reports the goal of the episode `observation` belongs to
        np.testing.assert_allclose(ts.observation[:, 36:39], ts.context, atol=1e-6)
        assert np.all((ts.context >= low - 1e-6) & (ts.context <= high + 1e-6))
        assert ts.info["episode_length"].tolist() == [0 if t == 0 else (t - 1) % 8 + 1] * 10
        if t in (8, 16):  # same-step autoreset: flags + totals of the finished episode, obs of the next
            assert ts.truncated.all() and not ts.terminated.any()
            assert not np.allclose(ts.info["final_observation"], ts.observation)
            np.testing.assert_array_equal(ts.info["final_observation"][:, 39:], np.eye(10, dtype=np.float32))
            np.testing.assert_allclose(ts.info["episode_return"],
                                       np.sum([traj[k].reward for k in range(t - 7, t + 1)], axis=0), rtol=1e-5)
        elif t > 0:
            assert not ts.done.any()
            np.testing.assert_array_equal(ts.info["final_observation"], ts.observation)
    assert (traj[8].info["final_observation"][:, :18] != traj[7].observation[:, :18]).any()  # one more step moved


def test_default_horizon_truncates_at_500():
    env = envs.make("metaworld/MT1/reach-v3", num_envs=1, seed=0, **FAST)
    try:
        assert env.spec.max_episode_steps == 500
        env.reset()
        zeros = np.zeros((1, 4), np.float32)
        ends = [t for t in range(1, 502) if env.step(zeros).truncated[0]]
        assert ends == [500]  # Meta-World's own horizon; the next episode then runs normally
    finally:
        env.close()


def test_mt10_refuses_bad_num_envs():
    with pytest.raises(ValueError, match="multiple of 10"):
        envs.make("metaworld/MT10", num_envs=5)


def test_seeded_determinism_and_reset_seed():
    kwargs = dict(num_envs=2, seed=3, max_episode_steps=6, **FAST)
    a, b = envs.make("metaworld/MT1/reach-v3", **kwargs), envs.make("metaworld/MT1/reach-v3", **kwargs)
    c = envs.make("metaworld/MT1/reach-v3", **{**kwargs, "seed": 4})
    try:
        ta, tb, tc = _rollout(a, 14), _rollout(b, 14), _rollout(c, 14)
        assert _same(ta, tb)
        assert not _same(ta, tc)
        assert not np.array_equal(ta[0].context[0], ta[0].context[1])  # envs of one task get different goals
        first = [a.reset(seed=11)] + [a.step(np.full((2, 4), 0.5)) for _ in range(13)]
        again = [a.reset(seed=11)] + [a.step(np.full((2, 4), 0.5)) for _ in range(13)]
        assert _same(first, again)
        # actions are clipped to [-1, 1]: 5.0 acts like 1.0
        a.reset(seed=1), b.reset(seed=1)
        np.testing.assert_array_equal(a.step(np.full((2, 4), 5.0)).observation, b.step(np.ones((2, 4))).observation)
        with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
            a.step(np.zeros((2, 3)))
        with pytest.raises(ValueError, match="NaN"):
            a.step(np.full((2, 4), np.nan))
    finally:
        a.close(), b.close(), c.close()


def test_ml1_goal_context_sets_the_goal():
    goals = {"goal_x": [-0.08, 0.08], "goal_y": [0.82, 0.88], "goal_z": [0.1, 0.25]}
    want = np.array([[-0.08, 0.82, 0.1], [0.08, 0.88, 0.25]], np.float32)
    kwargs = dict(num_envs=2, seed=0, max_episode_steps=5, **FAST)
    hidden = envs.make("metaworld/ML1-train/reach-v3", context=goals, **kwargs)
    swapped = envs.make("metaworld/ML1-train/reach-v3", context={k: v[::-1] for k, v in goals.items()}, **kwargs)
    shown = envs.make("metaworld/ML1-train/reach-v3", context=goals, goal_observable=True, **kwargs)
    try:
        spec = hidden.spec
        assert spec.context_names == ("goal_x", "goal_y", "goal_z")
        assert (spec.context_vars[0].low, spec.context_vars[0].high) == (-0.1, 0.1)
        th, ts_, to = _rollout(hidden, 12), _rollout(swapped, 12), _rollout(shown, 12)
        for h, s, o in zip(th, ts_, to):
            np.testing.assert_allclose(h.context, want, atol=1e-6)  # explicit goal, kept across autoresets
            np.testing.assert_allclose(s.context, want[::-1], atol=1e-6)
            assert not h.observation[:, 36:39].any()  # ML convention: goal hidden in the observation
            np.testing.assert_allclose(o.observation[:, 36:39], want, atol=1e-6)  # ...unless asked to show it
            np.testing.assert_array_equal(h.observation[:, :36], o.observation[:, :36])
        # same seed, same actions, swapped goals: identical hidden observations but the reward follows the goal
        assert not np.allclose(np.array([t.reward for t in th[1:]]), np.array([t.reward for t in ts_[1:]]))
        hidden.set_goals({"goal_x": 0.0, "goal_y": 0.9, "goal_z": 0.3})  # takes effect at the next reset
        np.testing.assert_allclose(hidden.reset().context, [[0.0, 0.9, 0.3]] * 2, atol=1e-6)
        hidden.set_goals(None)  # back to the benchmark's goals
        assert not np.allclose(hidden.reset().context, [[0.0, 0.9, 0.3]] * 2)
    finally:
        hidden.close(), swapped.close(), shown.close()


def test_ml_goal_changes_only_on_sample_tasks():
    env = envs.make("metaworld/ML1-train/reach-v3", num_envs=1, seed=0, max_episode_steps=3, **FAST)
    try:
        traj = _rollout(env, 9)  # three episodes
        assert all(np.array_equal(ts.context, traj[0].context) for ts in traj)  # same task across episodes
        low, high = (np.array(b) for b in T.GOAL_SPACES["reach-v3"])
        assert np.all((traj[0].context >= low - 1e-6) & (traj[0].context <= high + 1e-6))
        env.sample_tasks()
        assert not np.array_equal(env.reset().context, traj[0].context)
    finally:
        env.close()


def test_bad_goal_context_and_options_refused():
    with pytest.raises(ValueError, match=r"goal_x=0.5 is outside its allowed range \[-0.1, 0.1\]"):
        envs.make("metaworld/ML1-train/reach-v3", context={"goal_x": 0.5})
    with pytest.raises(ValueError, match="did you mean 'goal_x'"):
        envs.make("metaworld/ML1-train/reach-v3", context={"goal_xx": 0.0})
    with pytest.raises(ValueError, match="cannot be set by a context.*reach-v3"):
        envs.make("metaworld/ML1-train/button-press-v3", context={"goal_x": 0.0})
    with pytest.raises(ValueError, match="did you mean 'one_hot'"):
        envs.make("metaworld/MT1/reach-v3", onehot=True)
    with pytest.raises(ValueError, match=r"max_episode_steps=600 must be in \[1, 500\]"):
        envs.make("metaworld/MT1/reach-v3", max_episode_steps=600)
    with pytest.raises(ValueError, match="unknown camera 'corners'.*did you mean 'corner"):
        envs.make("metaworld/MT1/reach-v3", camera="corners")


def test_infeasible_goal_refused_then_replaced():
    # box-close needs the lid >= 0.25 m (xy) from the box; objects spawn at y <= 0.55, so y = 0.7 never fits
    env = envs.make("metaworld/ML1-train/box-close-v3", context={"goal_x": 0.0, "goal_y": 0.7, "goal_z": 0.133},
                    **FAST)
    try:
        with pytest.raises(ValueError, match=r"box-close-v3: goal \[0.0, 0.7, 0.133\] was rejected"):
            env.reset()
        env.set_goals({"goal_x": 0.1, "goal_y": 0.8, "goal_z": 0.133})
        np.testing.assert_allclose(env.reset().context, [[0.1, 0.8, 0.133]], atol=1e-6)
    finally:
        env.close()


def test_bad_task_name_refused_with_close_matches():
    with pytest.raises(ValueError, match="metaworld/MT1/reach-v3"):
        envs.make("metaworld/MT1/reach-v2")
    with pytest.raises(ValueError, match="metaworld/ML1-train/pick-place-v3"):
        envs.make("metaworld/ML1-train/pickplace-v3")


def test_success_and_terminate_on_success_in_ml_test():
    from metaworld.policies import SawyerReachV3Policy

    policy = SawyerReachV3Policy()  # Meta-World's scripted expert; it reads the goal from the observation
    env = envs.make("metaworld/ML1-test/reach-v3", num_envs=2, seed=0, goal_observable=True, **FAST)
    try:
        ts = env.reset()
        ended = np.zeros(2, bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(150):
                ts = env.step(np.stack([policy.get_action(o) for o in ts.observation]))
                envs.check_timestep(ts, env.spec, 2)
                assert ts.info["success"].dtype == bool
                # ML test split: an episode terminates exactly when Meta-World reports success
                np.testing.assert_array_equal(ts.terminated, ts.info["success"])
                assert np.all(ts.info["episode_success"][ts.terminated])
                ended |= ts.terminated
                if ended.all():
                    break
        assert ended.all() and ts.info["episode_length"].max() < 150
    finally:
        env.close()


def test_evaluation_counts_success_at_any_step_as_meta_world_does():
    """Meta-World's methodology: an episode succeeds if ``info['success']`` is 1 at any step, not only the last.
    The expert reaches the goal, then the hand is driven up and away for the rest of the episode."""
    import jax
    from metaworld.policies import SawyerReachV3Policy

    from agents.common.trainer_utils import evaluate_host

    expert = SawyerReachV3Policy()
    env = envs.make("metaworld/MT1/reach-v3", num_envs=1, seed=0, max_episode_steps=120, **FAST)
    t = [0]

    def reach_then_leave(obs, key):  # [1, 39] -> [1, 4]
        t[0] += 1
        if t[0] <= 60:
            return np.stack([expert.get_action(o) for o in obs]).astype(np.float32)
        return np.array([[1.0, 1.0, 1.0, 0.0]], np.float32)  # 1 cm per step in x, y and z

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts, per_step = env.reset(seed=0), []
            while True:
                ts = env.step(reach_then_leave(ts.observation, None))
                per_step.append(bool(ts.info["success"][0]))
                if ts.done[0]:
                    break
            assert any(per_step) and not per_step[-1]  # succeeded, then left the goal
            assert envs.episode_success(ts)[0]
            t[0] = 0
            out = evaluate_host(env, reach_then_leave, 1, jax.random.PRNGKey(0), 120)
    finally:
        env.close()
    assert out["success_rate"] == 1.0


def test_async_matches_sync_and_leaves_no_processes():
    kwargs = dict(num_envs=2, seed=0, max_episode_steps=5, **FAST)
    sync = envs.make("metaworld/MT1/reach-v3", **kwargs)
    asy = envs.make("metaworld/MT1/reach-v3", vector_strategy="async", **kwargs)
    try:
        procs = list(asy._vec.processes)
        assert len(procs) == 2 and all(p.is_alive() for p in procs)
        assert _same(_rollout(sync, 11), _rollout(asy, 11))
    finally:
        sync.close()
        asy.close()
    asy.close()  # idempotent
    assert all(not p.is_alive() and p.exitcode is not None for p in procs)  # exited and reaped: no zombies
    assert not set(procs) & set(multiprocessing.active_children())
    with pytest.raises(RuntimeError, match="closed"):
        asy.reset()


def test_render_one_env_one_frame():
    env = envs.make("metaworld/MT1/reach-v3", num_envs=1, seed=0, width=64, height=48, **FAST)
    try:
        env.reset()
        frame = env.render()
        assert frame.shape == (1, 48, 64, 3) and frame.dtype == np.uint8
        assert frame.std() > 10  # a real picture, not a blank buffer
    finally:
        env.close()
