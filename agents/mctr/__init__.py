"""MCTR: a metacognitive agent with test-time reasoning (knowledge memory + adaptive meta-reasoning + test-time RL).

Public API: ``MCTRConfig`` (the ``mctr:`` config section), ``MCTRTrainer`` (the run-loop adapter), ``MCTRAgent``.
See agents/mctr/README.md for the design and what is (and is not) learned.
"""
from agents.mctr.config import MCTRConfig, ServerConfig


def __getattr__(name):  # lazy: importing the config must not import envs/jax-heavy modules
    if name == "MCTRTrainer":
        from agents.mctr.trainer import MCTRTrainer
        return MCTRTrainer
    if name == "MCTRAgent":
        from agents.mctr.agent import MCTRAgent
        return MCTRAgent
    raise AttributeError(name)


__all__ = ["MCTRAgent", "MCTRConfig", "MCTRTrainer", "ServerConfig"]
