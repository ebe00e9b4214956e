"""PPO (discrete and continuous) for omnitask: pure learner functions, a jitted JAX-native loop vmappable over
contexts, and a Trainer for the run loop.

Public API:
  PPOConfig, PPOTrainer                              -- run-loop contract (omnitask/agents_table.py)
  train_over_contexts, evaluate_over_contexts        -- one policy per context row / zero-shot transfer matrix
  make_learner, make_network, PPOTrainState, Rollout -- the pure learner (update(train_state, rollout))
  make_jax_ppo, evaluate_params, RunnerState         -- building blocks of the jitted loop
  gae_advantages, clipped_surrogate_loss, value_loss -- the loss math
"""
from agents.ppo.config import PPOConfig, ppo_config_from
from agents.ppo.jax_loop import (RunnerState, evaluate_over_contexts, evaluate_params, make_jax_ppo,
                                 train_over_contexts)
from agents.ppo.learner import PPOLearner, PPOTrainState, Rollout, make_learner, make_network, num_updates_for
from agents.ppo.losses import clipped_surrogate_loss, gae_advantages, value_loss
from agents.ppo.trainer import HostState, PPOTrainer

__all__ = ["HostState", "PPOConfig", "PPOLearner", "PPOTrainState", "PPOTrainer", "Rollout", "RunnerState",
           "clipped_surrogate_loss", "evaluate_over_contexts", "evaluate_params", "gae_advantages", "make_jax_ppo",
           "make_learner", "make_network", "num_updates_for", "ppo_config_from", "train_over_contexts",
           "value_loss"]
