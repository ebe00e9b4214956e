"""The paired experiment's statistics on records with known answers (no emulator): Holm adjustment, carried vs
empty memory pairing, per-game paired statistics."""
from __future__ import annotations

import numpy as np
import pytest

from agents.mctr.paired import against, holm, report


def test_holm_step_down_is_monotone_and_capped():
    assert holm({"a": 0.01, "b": 0.04}) == pytest.approx({"a": 0.02, "b": 0.04})
    assert holm({"a": 0.03, "b": 0.02}) == pytest.approx({"a": 0.04, "b": 0.04})  # monotone in the sorted order
    assert holm({"a": 0.6, "b": 0.9}) == {"a": 1.0, "b": 1.0}


def _rec(game, seed, variant, reward):
    return {"game": game, "seed": seed, "variant": variant, "reward_per_env": reward}


def test_against_pairs_full_with_the_other_experiments_full_runs():
    carried = [_rec("DemonAttack", s, "full", 10.0 + s) for s in range(4)] + \
        [_rec("DemonAttack", s, "no_memory", 0.0) for s in range(4)]
    empty = [_rec("DemonAttack", s, "full", 8.0 + s + (s % 2)) for s in range(4)]
    res = report(against(carried, empty))["games"]["DemonAttack"]
    d = np.array([2.0, 1.0, 2.0, 1.0])  # carried - empty, seed by seed; the no_memory runs are ignored
    assert res["mean_diff"] == pytest.approx(d.mean()) and res["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert (res["wins"], res["losses"], res["ties"]) == (4, 0, 0) and res["no_memory_mean"] == pytest.approx(10.0)
