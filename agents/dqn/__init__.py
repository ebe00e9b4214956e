"""Double DQN with n-step returns for omnitask: pure learner, array replay, a jitted JAX-native loop and a
Trainer for the run loop.

Public API:
  DQNConfig, DQNTrainer                                -- run-loop contract (omnitask/agents_table.py)
  make_dqn_update(q_fn, optimizer, cfg)                -- the pure update(train_state, NStepBatch); any q_fn
  double_q_target, huber, DQNTrainState                -- the loss math
  make_dqn_agent(cfg, spec, num_envs, network=None)    -- act/observe closures; pass any flax Q-network
  make_jax_dqn, DQNRunner                              -- the jitted JAX-native loop
"""
from agents.dqn.agent import DQNAgent, DQNState, epsilon_greedy, linear_epsilon, make_dqn_agent
from agents.dqn.config import DQNConfig, dqn_config_from
from agents.dqn.jax_loop import DQNRunner, make_jax_dqn
from agents.dqn.learner import (DQNTrainState, double_q_target, huber, make_dqn_update, make_optimizer,
                                make_q_network)
from agents.dqn.trainer import DQNTrainer

__all__ = ["DQNAgent", "DQNConfig", "DQNRunner", "DQNState", "DQNTrainState", "DQNTrainer", "double_q_target",
           "dqn_config_from", "epsilon_greedy", "huber", "linear_epsilon", "make_dqn_agent", "make_dqn_update",
           "make_jax_dqn", "make_optimizer", "make_q_network"]
