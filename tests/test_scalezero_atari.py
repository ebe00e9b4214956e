"""ScaleZero on real Atari, short form: the single-game world_model path (configs/scalezero/cpu_atari_asterix.yaml,
its model width, real ALE frames, episodic life in training) trains for a few hundred env steps and its losses fall,
and the greedy and random-policy evaluations run through the same loop; and the replay pairs every real frame with
the action taken in it. Not a learning claim: the full form (16k env steps per seed in v4, greedy evaluation against
the random policy, pre-registered in the config header) is
``benchmarks/bench_scalezero_atari.py``; its numbers are in README (ScaleZero section)."""
import jax
import numpy as np
import pytest

from omnitask.config import load_config

CONFIG = "configs/scalezero/cpu_atari_asterix.yaml"
# the config's model, fewer envs / sequences / simulations; evaluation games capped at 100 agent steps
SHORT = ["env.num_envs=4", "env.eval_options.max_episode_frames=400", "scalezero.batch_size=8",
         "scalezero.num_simulations=4", "scalezero.eval_num_simulations=4", "scalezero.warmup_transitions=64",
         "scalezero.updates_per_iter=4", "scalezero.max_eval_steps=100"]


def test_real_atari_single_game_trains_and_losses_fall():
    pytest.importorskip("ale_py")
    from agents.scalezero import ScaleZeroTrainer

    cfg = load_config(CONFIG, SHORT)
    trainer = ScaleZeroTrainer(cfg, None)
    try:
        assert trainer.spec.observation.shape == (64, 64, 3)  # world_model protocol
        state = trainer.init(jax.random.PRNGKey(0))
        losses, env_steps = [], 0
        while env_steps < 448:  # 14 train steps of 32 env steps; updates from the 3rd (64 warm-up transitions)
            state, metrics, n = trainer.train_step(state)
            env_steps += n
            if "loss" in metrics:
                losses.append(metrics["loss"])
        assert int(state.train.step) == 4 * len(losses) >= 40
        assert np.isfinite(losses).all(), losses
        # the loss of the last updates well below the first ones (observed: about half; a fall, not learning)
        assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
        assert int(state.replay.size) * 4 == env_steps  # every real frame stored ([E, C] columns)
        greedy = trainer.evaluate(state, 4, jax.random.PRNGKey(1))
        rand = trainer.evaluate(state, 4, jax.random.PRNGKey(1), policy="random")
    finally:
        trainer.close()
    for result in (greedy, rand):
        assert np.isfinite(result["return_mean"]) and result["return_mean"] >= 0.0, result
        assert np.isfinite(result["return_se/Asterix"]), result


def test_replay_rows_pair_each_real_frame_with_the_action_taken_in_it():
    """On real Asterix frames (frame skip 4, no-op starts, episodic life): every replay row holds the frame a decision
    was taken in and THAT decision's action (not the previous or next one), the next row holds the frame the env
    returned for it, life losses start a new episode id, and the search root's window pairs each earlier frame with
    the action taken in it. The search is replaced by a recorder that picks random actions (no model needed)."""
    pytest.importorskip("ale_py")
    from types import SimpleNamespace

    from agents.scalezero import ScaleZeroTrainer

    cfg = load_config(CONFIG, ["env.num_envs=4", "scalezero.warmup_transitions=100000",
                               "scalezero.replay_capacity=4000"])
    trainer = ScaleZeroTrainer(cfg, None)
    rng = np.random.default_rng(0)
    roots = []  # per decision: (window obs [E, S, ...], window actions [E, S], window valid [E, S], actions [E])
    returned = []  # per decision: (observation the env returned [E, ...], terminated | truncated [E])
    n_act = trainer.dims.num_actions

    def recorder(params, key, obs, act, valid, task, stage, explore, sims):
        a = rng.integers(0, n_act, obs.shape[0]).astype(np.int32)
        roots.append((obs.copy(), act.copy(), valid.copy(), a))
        e = obs.shape[0]
        return SimpleNamespace(action=a, policy_target=np.full((e, n_act), 1.0 / n_act, np.float32),
                               sampled=np.zeros((e, 1, 1), np.float32), root_value=np.zeros(e, np.float32))

    step = trainer.loop.step

    def recorded_step(actions):
        ts = step(actions)
        returned.append((np.asarray(ts.observation).copy(), np.asarray(ts.terminated) | np.asarray(ts.truncated)))
        return ts

    trainer._search_windows, trainer.loop.step = recorder, recorded_step
    try:
        state = trainer.init(jax.random.PRNGKey(0))
        for _ in range(20):  # 160 decisions per env
            state, _, _ = trainer.collect(state)
    finally:
        trainer.close()
    rb, n = state.replay, len(roots)
    assert int(rb.size) == n == 160 and int(rb.ptr) == n  # no wrap: column t = decision t
    done = np.stack([d for _, d in returned], 1)  # [E, T]
    assert done.sum() >= 4, "random Asterix play should lose several lives in 160 steps per env"
    for t, (w_obs, w_act, w_valid, a) in enumerate(roots):
        np.testing.assert_array_equal(rb.obs[:, t], w_obs[:, -1])  # the frame the decision was taken in
        np.testing.assert_array_equal(rb.action[:, t], a)  # ... and the action taken in it
        if t == 0:
            continue
        np.testing.assert_array_equal(w_obs[:, -1], returned[t - 1][0])  # the frame the env returned for a[t-1]
        cont = ~done[:, t - 1]  # same episode: the window's previous slot is (frame t-1, action t-1)
        np.testing.assert_array_equal(w_valid[:, -2], cont)
        np.testing.assert_array_equal(w_obs[cont, -2], rb.obs[cont, t - 1])
        np.testing.assert_array_equal(w_act[cont, -2], rb.action[cont, t - 1])
        assert (w_act[:, -1] == 0).all()  # the pending action slot is empty at the root
    # episode ids: a new id right after every lost life / game over, never elsewhere
    np.testing.assert_array_equal(np.diff(rb.episode[:, :n], axis=1), done[:, :-1].astype(np.int32))


def test_boxing_config_trains_on_real_frames():
    """configs/scalezero/cpu_atari_boxing.yaml (the Boxing runs' config, README ScaleZero "Real Atari") loads with
    its game, 18 actions and the v5 settings, one short stretch of training on real Boxing frames gives finite losses,
    and the random-policy evaluation of its baseline runs (capped games, both reward signs possible). Not a learning
    claim; the full form is benchmarks/bench_scalezero_atari.py with that config."""
    pytest.importorskip("ale_py")
    from agents.scalezero import ScaleZeroTrainer

    cfg = load_config("configs/scalezero/cpu_atari_boxing.yaml", SHORT)
    sz = cfg.scalezero
    assert cfg.env.id == "atari/Boxing" and cfg.run.total_env_steps == 16000 and cfg.run.eval_episodes >= 8
    assert sz.w_inverse == 1.0 and sz.absorbing_terminal and not sz.gumbel_rescale_q
    trainer = ScaleZeroTrainer(cfg, None)
    try:
        assert trainer.dims.num_actions == 18 and trainer.spec.observation.shape == (64, 64, 3)
        state = trainer.init(jax.random.PRNGKey(0))
        losses, env_steps = [], 0
        while env_steps < 128:  # 4 train steps of 32 env steps; updates once 64 warm-up transitions are stored
            state, metrics, n = trainer.train_step(state)
            env_steps += n
            if "loss" in metrics:
                losses.append(metrics["loss"])
        assert len(losses) >= 2 and np.isfinite(losses).all(), losses
        rand = trainer.evaluate(state, 4, jax.random.PRNGKey(1), policy="random")
    finally:
        trainer.close()
    assert np.isfinite(rand["return_mean"]) and np.isfinite(rand["return_se/Boxing"]), rand
