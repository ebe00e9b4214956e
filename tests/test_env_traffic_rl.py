"""PPO (the foundation baseline, host-env path) beats fixed-time signal control on one SUMO intersection.

CI form: the YAML's budget cut to 1,440 env steps (6 PPO updates, ~20 s here). OMNITASK_FULL=1 runs the YAML's full
budget (4,800 steps). Both compare the (sampled) PPO policy with the fixed-time plan on the same evaluation
episodes (same SUMO seeds).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("libsumo")
ppo = pytest.importorskip("agents.ppo")

import jax  # noqa: E402

import envs  # noqa: E402
from agents.common.trainer_utils import evaluate_host  # noqa: E402
from envs.traffic.signal import NUM_PHASES  # noqa: E402
from omnitask.config import load_config  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ppo" / "traffic_signal.yaml"
FULL = os.environ.get("OMNITASK_FULL") == "1"


def _fixed_time_policy(green_steps: int = 6):
    """A fixed-time plan as a policy of (obs, key): phase (t // green_steps) % 4, t counting calls per episode."""
    t = [0]

    def policy(obs, key):
        del key
        a = np.full(obs.shape[0], (t[0] // green_steps) % NUM_PHASES, np.int32)
        t[0] += 1
        return a

    return policy


@pytest.mark.slow
def test_ppo_beats_fixed_time_signal_control():
    overrides = [] if FULL else ["run.total_env_steps=1440"]
    cfg = load_config(CONFIG, overrides)
    trainer = ppo.PPOTrainer(cfg)
    eval_key = jax.random.PRNGKey(123)
    try:
        state = trainer.init(jax.random.PRNGKey(cfg.seed))
        before = trainer.evaluate(state, 4, eval_key)["return_mean"]
        steps = 0
        while steps < cfg.run.total_env_steps:
            state, _, n = trainer.train_step(state)
            steps += n
        after = trainer.evaluate(state, 4, eval_key)["return_mean"]
        max_steps = trainer.spec.max_episode_steps
        with envs.make(cfg.env.id, num_envs=4, seed=0, context=dict(cfg.env.context),
                       **dict(cfg.env.options)) as env:
            # evaluate_host seeds the episodes from the key: the same 4 episodes PPO was evaluated on
            fixed = evaluate_host(env, _fixed_time_policy(), 4, eval_key, max_steps)["return_mean"]
    finally:
        trainer.close()
    assert after > before, f"PPO did not improve: {before:.2f} -> {after:.2f}"
    assert after > fixed + 5.0, f"PPO {after:.2f} must beat fixed-time {fixed:.2f} by > 5 (return units)"
