"""DQN's typed config (the YAML section ``dqn:``). Defaults suit classic control (CartPole)."""
from __future__ import annotations

import dataclasses
from typing import Any, List

from omnitask.schema import section_as


@dataclasses.dataclass
class DQNConfig:
    """Double DQN with n-step returns. Number of envs lives in ``env.num_envs``, not here.

    Step counts (``learning_starts``, ``epsilon_decay_steps``) are env steps summed over envs; ``train_every`` and
    ``steps_per_train_step`` count vector steps (one vector step = ``num_envs`` env steps).
    """

    lr: float = 2.5e-4
    """Adam learning rate."""
    adam_eps: float = 1e-8
    """Adam epsilon (the Atari reference uses 1.5e-4)."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 3
    """n of the n-step return (1 = one-step DQN)."""
    buffer_size: int = 50_000
    """Replay capacity in transitions (split evenly over envs)."""
    batch_size: int = 128
    """Minibatch size of one gradient update."""
    learning_starts: int = 1_000
    """Env steps collected before the first update."""
    train_every: int = 1
    """Vector steps between gradient updates."""
    gradient_steps: int = 1
    """Gradient updates each time training happens."""
    target_update_period: int = 500
    """Gradient updates between target-network updates."""
    target_tau: float = 1.0
    """Target update ``target <- tau * online + (1 - tau) * target``: 1.0 = hard copy; period 1 + small tau = EMA."""
    double_q: bool = True
    """Double DQN (online argmax, target evaluation) instead of the max over the target network."""
    huber_delta: float = 1.0
    """Huber loss threshold (the TD error is squared inside it)."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip (0 disables)."""
    epsilon_start: float = 1.0
    """Initial exploration epsilon."""
    epsilon_end: float = 0.02
    """Final exploration epsilon."""
    epsilon_decay_steps: int = 20_000
    """Env steps over which epsilon decays linearly (after ``learning_starts``)."""
    eval_epsilon: float = 0.0
    """Epsilon of the evaluation policy."""
    torso: str = "auto"
    """Observation torso: 'auto' (Nature CNN for rank-3 images, MLP otherwise), 'mlp' or 'cnn'."""
    hidden_sizes: List[int] = dataclasses.field(default_factory=lambda: [128, 128])
    """MLP torso layer sizes."""
    activation: str = "relu"
    """MLP activation: 'tanh' or 'relu'."""
    steps_per_train_step: int = 1_000
    """Vector steps per ``Trainer.train_step`` (one jitted scan on JAX-native envs)."""
    host_loop: bool = False
    """Use the host-env Python loop even on a JAX-native env (tests the Atari/Meta-World/SUMO path cheaply)."""


def dqn_config_from(section: Any) -> DQNConfig:
    """A ``DQNConfig`` from a DQNConfig, an OmegaConf node or a plain mapping (unknown keys refused)."""
    return section_as(DQNConfig, section, "dqn")


def validate(cfg: DQNConfig, num_envs: int) -> None:
    """Refuse inconsistent settings with a message naming the fields."""
    rows = cfg.buffer_size // num_envs
    if rows < cfg.n_step + 1:
        raise ValueError(f"dqn.buffer_size={cfg.buffer_size} gives {rows} rows per env for env.num_envs={num_envs}; "
                         f"need at least n_step + 1 = {cfg.n_step + 1}")
    if cfg.n_step < 1 or cfg.batch_size < 1 or cfg.train_every < 1 or cfg.gradient_steps < 1:
        raise ValueError("dqn.n_step, dqn.batch_size, dqn.train_every and dqn.gradient_steps must be >= 1")
    if cfg.target_update_period < 1 or not 0.0 < cfg.target_tau <= 1.0:
        raise ValueError(f"dqn.target_update_period must be >= 1 and dqn.target_tau in (0, 1], got "
                         f"{cfg.target_update_period} and {cfg.target_tau}")
    if cfg.learning_starts < cfg.n_step * num_envs:
        raise ValueError(f"dqn.learning_starts={cfg.learning_starts} must be >= n_step * env.num_envs = "
                         f"{cfg.n_step * num_envs}")
    if cfg.steps_per_train_step < 1:
        raise ValueError("dqn.steps_per_train_step must be >= 1")
