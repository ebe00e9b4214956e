"""Dynamic Parameter Scaling curriculum controller (pure numpy functions on a small state).

Solved criterion: task k is solved once its return estimate >= ``target_returns[k]``; solved stays solved, and solved
tasks stop collecting and training.
Switch rule (stage s -> s+1, at most ``num_stages - 1`` times), checked after every learner iteration:
  * never before ``min_stage0_iters`` learner updates in total;
  * switch when the number of tasks newly solved during stage s >= ceil(unsolved at the start of s / adapters left),
    or when ``max_stage_iters`` updates have passed in stage s (stage 0 counts from update 0, so with the reference
    values 50k > 20k stage 0 ends exactly at ``min_stage0_iters`` unless enough tasks were solved then).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class CurriculumState(NamedTuple):
    stage: np.ndarray  # () int32 current stage (0 = base, s >= 1 trains adapter s)
    stage_start: np.ndarray  # () int64 learner update at which the stage began
    solved: np.ndarray  # [K] bool
    solved_at_start: np.ndarray  # () int32 solved count when the stage began
    unsolved_at_start: np.ndarray  # () int32 unsolved count when the stage began


def init(num_tasks: int) -> CurriculumState:
    return CurriculumState(np.zeros((), np.int32), np.zeros((), np.int64), np.zeros((num_tasks,), bool),
                           np.zeros((), np.int32), np.asarray(num_tasks, np.int32))


def mark_solved(cs: CurriculumState, returns: np.ndarray, targets: np.ndarray | None) -> CurriculumState:
    """``returns [K]`` (NaN = no estimate yet) vs ``targets [K]`` (None = never solved)."""
    if targets is None:
        return cs
    newly = np.nan_to_num(np.asarray(returns, np.float64), nan=-np.inf) >= np.asarray(targets, np.float64)
    return cs._replace(solved=cs.solved | newly)


def should_switch(cs: CurriculumState, updates: int, num_stages: int, min_stage0_iters: int,
                  max_stage_iters: int) -> bool:
    stage = int(cs.stage)
    if stage >= num_stages - 1 or updates < min_stage0_iters:
        return False
    adapters_left = num_stages - 1 - stage
    newly = int(cs.solved.sum()) - int(cs.solved_at_start)
    need = math.ceil(int(cs.unsolved_at_start) / adapters_left)
    return (newly > 0 and newly >= need) or (updates - int(cs.stage_start) >= max_stage_iters)


def step(cs: CurriculumState, updates: int, returns: np.ndarray, targets: np.ndarray | None, num_stages: int,
         min_stage0_iters: int, max_stage_iters: int) -> CurriculumState:
    """Mark solved tasks, then switch stage if the rule fires. Returns a new state."""
    cs = mark_solved(cs, returns, targets)
    if should_switch(cs, updates, num_stages, min_stage0_iters, max_stage_iters):
        n_solved = int(cs.solved.sum())
        cs = CurriculumState(np.asarray(int(cs.stage) + 1, np.int32), np.asarray(updates, np.int64), cs.solved,
                             np.asarray(n_solved, np.int32), np.asarray(cs.solved.size - n_solved, np.int32))
    return cs
