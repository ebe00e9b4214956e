"""The indicator score cache (agents.pvn.score_cache) on REAL Atari frames: pretraining updates that read cached
scores equal, bit for bit, the updates that score each batch on the fly; sidecars are reused by a fresh cache
(as after a restart) and a cache of other nets or of other data is refused."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents.pvn.dataset import TransitionDataset, TransitionWriter
from agents.pvn.indicators import IndicatorConfig
from agents.pvn.networks import EncoderConfig
from agents.pvn.pretrain import PretrainConfig, make_pretrainer
from agents.pvn.score_cache import SCORES_KEY, ScoreCache, cache_enabled, make_score_cache

# the reference's indicator net (Nature conv stack, SAME padding); a small torso keeps the test cheap
NET = EncoderConfig(arch="nature", width=1, feature_dim=10, padding="SAME", pixel_scale=255.0)
TORSO = EncoderConfig(arch="minatar", width=1, feature_dim=16, padding="VALID", pixel_scale=255.0)
BATCH = 32


@pytest.fixture(scope="module")
def pong(tmp_path_factory):
    """240 real Pong transitions (uniform-random policy) in 3 chunks, and a pretrainer with 10 rnd tasks."""
    root = tmp_path_factory.mktemp("pong")
    env = envs.make("atari/Pong", num_envs=2, seed=0, protocol="dqn", mode="train")
    rng = np.random.default_rng(0)
    obs = np.array(env.reset(seed=0).observation)
    with TransitionWriter(str(root / "dataset"), 100) as writer:
        for _ in range(120):
            actions = rng.integers(0, env.spec.action.num_actions, 2).astype(np.int32)
            ts = env.step(actions)
            writer.add_timestep(obs, actions, ts)
            obs = np.array(ts.observation)
    env.close()
    cfg = PretrainConfig(num_tasks=10, encoder=TORSO, batch_size=BATCH, warmup_steps=2,
                         indicators=IndicatorConfig(family="rnd", fire_fraction=0.05, tasks_per_net=10, net=NET,
                                                    threshold_lr=1e-2))
    ds = TransitionDataset(str(root / "dataset"))
    pre = make_pretrainer(cfg, ds.observation_shape, 6)
    return root, ds, cfg, pre, jax.jit(pre.init)(jax.random.PRNGKey(0))


def test_cached_scores_give_the_same_updates_as_scoring_on_the_fly(pong):
    root, ds, cfg, pre, state = pong
    cache = make_score_cache(pre.indicators, cfg.indicators, cfg.num_tasks, ds.observation_shape, state.indicator,
                             str(root / "scores"), BATCH)
    update_many = jax.jit(pre.update_many)
    cached, live = state, state
    for step in range(2):  # warm-up (2 quantile-only updates), then 2 with TD: both paths of the update
        with_scores = ds.sample(np.random.default_rng([0, step]), BATCH, 2, 2, scores=cache)
        plain = ds.sample(np.random.default_rng([0, step]), BATCH, 2, 2)
        assert set(with_scores) == set(plain) | {SCORES_KEY}
        cached, m_cached = update_many(cached, {k: jnp.asarray(v) for k, v in with_scores.items()})
        live, m_live = update_many(live, {k: jnp.asarray(v) for k, v in plain.items()})
        assert {k: float(v) for k, v in m_cached.items()} == {k: float(v) for k, v in m_live.items()}
    assert int(cached.step) == 4 and float(m_live["td_active"]) == 1.0
    for a, b in zip(jax.tree.leaves(cached), jax.tree.leaves(live)):  # bit-identical, thresholds included
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert cache.scored_transitions == ds.num_transitions  # every chunk scored exactly once

    # a fresh cache (a restarted run) reads the sidecars: no scoring, the same rows
    again = make_score_cache(pre.indicators, cfg.indicators, cfg.num_tasks, ds.observation_shape, state.indicator,
                             str(root / "scores"), BATCH)
    batch = ds.sample(np.random.default_rng([0, 1]), BATCH, 2, 2, scores=again)
    np.testing.assert_array_equal(batch[SCORES_KEY], ds.sample(np.random.default_rng([0, 1]), BATCH, 2, 2,
                                                                scores=cache)[SCORES_KEY])
    assert again.scored_transitions == 0

    # other nets (another seed): refused, never used
    foreign = jax.jit(pre.init)(jax.random.PRNGKey(1)).indicator
    other = make_score_cache(pre.indicators, cfg.indicators, cfg.num_tasks, ds.observation_shape, foreign,
                             str(root / "scores"), BATCH)
    with pytest.raises(ValueError, match="other indicator nets.*score_cache=never"):
        ds.sample(np.random.default_rng(0), BATCH, 1, 3, scores=other)
    # other data under a chunk's name (stale): refused
    chunk = ds.load_chunk(0)["observation"]
    fresh = ScoreCache(again.directory, again.key, lambda obs: pytest.fail("must not score"), BATCH)
    with pytest.raises(ValueError, match="stale"):
        fresh.scores("chunk_000001", 100, lambda idx: chunk[idx])


def test_score_cache_modes():
    assert cache_enabled("auto", "rnd", 8.0) and cache_enabled("auto", "rnd", None)
    assert not cache_enabled("auto", "rnd", 0.8)  # scoring every stored transition would cost more
    assert cache_enabled("always", "rnd", 0.8) and not cache_enabled("never", "rnd", 8.0)
    assert not cache_enabled("auto", "hash", 8.0)
    with pytest.raises(ValueError, match="needs family rnd"):
        cache_enabled("always", "hash", 8.0)
    with pytest.raises(ValueError, match="allowed: auto, always, never"):
        IndicatorConfig(score_cache="yes")
