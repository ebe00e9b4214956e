"""PPO's typed config (the YAML section ``ppo:``). Defaults are the CleanRL/purejaxrl classic-control reference."""
from __future__ import annotations

import dataclasses
from typing import Any, List

from omnitask.schema import section_as


@dataclasses.dataclass
class PPOConfig:
    """Proximal Policy Optimisation hyper-parameters. Number of envs lives in ``env.num_envs``, not here."""

    lr: float = 2.5e-4
    """Adam learning rate (initial value when ``anneal_lr``)."""
    anneal_lr: bool = True
    """Linearly decay the learning rate to 0 over ``run.total_env_steps``."""
    num_steps: int = 128
    """Rollout length per env per update; one update consumes ``num_envs * num_steps`` env steps."""
    num_epochs: int = 4
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per epoch; must divide ``num_envs * num_steps``."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_eps: float = 0.2
    """Policy ratio clip range (also the value clip range when ``clip_value``)."""
    clip_value: bool = True
    """Use the PPO2 clipped value loss."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    torso: str = "auto"
    """Observation torso: 'auto' (Nature CNN for rank-3 images, MLP otherwise), 'mlp' or 'cnn'."""
    hidden_sizes: List[int] = dataclasses.field(default_factory=lambda: [64, 64])
    """MLP torso layer sizes."""
    activation: str = "tanh"
    """MLP activation: 'tanh' or 'relu'."""
    shared_torso: bool = False
    """Actor and critic share one torso (Atari reference) instead of two copies (classic-control reference)."""
    init_log_std: float = 0.0
    """Initial state-independent log standard deviation of the Gaussian policy (continuous actions)."""
    updates_per_train_step: int = 1
    """PPO updates done by one ``Trainer.train_step`` (jitted together on JAX-native envs)."""
    eval_deterministic: bool = True
    """Evaluate with the greedy action (argmax / Gaussian mean) instead of sampling."""
    host_loop: bool = False
    """Use the host-env Python loop even on a JAX-native env (tests the Atari/Meta-World/SUMO path cheaply)."""


def ppo_config_from(section: Any) -> PPOConfig:
    """A ``PPOConfig`` from a PPOConfig, an OmegaConf node or a plain mapping (unknown keys refused)."""
    return section_as(PPOConfig, section, "ppo")


def validate(cfg: PPOConfig, num_envs: int) -> None:
    """Refuse inconsistent settings with a message naming the fields."""
    batch = num_envs * cfg.num_steps
    if cfg.num_steps < 1 or cfg.num_epochs < 1 or cfg.num_minibatches < 1:
        raise ValueError("ppo.num_steps, ppo.num_epochs and ppo.num_minibatches must be >= 1")
    if batch % cfg.num_minibatches:
        raise ValueError(f"ppo.num_minibatches={cfg.num_minibatches} must divide env.num_envs * ppo.num_steps "
                         f"= {num_envs} * {cfg.num_steps} = {batch}")
    if cfg.activation not in ("tanh", "relu"):
        raise ValueError(f"ppo.activation must be 'tanh' or 'relu', got {cfg.activation!r}")
    if cfg.updates_per_train_step < 1:
        raise ValueError("ppo.updates_per_train_step must be >= 1")
