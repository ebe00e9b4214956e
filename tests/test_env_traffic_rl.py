"""DQN and PPO (the foundation baselines, host-env path) beat fixed-time signal control on one SUMO intersection.

Context: traffic/signal-1x1, inflow 600 veh/h per entry, 5-minute episodes (configs/{dqn,ppo}/traffic_signal.yaml).
CI form: the YAML budgets cut to 1,920 (DQN) / 1,440 (PPO) env steps; OMNITASK_FULL=1 runs the YAMLs' 4,800.
The trained policy (DQN greedy, PPO sampled) and the fixed-time plan are evaluated on the same 4 episodes (same
SUMO seeds, drawn from one evaluation key).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("libsumo")

import jax  # noqa: E402

import envs  # noqa: E402
from envs.traffic.signal import NUM_PHASES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FULL = os.environ.get("OMNITASK_FULL") == "1"
EVAL_KEY = 123
MARGIN = 5.0  # return units (sumo-rl diff-waiting-time / 100 s, summed over 60 decisions)


def _fixed_time_policy(green_steps: int = 6):
    """A fixed-time plan as a policy of (obs, key): phase (t // green_steps) % 4, t counting calls per episode."""
    t = [0]

    def policy(obs, key):
        del key
        a = np.full(obs.shape[0], (t[0] // green_steps) % NUM_PHASES, np.int32)
        t[0] += 1
        return a

    return policy


@pytest.fixture(scope="module")
def fixed_time_return() -> float:
    from agents.common.trainer_utils import evaluate_host
    from omnitask.config import load_config

    cfg = load_config(ROOT / "configs" / "dqn" / "traffic_signal.yaml")
    with envs.make(cfg.env.id, num_envs=4, seed=0, context=dict(cfg.env.context), **dict(cfg.env.options)) as env:
        # evaluate_host seeds the episodes from the key, exactly as the trainers' evaluate does
        return evaluate_host(env, _fixed_time_policy(), 4, jax.random.PRNGKey(EVAL_KEY),
                             env.spec.max_episode_steps)["return_mean"]


@pytest.mark.slow
@pytest.mark.parametrize("agent,ci_steps", [("dqn", 1920), ("ppo", 1440)])
def test_agent_beats_fixed_time_signal_control(agent, ci_steps, fixed_time_return):
    from omnitask.agents_table import AGENTS
    from omnitask.config import load_config

    cfg = load_config(ROOT / "configs" / agent / "traffic_signal.yaml",
                      [] if FULL else [f"run.total_env_steps={ci_steps}"])
    _, trainer_cls = AGENTS[agent]()
    trainer = trainer_cls(cfg, None)
    key = jax.random.PRNGKey(EVAL_KEY)
    try:
        state = trainer.init(jax.random.PRNGKey(cfg.seed))
        before = trainer.evaluate(state, 4, key)["return_mean"]
        steps = 0
        while steps < cfg.run.total_env_steps:
            state, _, n = trainer.train_step(state)
            steps += n
        after = trainer.evaluate(state, 4, key)["return_mean"]
    finally:
        trainer.close()
    assert after > before, f"{agent} did not improve: {before:.2f} -> {after:.2f}"
    assert after > fixed_time_return + MARGIN, (
        f"{agent} {after:.2f} must beat fixed-time {fixed_time_return:.2f} by > {MARGIN} after {steps} env steps")
