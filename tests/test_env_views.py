"""The gymnasium and PettingZoo views (envs.as_gymnasium / as_gymnasium_env / as_pettingzoo), checked by the
ecosystem's own checkers on real envs of every family, and against gymnasium's reference vector implementation."""
from __future__ import annotations

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import DictInfoToList

import envs

SHORT_TRAFFIC = {"episode_seconds": 30}  # 6 decisions per episode: episode ends are reached in a few steps


def _checked(env) -> list[str]:
    """Run gymnasium's check_env; return its warnings except the one about unbounded Box observations (the suite's
    specs leave bounds open where the simulator has none: CartPole velocities, Meta-World positions)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    return [str(w.message) for w in caught if "infinity" not in str(w.message)]


@pytest.mark.parametrize("env_id, options", [
    ("classic/CartPole-v1", {}),
    ("atari/Pong", {}),
    ("metaworld/MT1/reach-v3", {}),
    ("traffic/signal-1x1", SHORT_TRAFFIC),
])
def test_single_view_passes_gymnasium_check_env(env_id, options):
    env = envs.as_gymnasium_env(env_id, seed=0, **options)
    try:
        assert _checked(env) == []
        spec = envs.spec(env_id, **options)
        assert env.observation_space.shape == spec.observation.shape
        assert env.observation_space.dtype == np.dtype(spec.observation.dtype)
        if isinstance(spec.action, envs.DiscreteActionSpec):
            assert env.action_space == gymnasium.spaces.Discrete(spec.action.num_actions)
        else:
            assert env.action_space.shape == spec.action.shape
    finally:
        env.close()


def _rollout(env, actions, seed):
    """(obs, reward, terminated, truncated, final_obs per done env) of a vector env under fixed actions."""
    out = [env.reset(seed=seed)[0]]
    for a in actions:
        obs, rew, term, trunc, info = env.step(a)
        finals = [info["final_obs"][i] for i in np.flatnonzero(info.get("_final_obs", np.zeros(len(obs), bool)))]
        out.append((obs, rew, term, trunc, finals))
    return out


def test_vector_view_matches_gymnasiums_same_step_reference():
    """Our vector view == gymnasium's SyncVectorEnv(SAME_STEP) over our single view, step by step (several episode
    ends in 120 steps of a fixed action pattern), including info['final_obs'] on the episode-ending steps."""
    actions = [np.array([(t // 3) % 2]) for t in range(120)]
    ours = envs.as_gymnasium("classic/CartPole-v1", num_envs=1, seed=0)
    reference = SyncVectorEnv([lambda: envs.as_gymnasium_env("classic/CartPole-v1", seed=0)],
                              autoreset_mode=AutoresetMode.SAME_STEP)
    assert ours.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert ours.single_observation_space == reference.single_observation_space
    assert ours.action_space == reference.action_space
    a, b = _rollout(ours, actions, seed=7), _rollout(reference, actions, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    ends = 0
    for (oa, ra, ta, ua, fa), (ob, rb, tb, ub, fb) in zip(a[1:], b[1:]):
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(ua, ub)
        assert len(fa) == len(fb)
        for x, y in zip(fa, fb):
            np.testing.assert_array_equal(x, y)
        ends += len(fa)
    assert ends >= 3
    ours.close()
    reference.close()


def test_vector_view_episode_totals_and_contexts():
    """The suite's episode totals in info are the sums of the rewards the view returned (same-step autoreset: the
    step after an episode end is the new episode's first); per-env contexts come back in info['context'] in
    spec.context_vars order. (gymnasium 1.3's vector RecordEpisodeStatistics miscounts every same-step env by one
    step after the first episode: Gymnasium PR #1624, fixed after 1.3; so it is not used as the reference here.)"""
    lengths = [0.25, 0.5, 1.0, 2.0]
    env = envs.as_gymnasium("classic/CartPole-v1", num_envs=4, seed=1, context={"length": lengths})
    obs, info = env.reset(seed=1)
    assert obs.shape == (4, 4) and obs in env.observation_space
    length_col = envs.spec("classic/CartPole-v1").context_names.index("length")
    np.testing.assert_allclose(info["context"][:, length_col], lengths)
    rng = np.random.default_rng(0)
    running, steps, finished = np.zeros(4), np.zeros(4, int), 0
    for _ in range(80):
        obs, reward, term, trunc, info = env.step(rng.integers(0, 2, size=4))
        assert obs in env.observation_space
        running, steps = running + reward, steps + 1
        done = term | trunc
        if done.any():
            np.testing.assert_allclose(info["episode_return"][done], running[done])
            np.testing.assert_array_equal(info["episode_length"][done], steps[done])
            np.testing.assert_array_equal(np.stack(info["final_obs"][done]), info["final_observation"][done])
            running[done], steps[done] = 0.0, 0
            finished += int(done.sum())
        np.testing.assert_array_equal(info["task_id"], np.zeros(4, np.int32))
        np.testing.assert_allclose(info["context"][:, length_col], lengths)
    assert finished >= 8  # several episodes per env, so the boundaries after the first are covered
    listed = DictInfoToList(env)  # gymnasium's per-env info lists: final_obs only where the mask says so
    listed.reset(seed=0)
    for _ in range(40):
        _, _, term, trunc, infos = listed.step(np.zeros(4, np.int64))
        assert [("final_obs" in i) for i in infos] == list(term | trunc)
    env.close()


def test_registered_ids_work_through_gymnasium_make_and_make_vec():
    ids = envs.register_gymnasium()
    assert envs.register_gymnasium() == ids and "omnitask/metaworld.MT1.reach-v3" in ids  # idempotent, every family
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        single = gymnasium.make("omnitask/classic.CartPole-v1", seed=3, context={"length": 1.0})
        obs, info = single.reset(seed=0)
        single.step(single.action_space.sample())
        vec = gymnasium.make_vec("omnitask/classic.CartPole-v1", num_envs=3)  # default: the suite's vector view
        assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP and vec.reset(seed=0)[0].shape == (3, 4)
    assert [str(w.message) for w in caught if "infinity" not in str(w.message)] == []
    assert info["context"][envs.spec("classic/CartPole-v1").context_names.index("length")] == 1.0
    with pytest.raises(ValueError, match="no single-env gymnasium view"):
        gymnasium.make("omnitask/traffic.signal-2x2")
    single.close()
    vec.close()


def test_vector_view_of_a_grid_has_one_sub_env_per_signal():
    env = envs.as_gymnasium("traffic/signal-2x2", num_envs=4, seed=0, **SHORT_TRAFFIC)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 22) and obs in env.observation_space
    for _ in range(6):
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
    assert trunc.all() and info["_final_obs"].all()  # the 4 signals of the simulation end their episode together
    env.close()


def test_single_view_seeding_and_episode_boundaries():
    """reset(seed=s) is reproducible and seed-dependent; the step that ends an episode returns its last observation
    and the next reset() returns the first observation of the episode the batched env already started."""
    env = envs.as_gymnasium_env("classic/CartPole-v1", seed=0)
    first, _ = env.reset(seed=5)
    np.testing.assert_array_equal(env.reset(seed=5)[0], first)
    assert not np.array_equal(env.reset(seed=6)[0], first)
    vec = envs.as_gymnasium("classic/CartPole-v1", num_envs=1, seed=0)
    env.reset(seed=5)
    vec.reset(seed=5)
    for t in range(200):
        obs, reward, term, trunc, info = env.step(0)
        v_obs, _, v_term, v_trunc, v_info = vec.step(np.array([0]))
        assert isinstance(reward, float) and isinstance(term, bool) and isinstance(trunc, bool)
        if term or trunc:
            np.testing.assert_array_equal(obs, v_info["final_obs"][0])
            with pytest.raises(RuntimeError, match="episode is over"):
                env.step(0)
            np.testing.assert_array_equal(env.reset()[0], v_obs[0])
            break
        np.testing.assert_array_equal(obs, v_obs[0])
    else:
        pytest.fail("always pushing left never ended a CartPole episode in 200 steps")
    env.close()
    vec.close()


def test_pettingzoo_view_passes_parallel_api_test_with_signal_names():
    pettingzoo_test = pytest.importorskip("pettingzoo.test")
    env = envs.as_pettingzoo("traffic/signal-2x2", seed=0, **SHORT_TRAFFIC)
    assert env.possible_agents == ["J0_0", "J0_1", "J1_0", "J1_1"]  # the SUMO traffic-light ids
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pettingzoo_test.parallel_api_test(env, num_cycles=20)
    assert [str(w.message) for w in caught] == []
    env.close()


def test_pettingzoo_view_of_a_real_city_network():
    """RESCO cologne3: three real signals with different phase sets, named by their SUMO ids."""
    pettingzoo_test = pytest.importorskip("pettingzoo.test")
    env = envs.as_pettingzoo("traffic/resco/cologne3", seed=0, episode_seconds=200)
    assert env.possible_agents == ["360082", "360086", "GS_cluster_2415878664_254486231_359566_359576"]
    pettingzoo_test.parallel_api_test(env, num_cycles=30)
    env.close()


def test_pettingzoo_view_is_the_batched_env_split_by_agent():
    """Same seed, same actions: each agent's observation/reward/info is its row of the batched env's TimeStep."""
    pytest.importorskip("pettingzoo")
    view = envs.as_pettingzoo("traffic/signal-2x2", seed=3, **SHORT_TRAFFIC)
    batched = envs.make("traffic/signal-2x2", num_envs=4, seed=3, **SHORT_TRAFFIC)
    obs, infos = view.reset(seed=3)
    ts = batched.reset(seed=3)
    agents = view.possible_agents
    np.testing.assert_array_equal(np.stack([obs[a] for a in agents]), ts.observation)
    rng = np.random.default_rng(0)
    for _ in range(6):  # to the end of the 30 s episode
        act = rng.integers(0, 4, size=4)
        obs, rew, term, trunc, infos = view.step({a: int(act[k]) for k, a in enumerate(agents)})
        ts = batched.step(act)
        np.testing.assert_array_equal([rew[a] for a in agents], ts.reward)
        np.testing.assert_array_equal(np.stack([infos[a]["queue"] for a in agents]), ts.info["queue"])
        np.testing.assert_array_equal(np.stack([obs[a] for a in agents]), ts.info["final_observation"])
    assert all(trunc.values()) and view.agents == []
    next_obs, _ = view.reset()
    np.testing.assert_array_equal(np.stack([next_obs[a] for a in agents]), ts.observation)
    view.close()
    batched.close()


def test_pettingzoo_view_refuses_what_cannot_exist():
    pytest.importorskip("pettingzoo")
    with pytest.raises(ValueError, match="one agent per simulation.*as_gymnasium"):
        envs.as_pettingzoo("traffic/signal-1x1")
    with pytest.raises(ValueError, match="one agent per simulation"):
        envs.as_pettingzoo("classic/CartPole-v1")
    two_sims = envs.make("traffic/signal-2x2", num_envs=8, **SHORT_TRAFFIC)
    with pytest.raises(ValueError, match="2 simulations"):
        envs.as_pettingzoo(two_sims)
    with pytest.raises(ValueError, match="single-env view needs a batch of one env.*as_pettingzoo"):
        envs.as_gymnasium_env(two_sims)
    two_sims.close()
    grid = envs.as_pettingzoo("traffic/signal-2x2", **SHORT_TRAFFIC)
    with pytest.raises(RuntimeError, match="call reset"):
        grid.step({a: 0 for a in grid.possible_agents})
    grid.reset(seed=0)
    with pytest.raises(ValueError, match="one action per live agent"):
        grid.step({"J0_0": 0})
    with pytest.raises(TypeError, match="cannot be traced"):
        jax.jit(grid.step)({a: jnp.int32(0) for a in grid.possible_agents})
    grid.close()


def test_gymnasium_views_refuse_what_cannot_exist():
    with pytest.raises(ValueError, match="no single-env gymnasium view.*as_pettingzoo"):
        envs.as_gymnasium_env("traffic/signal-2x2")
    with pytest.raises(ValueError, match="num_envs must be 1"):
        envs.as_gymnasium("classic/CartPole-v1", num_envs=2, vector=False)
    from envs.classic import CLASSIC, classic_functions

    _, fns = classic_functions(CLASSIC["classic/CartPole-v1"])
    with pytest.raises(TypeError, match="pure JAX env functions"):
        envs.as_gymnasium(fns)
    with pytest.raises(ValueError, match="unknown environment id"):
        envs.as_gymnasium("classic/CartPol-v1")
    cartpole = envs.make("classic/CartPole-v1")
    with pytest.raises(ValueError, match="apply to an env id"):
        envs.as_gymnasium(cartpole, context={"length": 1.0})

    vec = envs.as_gymnasium("classic/CartPole-v1", num_envs=2)
    vec.reset(seed=0)
    with pytest.raises(TypeError, match="cannot be traced"):
        jax.jit(vec.step)(jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="one int or None"):
        vec.reset(seed=[0, 1])
    single = envs.as_gymnasium_env("classic/CartPole-v1")
    single.reset(seed=0)
    with pytest.raises(TypeError, match="cannot be traced"):
        jax.vmap(single.step)(jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match=r"action must have shape \(\)"):
        single.step(np.array([0]))
    for env in (vec, single, cartpole):
        env.close()
