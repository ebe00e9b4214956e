"""PVN unit tests: indicators, TD target, dataset formats, export, configs, trainer resume-ability."""
import gzip
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.pvn.dataset import (DQNReplayDataset, TransitionDataset, TransitionWriter, dqn_replay_filename,
                                replay_window, write_dqn_replay_checkpoint)
from agents.pvn.export import load_encoder, save_encoder
from agents.pvn.indicators import (HASH_PRIME, IndicatorConfig, firing_rates, hash_values,
                                   hash_values_reference, make_indicators)
from agents.pvn.losses import ema_update, pvn_td_loss, uniform_policy_targets
from agents.pvn.networks import EncoderConfig, EncoderSpec, PVNNetwork
from agents.pvn.pretrain import PretrainConfig, make_pretrainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "pvn"
SMALL = EncoderConfig(arch="minatar", width=1, feature_dim=16, padding="VALID", pixel_scale=1.0)


# ---------------------------------------------------------------------------------------------- indicators
def test_hash_matches_slow_reference_and_is_deterministic():
    rng = np.random.default_rng(0)
    a = rng.integers(1, HASH_PRIME, (7, 3 * 1024 + 17)).astype(np.int32)  # several 1024-pixel blocks + a tail
    b = rng.integers(0, HASH_PRIME, (7,)).astype(np.int32)
    frames = rng.integers(0, 256, (5, 3 * 1024 + 17), dtype=np.uint8)
    frames[0] = 255  # the overflow worst case for int32 partial sums
    a[0] = HASH_PRIME - 1
    fast = np.asarray(hash_values(jnp.asarray(a), jnp.asarray(b), jnp.asarray(frames), 100))
    np.testing.assert_array_equal(fast, hash_values_reference(a, b, frames, 100))
    again = np.asarray(hash_values(jnp.asarray(a), jnp.asarray(b), jnp.asarray(frames), 100))
    np.testing.assert_array_equal(fast, again)


def test_hash_family_fires_near_one_over_bins_and_refuses_float_pixels():
    cfg = IndicatorConfig(family="hash", hash_bins=10)
    ind = make_indicators(cfg, (6, 6, 3), num_tasks=8)
    state = ind.init(jax.random.PRNGKey(0))
    obs = np.random.default_rng(1).integers(0, 256, (4000, 6, 6, 3), dtype=np.uint8)
    rates = firing_rates(ind, state, [obs[:2000], obs[2000:]])
    assert rates.shape == (8,)
    assert np.all(np.abs(rates - 0.1) < 0.03), rates
    with pytest.raises(ValueError, match="uint8"):
        ind.fire(state, jnp.zeros((1, 6, 6, 3), jnp.float32))


def test_rnd_thresholds_reach_target_fire_fraction_after_warmup():
    cfg = PretrainConfig(num_tasks=12, encoder=SMALL, batch_size=128, warmup_steps=400, num_updates=400,
                         indicators=IndicatorConfig(family="rnd", fire_fraction=0.05, tasks_per_net=5,
                                                    net=SMALL, threshold_lr=0.05))
    pre = make_pretrainer(cfg, (10, 10, 2), num_actions=3)
    state = pre.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    data = rng.integers(0, 2, (20_000, 10, 10, 2), dtype=np.uint8)
    batch = {"observation": None, "next_observation": None, "action": np.zeros((40, 128), np.int32),
             "terminated": np.zeros((40, 128), bool)}
    update = jax.jit(pre.update_many)
    for _ in range(10):
        obs = data[rng.integers(0, len(data), (40, 128))]
        state, m = update(state, dict(batch, observation=obs, next_observation=obs))
    assert float(m["td_active"]) == 0.0  # still warming up: no TD yet
    rates = firing_rates(pre.indicators, state.indicator, [data[:10_000], data[10_000:]])
    assert rates.shape == (12,)
    assert abs(rates.mean() - 0.05) < 0.01 and rates.min() > 0.02 and rates.max() < 0.09, rates


def test_indicator_config_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match="allowed: rnd, hash"):
        IndicatorConfig(family="rand")
    with pytest.raises(ValueError, match="fire_fraction"):
        IndicatorConfig(fire_fraction=1.5)
    with pytest.raises(ValueError, match="allowed: nature, impala, minatar"):
        EncoderConfig(arch="resnet")


# ---------------------------------------------------------------------------------------------- losses
def test_uniform_policy_td_target_matches_hand_computation():
    rewards = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # [B=2, T=2]
    terminated = jnp.array([False, True])
    next_q = jnp.array([[[1.0, 3.0, 5.0], [0.0, 0.0, 6.0]],  # [B, T, A=3]
                        [[9.0, 9.0, 9.0], [4.0, 4.0, 4.0]]])
    y = uniform_policy_targets(rewards, terminated, next_q, gamma=0.5)
    # x0: r + 0.5 * mean_a Q  -> task0 1 + 0.5*3 = 2.5; task1 0 + 0.5*2 = 1.0. x1 terminal: y = r.
    np.testing.assert_allclose(np.asarray(y), [[2.5, 1.0], [0.0, 1.0]])
    q = jnp.array([[[2.5, 0.0, 0.0], [0.0, 3.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    loss = pvn_td_loss(q, jnp.array([0, 2]), y)
    # errors: (2.5-2.5), (0-1.0), (0-0), (1-1) -> mean of squares = 1/4
    np.testing.assert_allclose(float(loss), 0.25)
    t = ema_update({"w": jnp.array([1.0])}, {"w": jnp.array([3.0])}, 0.99)
    np.testing.assert_allclose(np.asarray(t["w"]), [1.02], rtol=1e-6)


def test_update_many_of_one_batch_is_the_scanned_update():
    """K = 1 skips the scan (XLA:CPU runs a CNN update ~9x slower inside one); the result is the scan's."""
    cfg = PretrainConfig(num_tasks=6, encoder=SMALL, batch_size=8, warmup_steps=0, num_updates=4,
                         indicators=IndicatorConfig(family="hash"))
    pre = make_pretrainer(cfg, (10, 10, 2), num_actions=3)
    state = pre.init(jax.random.PRNGKey(1))
    rng = np.random.default_rng(1)
    batch = {"observation": rng.integers(0, 2, (1, 8, 10, 10, 2), dtype=np.uint8),
             "next_observation": rng.integers(0, 2, (1, 8, 10, 10, 2), dtype=np.uint8),
             "action": rng.integers(0, 3, (1, 8)).astype(np.int32), "terminated": np.zeros((1, 8), bool)}
    direct, m_direct = jax.jit(pre.update_many)(state, batch)
    scanned, m_scan = jax.jit(lambda s, b: jax.lax.scan(pre.update, s, b))(state, batch)
    assert float(m_direct["td_active"]) == 1.0 and int(direct.step) == 1
    for a, b in zip(jax.tree.leaves(direct), jax.tree.leaves(scanned)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for k in m_direct:
        np.testing.assert_allclose(float(m_direct[k]), float(m_scan[k][0]), rtol=1e-5, atol=1e-6)


def test_td_targets_refuse_wrong_shapes():
    with pytest.raises(ValueError, match=r"want \[B, T, A\]"):
        uniform_policy_targets(jnp.zeros((2, 3)), jnp.zeros((2,), bool), jnp.zeros((2, 3)), 0.9)


def test_pvn_network_shapes_and_heads_per_task():
    for arch, shape in (("nature", (36, 36, 4)), ("impala", (24, 24, 4)), ("minatar", (10, 10, 4))):
        spec = EncoderSpec(arch=arch, width=1, feature_dim=32, padding="VALID" if arch != "minatar" else "SAME")
        net = PVNNetwork(spec, num_tasks=5, num_actions=4)
        params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape), jnp.uint8))
        q = net.apply(params, jnp.zeros((3, *shape), jnp.uint8))
        assert q.shape == (3, 5, 4), (arch, q.shape)
        feats = net.apply(params, jnp.zeros((3, *shape), jnp.uint8), method=PVNNetwork.features)
        assert feats.shape == (3, 32) and float(feats.min()) >= 0.0  # ReLU features


# ---------------------------------------------------------------------------------------------- datasets
def _transitions(n, rng, obs_shape=(4, 4, 2)):
    return {"observation": rng.integers(0, 256, (n, *obs_shape), dtype=np.uint8),
            "action": rng.integers(0, 3, n).astype(np.int32), "reward": rng.normal(size=n).astype(np.float32),
            "terminated": rng.random(n) < 0.1, "truncated": rng.random(n) < 0.05,
            "next_observation": rng.integers(0, 256, (n, *obs_shape), dtype=np.uint8)}


def test_suite_dataset_round_trip_and_streaming(tmp_path):
    rng = np.random.default_rng(0)
    data = _transitions(1050, rng)
    root = tmp_path / "ds"
    with TransitionWriter(str(root), chunk_size=100) as w:
        for i in range(0, 1050, 70):  # adds that straddle chunk boundaries
            w.add({k: v[i:i + 70] for k, v in data.items()})
    meta = json.loads((root / "meta.json").read_text())
    assert meta["num_transitions"] == 1050 and len(meta["chunks"]) == 11
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]  # atomic: no temporaries left behind
    ds = TransitionDataset(str(root))
    back = {k: np.concatenate([c[k] for c in ds.iter_chunks()]) for k in data}
    for k in data:
        np.testing.assert_array_equal(back[k], data[k])
    # streaming: batches come from a bounded window of chunks, every row is a real transition
    it = ds.iter_batches(batch_size=32, seed=1, chunks_in_memory=2)
    index = {data["observation"][i].tobytes(): i for i in range(1050)}
    for _ in range(50):
        b = next(it)
        rows = [index[o.tobytes()] for o in b["observation"]]
        np.testing.assert_array_equal(b["action"], data["action"][rows])
        np.testing.assert_array_equal(b["next_observation"], data["next_observation"][rows])
    assert ds.max_resident_chunks == 2
    s1 = ds.sample(np.random.default_rng([0, 5]), 16, 3, chunks_in_memory=3)
    s2 = ds.sample(np.random.default_rng([0, 5]), 16, 3, chunks_in_memory=3)
    assert s1["observation"].shape == (3, 16, 4, 4, 2)
    np.testing.assert_array_equal(s1["observation"], s2["observation"])  # pure function of the generator
    # appending reopens the dataset and continues the chunk numbering
    with TransitionWriter(str(root), chunk_size=100) as w:
        w.add({k: v[:30] for k, v in data.items()})
    assert TransitionDataset(str(root)).num_transitions == 1080


def test_dataset_writer_refuses_bad_batches(tmp_path):
    w = TransitionWriter(str(tmp_path / "ds"), chunk_size=10)
    good = _transitions(5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="missing fields"):
        w.add({k: v for k, v in good.items() if k != "reward"})
    with pytest.raises(ValueError, match="uint8 pixels"):
        w.add(dict(good, observation=good["observation"] / 3.0))
    w.add(good)
    with pytest.raises(ValueError, match="differ from the dataset"):
        w.add(_transitions(5, np.random.default_rng(1), obs_shape=(3, 3, 2)))
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        TransitionDataset(str(tmp_path / "nothing"))


def test_dqn_replay_layout_reader(tmp_path):
    n = 40
    frames = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 6, 6), np.uint8)  # frame i is all i
    terminal = np.zeros(n, np.uint8)
    terminal[[9, 25]] = 1
    arrays = {"observation": frames, "action": np.arange(n) % 4, "reward": np.arange(n, dtype=np.float32),
              "terminal": terminal}
    write_dqn_replay_checkpoint(str(tmp_path), 3, arrays)
    assert (tmp_path / dqn_replay_filename("observation", 3)).is_file()
    with gzip.open(tmp_path / "$store$_terminal_ckpt.3.gz") as f:  # the published layout: gzipped np.save
        np.testing.assert_array_equal(np.load(f), terminal)
    ds = DQNReplayDataset(str(tmp_path))
    assert ds.checkpoints == [3]
    data = ds.load_checkpoint(3)
    valid = ds.valid_indices(data)
    # stacks may not contain a frame that ended an earlier episode: 10..12 (after terminal 9) and 26..28 are out
    assert not set(valid) & {10, 11, 12, 26, 27, 28} and {3, 9, 13, 25, 29, 38} <= set(valid)
    assert valid.max() == n - 2
    tr = ds.transitions(data, np.array([13, 9]))
    assert tr["observation"].shape == (2, 6, 6, 4)
    np.testing.assert_array_equal(tr["observation"][0, 0, 0], [10, 11, 12, 13])
    np.testing.assert_array_equal(tr["next_observation"][0, 0, 0], [11, 12, 13, 14])
    np.testing.assert_array_equal(tr["terminated"], [False, True])
    np.testing.assert_array_equal(tr["action"], [13 % 4, 9 % 4])
    b = ds.sample(np.random.default_rng(0), 8, 2, checkpoints=3)
    assert b["observation"].shape == (2, 8, 6, 6, 4)
    # every sampled stack is 4 consecutive frames
    stacks = b["observation"][..., 0, 0, :].reshape(-1, 4).astype(int)
    assert np.all(np.diff(stacks, axis=1) == 1)
    with pytest.raises(ValueError, match="available: \\[3\\]"):
        DQNReplayDataset(str(tmp_path), checkpoints=[0])


def test_dqn_replay_pretraining_draws_a_shuffled_mixture_from_every_checkpoint(tmp_path):
    """Ten checkpoints whose frames carry their checkpoint id: the trainer's batches mix several checkpoints per batch,
    and a budget shorter than reading them one after another still draws from all ten (the last ones included)."""
    for c in range(10):
        frames = np.full((30, 6, 6), 10 * c + 5, np.uint8)  # every pixel of checkpoint c is 10c + 5
        write_dqn_replay_checkpoint(str(tmp_path), c, {"observation": frames, "action": np.zeros(30, np.int32),
                                                       "reward": np.zeros(30, np.float32),
                                                       "terminal": np.zeros(30, np.uint8)})
    ds = DQNReplayDataset(str(tmp_path))
    seen, per_batch = set(), []
    for step in range(0, 6 * 5, 5):  # 6 calls of 5 updates, the window moves every 10 updates
        window = replay_window(ds.checkpoints, step, seed=0, window=4, updates_per_window=10)
        assert len(window) == 4 and len(set(window)) == 4
        b = ds.sample(np.random.default_rng([0, step]), 16, 5, window)
        ids = (b["observation"][..., 0, 0, 0].astype(int) - 5) // 10  # [5, 16] checkpoint of each row
        assert set(np.unique(ids)) <= set(window)
        per_batch.append(max(len(np.unique(row)) for row in ids))
        seen |= set(np.unique(ids).tolist())
    assert seen == set(range(10)), seen  # 3 windows x 4 >= 10: every checkpoint, not only the first ones
    assert min(per_batch) >= 3  # a batch mixes checkpoints (4 in the window), it does not read one at a time
    assert len(ds._cache) <= 4  # only the window is held in memory
    # epochs reshuffle, and the order is a pure function of (seed, step): exact resume
    w_epoch0 = [replay_window(list(range(10)), s, 0, 4, 10) for s in range(0, 30, 10)]
    w_epoch1 = [replay_window(list(range(10)), s, 0, 4, 10) for s in range(30, 60, 10)]
    assert w_epoch0 != w_epoch1 and w_epoch0 == [replay_window(list(range(10)), s, 0, 4, 10) for s in range(0, 30, 10)]


# ---------------------------------------------------------------------------------------------- export
def test_encoder_export_round_trip(tmp_path):
    spec = SMALL.spec()
    from agents.pvn.networks import Encoder
    params = Encoder(spec).init(jax.random.PRNGKey(3), jnp.zeros((1, 10, 10, 4), jnp.uint8))
    save_encoder(tmp_path / "enc", spec, params, (10, 10, 4), source="test")
    loaded = load_encoder(tmp_path / "enc")
    obs = jnp.asarray(np.random.default_rng(0).integers(0, 2, (5, 10, 10, 4)), jnp.uint8)
    np.testing.assert_allclose(np.asarray(loaded.features(obs)),
                               np.asarray(Encoder(spec).apply(params, obs)), rtol=1e-6)
    assert loaded.meta["feature_dim"] == 16 and loaded.spec == spec
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        load_encoder(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_configs_load(path):
    from omnitask.config import load_config
    cfg = load_config(path)
    assert cfg.agent == "pvn"
    cfg.pvn.pretrain.encoder.spec()


def test_config_errors_are_clear():
    from omnitask.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="valid keys here"):
        load_config(CONFIGS / "minatar_breakout_cpu.yaml", ["pvn.pretrain.num_taks=5"])
    with pytest.raises(ValueError, match="allowed: random_linear, dqn"):  # ConfigError is a ValueError
        load_config(CONFIGS / "minatar_breakout_cpu.yaml", ["pvn.baselines=[ppo]"])


# ---------------------------------------------------------------------------------------------- Atari path
def test_atari_config_pretrains_from_dqn_replay_layout(tmp_path):
    """The reference Atari config (shrunk) pretrains on DQN-Replay-layout files and exports the encoder; the
    online phase on a host env is refused with a message that says what was done and what is missing."""
    pytest.importorskip("ale_py")
    from omnitask.config import load_config
    from agents.pvn.trainer import PVNTrainer
    n, rng = 300, np.random.default_rng(0)
    write_dqn_replay_checkpoint(str(tmp_path / "replay"), 0, {
        "observation": rng.integers(0, 256, (n, 84, 84), dtype=np.uint8), "action": rng.integers(0, 6, n),
        "reward": np.zeros(n, np.float32), "terminal": (rng.random(n) < 0.02).astype(np.uint8)})
    cfg = load_config(CONFIGS / "atari_pong_reference_hash.yaml", [
        f"pvn.data.path={tmp_path / 'replay'}", "pvn.pretrain.encoder.width=1", "pvn.pretrain.encoder.feature_dim=32",
        "pvn.pretrain.batch_size=8", "pvn.pretrain.num_updates=4", "pvn.pretrain.updates_per_call=2",
        "pvn.fire_rate_transitions=50", "pvn.eval.replay_capacity=400", "pvn.eval.min_replay=64"])
    trainer = PVNTrainer(cfg, tmp_path / "run")
    state = trainer.init(jax.random.PRNGKey(0))
    phases = []
    for _ in range(3):
        state, metrics, env_steps = trainer.train_step(state)
        phases.append(int(state["phase"]))
        assert env_steps == 0
    assert phases == [1, 1, 2] and np.isfinite(metrics["pretrain/td_loss"])
    assert 0.0 <= metrics["pretrain/fire_rate_mean"] <= 0.1
    assert load_encoder(tmp_path / "run" / "encoder").meta["feature_dim"] == 32
    trainer.close()  # the host online phase itself is tested in tests/test_pvn_atari.py


def test_trainer_state_checkpoints_and_resumes_exactly(tmp_path):
    """Every phase's state round-trips through the run loop's orbax checkpoints, and the step after a restore
    equals the step without one (pretraining batches are a pure function of (seed, update step))."""
    from omnitask.checkpoint import Checkpoints
    from omnitask.config import load_config
    from agents.pvn.trainer import PVNTrainer
    cfg = load_config(CONFIGS / "minatar_breakout_cpu.yaml", [
        "env.num_envs=4", "pvn.data.collect_transitions=3000", "pvn.data.chunk_size=1000",
        "pvn.pretrain.num_tasks=10", "pvn.pretrain.encoder.feature_dim=16", "pvn.pretrain.num_updates=4",
        "pvn.pretrain.updates_per_call=2", "pvn.pretrain.warmup_steps=2", "pvn.pretrain.batch_size=16",
        "pvn.eval.replay_capacity=400", "pvn.eval.min_replay=40", "pvn.eval.batch_size=8",
        "pvn.eval.iterations_per_call=20", "pvn.baselines=[random_linear]", "pvn.fire_rate_transitions=200",
        "pvn.pretrain.indicators.score_cache=always"])  # pretraining reads the indicator score cache
    trainer = PVNTrainer(cfg, tmp_path / "run")
    state = trainer.init(jax.random.PRNGKey(0))
    for _ in range(3):  # collect, pretrain (2 calls: warm-up then TD) -> online phase
        state, _, _ = trainer.train_step(state)
    assert int(state["phase"]) == 2
    assert sorted(p.name for p in (tmp_path / "run" / "indicator_scores").glob("*.json"))[0] == "chunk_000000.json"
    state, _, n = trainer.train_step(state)
    assert n == 20 * 4
    ckpts = Checkpoints(tmp_path / "run")
    ckpts.save(n, state, {"env_steps": n})
    restored, _ = ckpts.restore(trainer.init(jax.random.PRNGKey(1)))
    ckpts.close()
    a, ma, _ = trainer.train_step(state)
    b, mb, _ = trainer.train_step(jax.tree.map(jnp.asarray, restored))
    assert ma == mb
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
