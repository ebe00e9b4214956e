"""PVN on a host-simulator env (Atari Pong, dqn protocol): collect -> pretrain -> export -> online linear Q on the
frozen encoder (the DQN baseline's host loop, ``agents.pvn.host``) -> evaluation. CI-sized (~tens of seconds)."""
from pathlib import Path

import jax
import numpy as np
import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "pvn"


def _leaves(tree):
    return [np.array(x) for x in jax.tree.leaves(tree)]  # host copies (the online step donates its state)


def test_pvn_atari_host_online_phase_trains_head_only_and_evaluates(tmp_path):
    pytest.importorskip("ale_py")
    from omnitask.config import load_config
    from agents.pvn.export import load_encoder
    from agents.pvn.host import HostLearner
    from agents.pvn.trainer import PVNTrainer

    cfg = load_config(CONFIGS / "atari_pong_cpu_smoke.yaml", [
        "env.num_envs=2", "env.eval_options.max_episode_frames=400", "pvn.data.collect_transitions=300",
        "pvn.data.chunk_size=300", "pvn.pretrain.num_tasks=10", "pvn.pretrain.encoder.feature_dim=32",
        "pvn.pretrain.indicators.net.feature_dim=16", "pvn.pretrain.batch_size=8", "pvn.pretrain.num_updates=4",
        "pvn.pretrain.warmup_steps=2", "pvn.pretrain.updates_per_call=2", "pvn.fire_rate_transitions=100",
        "pvn.eval.replay_capacity=400", "pvn.eval.min_replay=64", "pvn.eval.batch_size=8",
        "pvn.eval.update_period=2", "pvn.eval.iterations_per_call=100", "pvn.eval.target_update_period=10",
        "pvn.eval.eps_decay_steps=200", "pvn.baselines=[random_linear,dqn]", "pvn.eval.feature_norm=standardize",
        "pvn.eval.feature_norm_states=100"])
    trainer = PVNTrainer(cfg, tmp_path / "run")
    assert trainer.host_env and trainer.names == ["pvn_linear", "random_linear", "dqn"]
    state = trainer.init(jax.random.PRNGKey(0))
    phases = []
    for _ in range(3):  # collect, then 2 pretraining calls (warm-up, TD) -> online phase
        state, metrics, n = trainer.train_step(state)
        phases.append(int(state["phase"]))
        assert n == 0
    assert phases == [1, 1, 2] and np.isfinite(metrics["pretrain/td_loss"])
    assert (tmp_path / "run" / "dataset" / "meta.json").exists()

    # the pretrained (exported) encoder is the online learner's torso
    exported = load_encoder(tmp_path / "run" / "encoder")
    learner = state["learners"]["pvn_linear"]
    enc0 = _leaves(HostLearner.encoder_params(learner))
    for a, b in zip(enc0, _leaves(exported.params)):
        np.testing.assert_array_equal(a, b)
    head0 = _leaves(HostLearner.head_params(learner))

    # feature_norm=standardize: each frozen learner's features are standardised by its own encoder's statistics on
    # dataset states (identity at init); the end-to-end DQN has no such params
    torsos = {name: state["learners"][name].train_state.params["params"]["torso"] for name in trainer.names}
    assert "feature_mean" not in torsos["dqn"] and "feature_scale" not in torsos["dqn"]
    norm0 = {name: (np.array(torsos[name]["feature_mean"]), np.array(torsos[name]["feature_scale"]))
             for name in ("pvn_linear", "random_linear")}
    for mean, scale in norm0.values():
        assert mean.shape == scale.shape == (32,) and np.all(scale > 0) and np.any(mean != 0) and np.any(scale != 1)
    assert not np.array_equal(norm0["pvn_linear"][0], norm0["random_linear"][0])
    _check_standardised(state["learners"]["pvn_linear"], trainer)

    random0 = _leaves(HostLearner.encoder_params(state["learners"]["random_linear"]))
    dqn0 = _leaves(HostLearner.encoder_params(state["learners"]["dqn"]))
    total = 0
    for _ in range(2):
        state, metrics, n = trainer.train_step(state)
        total += n
    assert total == 2 * 100 * 2
    # frozen encoders: the replay holds 32-d encoder features (DQN's store_features hook) and Adam's state covers
    # the linear head only; the end-to-end DQN keeps pixels and trains its encoder
    for name in ("pvn_linear", "random_linear"):
        replay = state["learners"][name].replay
        assert replay.obs.shape[2:] == (32,) and replay.next_obs.shape[2:] == (32,), name
        opt_leaves = sum(x.size for x in jax.tree.leaves(state["learners"][name].train_state.opt_state))
        head_size = sum(x.size for x in jax.tree.leaves(HostLearner.head_params(state["learners"][name])))
        assert opt_leaves < 3 * head_size + 10, name  # Adam's mu and nu over the head, plus a counter
    assert state["learners"]["dqn"].replay.obs.shape[2:] == (84, 84, 4)
    for a, b in zip(random0, _leaves(HostLearner.encoder_params(state["learners"]["random_linear"]))):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(
        dqn0, _leaves(HostLearner.encoder_params(state["learners"]["dqn"])))), "end-to-end DQN left its encoder"
    for name in ("random_linear", "dqn"):
        assert int(state["learners"][name].env_steps) == total and np.isfinite(metrics[f"{name}/loss/td"])
    learner = state["learners"]["pvn_linear"]
    assert int(learner.train_state.num_updates) > 0 and int(learner.env_steps) == total
    assert np.isfinite(metrics["pvn_linear/loss/td"]) and metrics["pvn_linear/updates_fraction"] > 0
    enc1, head1 = _leaves(HostLearner.encoder_params(learner)), _leaves(HostLearner.head_params(learner))
    assert any(not np.array_equal(a, b) for a, b in zip(head0, head1)), "linear head did not learn"
    for a, b in zip(enc0, enc1):  # frozen: bit-for-bit unchanged (online and target networks)
        np.testing.assert_array_equal(a, b)
    for a, b in zip(enc0, _leaves({"params": learner.train_state.target_params["params"]["torso"]["encoder"]})):
        np.testing.assert_array_equal(a, b)

    for name, (mean, scale) in norm0.items():  # frozen with the encoder, online and target networks
        for params in (state["learners"][name].train_state.params, state["learners"][name].train_state.target_params):
            np.testing.assert_array_equal(np.array(params["params"]["torso"]["feature_mean"]), mean)
            np.testing.assert_array_equal(np.array(params["params"]["torso"]["feature_scale"]), scale)

    out = trainer.evaluate(state, 2, jax.random.PRNGKey(1))
    for k in ("return_mean", "return_std", "length_mean", "episodes", "return_mean/pvn_linear"):
        assert k in out and np.isfinite(out[k]), (k, out)
    assert out["episodes"] == 2 and out["return_mean"] == out["return_mean/pvn_linear"]
    assert np.isfinite(out["return_mean/random_linear"]) and np.isfinite(out["return_mean/dqn"])
    trainer.close()


def _check_standardised(learner, trainer) -> None:
    """Re-standardising with stats measured on some frames gives features of mean 0 and SD 1 there (live units)."""
    from agents.dqn.agent import frozen_torso
    from agents.pvn.evaluate import encoder_params, feature_norm_stats, with_feature_norm
    obs = next(iter(trainer.dataset().iter_chunks()))["observation"][:64]
    mean, scale = feature_norm_stats(trainer.pcfg.pretrain.encoder.spec(), encoder_params(learner), obs, batch=40)
    learner = with_feature_norm(learner, mean, scale)
    network = trainer.learners["pvn_linear"].agent.network
    feats = np.asarray(frozen_torso(network, trainer.spec.action.num_actions).features(
        learner.train_state.params, obs))  # [64, 32]
    live = np.std(feats, axis=0) > 1e-3
    assert live.sum() >= 8
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(feats.std(axis=0)[live], 1.0, rtol=1e-3)


def test_pvn_atari_reference_config_from_dqn_replay_layout_runs_online_with_fine_tuning(tmp_path):
    """The paper-scale Atari config (shrunk) pretrains on DQN-Replay-layout files, then runs the host online
    phase; with ``pvn.eval.fine_tune=true`` the encoder is trained together with the head."""
    pytest.importorskip("ale_py")
    from omnitask.config import load_config
    from agents.pvn.dataset import write_dqn_replay_checkpoint
    from agents.pvn.host import HostLearner
    from agents.pvn.trainer import PVNTrainer

    n, rng = 300, np.random.default_rng(0)
    write_dqn_replay_checkpoint(str(tmp_path / "replay"), 0, {
        "observation": rng.integers(0, 256, (n, 84, 84), dtype=np.uint8), "action": rng.integers(0, 6, n),
        "reward": np.zeros(n, np.float32), "terminal": (rng.random(n) < 0.02).astype(np.uint8)})
    cfg = load_config(CONFIGS / "atari_pong_reference_rnd.yaml", [
        f"pvn.data.path={tmp_path / 'replay'}", "env.num_envs=2", "pvn.pretrain.num_tasks=10",
        "pvn.pretrain.encoder.arch=nature", "pvn.pretrain.encoder.padding=VALID",
        "pvn.pretrain.encoder.width=1", "pvn.pretrain.encoder.feature_dim=32",
        "pvn.pretrain.indicators.net.feature_dim=16", "pvn.pretrain.batch_size=8", "pvn.pretrain.num_updates=4",
        "pvn.pretrain.warmup_steps=2", "pvn.pretrain.updates_per_call=2", "pvn.fire_rate_transitions=50",
        "pvn.eval.fine_tune=true", "pvn.eval.replay_capacity=400", "pvn.eval.min_replay=64",
        "pvn.eval.batch_size=8", "pvn.eval.update_period=2", "pvn.eval.iterations_per_call=60"])
    trainer = PVNTrainer(cfg, tmp_path / "run")
    state = trainer.init(jax.random.PRNGKey(0))
    for _ in range(3):  # source dqn_replay: the collect phase only validates the path
        state, metrics, n = trainer.train_step(state)
        assert n == 0
    assert int(state["phase"]) == 2 and (tmp_path / "run" / "encoder" / "encoder.json").exists()
    enc0 = _leaves(HostLearner.encoder_params(state["learners"]["pvn_linear"]))
    state, metrics, n = trainer.train_step(state)
    assert n == 60 * 2 and metrics["pvn_linear/updates"] > 0 and np.isfinite(metrics["pvn_linear/loss/td"])
    enc1 = _leaves(HostLearner.encoder_params(state["learners"]["pvn_linear"]))
    assert any(not np.array_equal(a, b) for a, b in zip(enc0, enc1)), "fine_tune=true left the encoder unchanged"
    trainer.close()


def test_eval_preset_reference_is_the_reference_protocol_on_atari(tmp_path):
    """``pvn.eval.preset: reference`` = google-research pvn's Acme evaluation: constant epsilon 0.01, 2k warm-up,
    gradient clipping 10, no sticky actions (train and eval envs); 'omnitask' keeps the fields as given."""
    pytest.importorskip("ale_py")
    from omnitask.config import load_config
    from agents.pvn.evaluate import LinearEvalConfig
    from agents.pvn.host import dqn_config_from_eval
    from agents.pvn.trainer import PVNTrainer

    ref = dqn_config_from_eval(LinearEvalConfig(preset="reference"), num_envs=4)
    assert (ref.epsilon_start, ref.epsilon_end, ref.learning_starts, ref.max_grad_norm) == (0.01, 0.01, 2000, 10.0)
    own = dqn_config_from_eval(LinearEvalConfig(), num_envs=4)
    assert (own.epsilon_start, own.epsilon_end, own.learning_starts, own.max_grad_norm) == (1.0, 0.01, 20_000, 0.0)
    with pytest.raises(ValueError, match="allowed: omnitask, reference"):
        LinearEvalConfig(preset="paper")
    cfg = load_config(CONFIGS / "atari_pong_cpu_smoke.yaml", ["pvn.eval.preset=reference"])
    trainer = PVNTrainer(cfg, tmp_path / "run")
    assert trainer.online_options["sticky_actions"] == 0.0
    assert trainer.learners["pvn_linear"].cfg.max_grad_norm == 10.0
    assert trainer.learners["pvn_linear"].engine.env.protocol.sticky_actions == 0.0  # the env it makes
    trainer.close()
    plain = PVNTrainer(load_config(CONFIGS / "atari_pong_cpu_smoke.yaml"), tmp_path / "run2")
    assert "sticky_actions" not in plain.online_options  # the dqn protocol's own 0.25 stands
    plain.close()


def test_head_learning_rate_is_the_frozen_learners_step_and_dqn_keeps_its_own(tmp_path):
    """``pvn.eval.head_learning_rate``: Adam's step for the learners whose encoder is frozen (PVN-linear,
    random-linear); the end-to-end DQN (and a fine-tuned PVN) keep ``pvn.eval.learning_rate``."""
    pytest.importorskip("ale_py")
    from omnitask.config import load_config
    from agents.pvn.evaluate import LinearEvalConfig, dqn_config_from_eval
    from agents.pvn.trainer import PVNTrainer

    cfg = load_config(CONFIGS / "atari_pong_cpu_smoke.yaml", [
        "pvn.eval.learning_rate=0.0002", "pvn.eval.head_learning_rate=0.003", "pvn.baselines=[random_linear,dqn]"])
    trainer = PVNTrainer(cfg, tmp_path / "run")
    lrs = {name: learner.cfg.lr for name, learner in trainer.learners.items()}
    assert lrs == {"pvn_linear": 0.003, "random_linear": 0.003, "dqn": 0.0002}, lrs
    trainer.close()
    ev = LinearEvalConfig(learning_rate=2e-4)  # unset: every learner at learning_rate
    assert dqn_config_from_eval(ev, 4, fine_tune=False).lr == dqn_config_from_eval(ev, 4).lr == 2e-4
    with pytest.raises(ValueError, match="head_learning_rate must be > 0 or null"):
        LinearEvalConfig(head_learning_rate=0.0)


def test_recording_env_turns_the_dqn_baselines_stream_into_a_pvn_dataset(tmp_path):
    """The item-3 collector in short form: the unchanged DQN baseline steps a recording Atari env; every transition
    lands in the suite dataset format, consecutive within an episode (full form: bench_pvn.py atari)."""
    pytest.importorskip("ale_py")
    import envs
    from agents.common.engines import HostEngine
    from agents.dqn.agent import make_dqn_agent
    from agents.dqn.config import DQNConfig
    from agents.dqn.trainer import dqn_host_agent
    from agents.pvn.collect import RecordingEnv
    from agents.pvn.dataset import TransitionDataset, TransitionWriter

    env = RecordingEnv(envs.make("atari/Breakout", num_envs=2, seed=0, protocol="dqn", mode="train"),
                       TransitionWriter(str(tmp_path / "data"), 64))
    cfg = DQNConfig(buffer_size=200, batch_size=4, learning_starts=40, steps_per_train_step=30, torso="cnn",
                    epsilon_decay_steps=60)
    engine = HostEngine(env, dqn_host_agent(make_dqn_agent(cfg, env.spec, 2), cfg), 0, None, 100)
    state = engine.init(jax.random.PRNGKey(0))
    for _ in range(2):
        state, metrics, n = engine.train_step(state)
    assert int(state.train_state.num_updates) > 0  # the collector learned while it recorded
    engine.close()
    ds = TransitionDataset(str(tmp_path / "data"))
    assert ds.num_transitions == 2 * 30 * 2 and ds.observation_shape == (84, 84, 4)
    chunk = {k: np.concatenate([c[k] for c in ds.iter_chunks()]) for k in ("observation", "next_observation",
                                                                            "terminated", "truncated")}
    # rows alternate env 0, env 1: a transition's next_observation is its env's next observation (no episode end)
    same = ~(chunk["terminated"][:-2] | chunk["truncated"][:-2])
    np.testing.assert_array_equal(chunk["next_observation"][:-2][same], chunk["observation"][2:][same])

    # the dataset replays exactly: a fresh env with the same seed and reset, stepped with the recorded actions,
    # reproduces every recorded observation, reward and termination (sticky actions included)
    rows = {k: np.concatenate([c[k] for c in ds.iter_chunks()]) for k in ("observation", "action", "reward",
                                                                          "terminated")}
    assert len(env.resets) == 1
    fresh = envs.make("atari/Breakout", num_envs=2, seed=0, protocol="dqn", mode="train")
    args, kwargs = env.resets[0]
    obs = fresh.reset(*args, **kwargs).observation
    for t in range(ds.num_transitions // 2):
        np.testing.assert_array_equal(obs, rows["observation"][2 * t:2 * t + 2])
        ts = fresh.step(rows["action"][2 * t:2 * t + 2])
        np.testing.assert_array_equal(ts.reward, rows["reward"][2 * t:2 * t + 2])
        np.testing.assert_array_equal(ts.terminated, rows["terminated"][2 * t:2 * t + 2])
        obs = ts.observation
    fresh.close()
