"""MCTR's memory on an unseen game: full agent vs its no-memory ablation, paired by seed.

Pre-registered (agents/mctr/README.md, "Sixth experiment", written and committed before its runs): Boxing (unseen),
the full agent starting from the sports seen-game knowledge base that experiment built
(configs/mctr/seen_sports.jsonl: Tennis + IceHockey, seed 999, 1000 decisions per env), 150 real decisions per
env, 2 envs, default config; CI seeds 2000 and 2001, fixed before any outcome was seen. Runs are deterministic
per seed. The margins come from Boxing's 8-seed paired result (seeds 2000-2007, ``python -m agents.mctr.paired``):
  CI form:   mean over seeds 2000, 2001 of (full - no_memory) >= MEAN_D - t(0.975, 7) * SD_D * sqrt(1/2 + 1/8)
  long form: mean over seeds 2000-2007                        >= MEAN_D - t(0.975, 7) * SD_D / sqrt(8)
(the lower 95% prediction bound of a two-seed mean, and the lower end of the 8-seed 95% CI). See RESULT below
for what the 8-seed result says; a negative bound makes the test a non-inferiority regression check (the memory
must not make the agent worse than measured), not a claim that it helps.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.mctr.config import MCTRConfig
from agents.mctr.games import lookup
from agents.mctr.paired import run_one

SEEN = Path(__file__).resolve().parent.parent / "configs" / "mctr" / "seen_sports.jsonl"
CI_SEEDS, ALL_SEEDS = (2000, 2001), tuple(range(2000, 2008))
T_975_DF7 = 2.3646  # scipy.stats.t.ppf(0.975, 7)
MEAN_D, SD_D = 2.3125, 2.8528  # Boxing, 8 seeds (runs/mctr_paired_v6/paired_report.json)
# RESULT (sixth experiment, 2026-12-01): Boxing full 2.0 vs no_memory -0.3 reward/env, diff +2.3 [95% CI -0.1, +4.7],
# d_z +0.81, t-test p 0.056, Wilcoxon p 0.031, 6 wins / 0 losses / 2 ties -- by the pre-registered rule (t-test
# p < 0.05) no measurable effect on Boxing; seeds 2000/2001: -1.0/2.0 vs -1.0/2.0 (both ties). Both bounds are
# negative (CI form -3.02, long form -0.07): this test is a non-inferiority regression check. The memory helps
# measurably on DemonAttack (p 0.032) and Riverraid (p 0.020); see agents/mctr/README.md.


def _diff(seed: int) -> float:
    cfg = MCTRConfig()
    full = run_one(cfg, Path("."), "Boxing", seed, "full", seen_path=SEEN)["reward_per_env"]
    base = run_one(cfg, Path("."), "Boxing", seed, "no_memory")["reward_per_env"]
    return full - base


@pytest.mark.slow
def test_memory_on_unseen_game_within_the_measured_paired_margin(full_budget):
    assert lookup("Boxing").unseen
    seeds = ALL_SEEDS if full_budget else CI_SEEDS
    half_width = T_975_DF7 * SD_D * (np.sqrt(1 / 8) if full_budget else np.sqrt(1 / 2 + 1 / 8))
    diffs = np.array([_diff(s) for s in seeds])
    assert diffs.mean() >= MEAN_D - half_width, (diffs, MEAN_D, half_width)
