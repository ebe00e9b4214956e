"""Agent name (the YAML's top-level ``agent:``) -> loader returning (ConfigClass, TrainerClass).

Loaders import lazily so ``omnitask envs`` and configs of one agent never import the others' dependencies.
Add one line per agent.
"""
from __future__ import annotations

from typing import Callable


def _ppo():
    from agents.ppo import PPOConfig, PPOTrainer
    return PPOConfig, PPOTrainer


def _dqn():
    from agents.dqn import DQNConfig, DQNTrainer
    return DQNConfig, DQNTrainer


def _mbtl():
    from agents.mbtl import MBTLConfig, MBTLTrainer
    return MBTLConfig, MBTLTrainer


def _mctr():
    from agents.mctr import MCTRConfig, MCTRTrainer
    return MCTRConfig, MCTRTrainer


def _pvn():
    from agents.pvn import PVNConfig, PVNTrainer
    return PVNConfig, PVNTrainer


def _scalezero():
    from agents.scalezero import ScaleZeroConfig, ScaleZeroTrainer
    return ScaleZeroConfig, ScaleZeroTrainer


AGENTS: dict[str, Callable[[], tuple[type, type]]] = {
    "ppo": _ppo,
    "dqn": _dqn,
    "mbtl": _mbtl,
    "mctr": _mctr,
    "pvn": _pvn,
    "scalezero": _scalezero,
}
