"""ScaleZero trainer bookkeeping against real envs: game returns at game over (Atari episodic life), DPS "solved"
from evaluation means (as LightZero), routing entropy logged per task."""
import jax
import numpy as np
import pytest

import envs
from agents.scalezero import ScaleZeroTrainer
from agents.scalezero.trainer import record_games
from tiny_configs import CARTPOLE, SCALEZERO_TINY, experiment


def test_game_returns_are_whole_games_not_lives():
    """Atari training mode ends a learning episode on every lost life (terminated) while the game goes on; the
    returns recorded for train_return/* are whole games, equal to the raw rewards summed from reset."""
    pytest.importorskip("ale_py")
    env = envs.make("atari/Breakout", num_envs=2, seed=0, protocol="world_model", mode="train", clip_rewards=False)
    games, count = np.full((1, 4), np.nan, np.float32), np.zeros((1,), np.int64)
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    raw = np.zeros(2)
    lives_lost, finished = 0, []
    for _ in range(3000):
        ts = env.step(rng.integers(0, env.spec.action.num_actions, 2))
        raw += ts.reward
        over = envs.episode_over(ts)
        lives_lost += int((ts.terminated & ~over).sum())
        record_games(games, count, ts, np.zeros(2, np.int32))
        finished += raw[over].tolist()
        raw[over] = 0
        if len(finished) >= 2:
            break
    env.close()
    assert lives_lost >= 4, "Breakout's lives should end learning episodes before the game ends"
    assert int(count[0]) == len(finished) >= 2  # one record per game, none per lost life
    np.testing.assert_allclose(games[0, :len(finished)], finished)


def test_dps_marks_solved_from_evaluation_means():
    """With targets any policy reaches on CartPole, the task is solved after the first solved-check evaluation,
    whose mean is logged; the curriculum never reads collection returns."""
    section = dict(SCALEZERO_TINY, dps=True, num_stages=2, lora_rank=2, lora_alpha=2.0, target_returns=[5.0],
                   solve_eval_every=2, solve_eval_episodes=2, min_stage0_iters=1000, max_eval_steps=60)
    cfg = experiment("scalezero", CARTPOLE, section, {"total_env_steps": 128, "eval_every": 0, "eval_episodes": 1,
                                                      "checkpoint_every": 0, "out_dir": "unused", "name": "dps"})
    tr = ScaleZeroTrainer(cfg, None)
    state = tr.init(jax.random.PRNGKey(0))
    # collection games alone (however high) do not solve a task
    state = state._replace(game_returns=np.full_like(state.game_returns, 1e6))
    seen = []
    while int(state.train.step) < 2:
        state, metrics, _ = tr.train_step(state)
        seen.append(metrics)
        assert not state.curriculum.solved.any() or int(state.train.step) >= 2
    tr.close()
    assert "dps/eval_return/default" in metrics and metrics["dps/eval_return/default"] >= 5.0, metrics
    assert state.curriculum.solved.tolist() == [True] and metrics["dps/solved"] == 1.0
    assert np.isfinite(state.eval_returns).all()
    assert all("dps/eval_return/default" not in m for m in seen[:-1])
    assert metrics["moe/routing_entropy/default"] >= 0.0  # logged per task (2 experts: at most log 2)
    assert metrics["moe/routing_entropy/default"] <= np.log(2) + 1e-6


def test_solved_tasks_envs_skip_search_and_still_count_as_env_steps():
    """DPS collection: envs of solved tasks step with a random action and never enter the search; envs of unsolved
    tasks are searched every step. Every env step counts in env_steps (the budget); active_steps counts only the
    unsolved tasks' steps. A counter on the trainer's compiled search records the rows and tasks it is given."""
    section = dict(SCALEZERO_TINY, dps=True, num_stages=2, lora_rank=2, lora_alpha=2.0, collect_steps=2,
                   context_tasks=[{"length": 0.5}, {"length": 1.0}], target_returns=[1e9, 1e9])
    cfg = experiment("scalezero", CARTPOLE, section, {"out_dir": "unused", "name": "skip"})
    tr = ScaleZeroTrainer(cfg, None)
    calls = []
    search = tr._search

    def counted(params, key, obs, act, valid, task, *args, **kwargs):
        calls.append(np.asarray(task).tolist())
        return search(params, key, obs, act, valid, task, *args, **kwargs)

    tr._search = counted
    state = tr.init(jax.random.PRNGKey(0))
    env_task = np.asarray(state.replay.env_task)
    assert env_task.tolist() == [0, 0, 1, 1]
    for solved, searched_tasks in [([False, False], [0, 0, 1, 1]), ([True, False], [1, 1]), ([True, True], None)]:
        calls.clear()
        state = state._replace(curriculum=state.curriculum._replace(solved=np.array(solved)))
        steps_before, active_before = int(state.env_steps), int(state.active_steps)
        state, _, env_steps = tr.collect(state)
        assert calls == ([] if searched_tasks is None else [searched_tasks] * 2), (solved, calls)
        assert env_steps == int(state.env_steps) - steps_before == 2 * 4  # every env stepped, every step counted
        assert int(state.active_steps) - active_before == 2 * 2 * (2 - sum(solved))
    # the solved task's rows are written with a uniform policy target and zero search value
    last = (int(state.replay.ptr) - 1) % state.replay.obs.shape[1]
    np.testing.assert_allclose(np.asarray(state.replay.policy)[:, last], 0.5)
    np.testing.assert_array_equal(np.asarray(state.replay.root_value)[:, last], 0.0)
    tr.close()


def test_random_policy_evaluation_uses_the_same_loop_and_refuses_unknown_policies():
    """evaluate(policy='random') plays uniform random actions through the greedy evaluation's loop and episode
    accounting (the baseline of a learning claim) and never calls the search; return_se/<task> is the SE of the
    games. An unknown policy name is refused naming the allowed ones."""
    cfg = experiment("scalezero", CARTPOLE, dict(SCALEZERO_TINY, max_eval_steps=200),
                     {"out_dir": "unused", "name": "rnd"})
    tr = ScaleZeroTrainer(cfg, None)
    state = tr.init(jax.random.PRNGKey(0))
    tr._search = None  # a call would fail
    result = tr.evaluate(state, 8, jax.random.PRNGKey(3), policy="random")
    assert 10.0 < result["return_mean"] < 40.0, result  # CartPole's uniform-random mean is about 22
    assert 0.0 < result["return_se/default"] < 10.0, result
    with pytest.raises(ValueError, match="allowed: 'search', 'random'"):
        tr.evaluate(state, 1, jax.random.PRNGKey(3), policy="greedy")
    tr.close()
