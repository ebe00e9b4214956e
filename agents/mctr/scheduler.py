"""Adaptive meta-reasoning scheduler: reflect often while knowledge is sparse or outcomes surprise, rarely once stable.

State is a small frozen record; ``decide`` and ``after_reflection`` are pure functions of it, so the policy can be
tested on a scripted stream. Every decision is returned as a ``Decision`` that the agent logs (JSONL in the run dir).

Rule, evaluated once per agent decision step:
  * run now if the memory holds fewer than ``sparse_entries`` entries for this game ("sparse"), or if the surprise
    (|reward - expected reward| averaged over the last decision, in units of the running reward scale) exceeds
    ``surprise_threshold`` ("surprise"), or if ``interval`` steps have passed since the last run ("interval");
    otherwise skip. ``min_gap`` steps always separate two runs.
  * after a run, the interval grows by ``growth`` (up to ``max_interval``) when the run changed few entries
    (``changes <= stable_changes``: the memory is stabilising) and shrinks back to ``min_interval`` when it changed
    many (the memory is still moving).
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class SchedulerConfig:
    """Knobs of the adaptive meta-reasoning scheduler (units: agent decision steps)."""

    min_interval: int = 8  # interval while the memory changes a lot
    max_interval: int = 256  # interval once the memory is stable
    growth: float = 2.0  # interval multiplier after a run that changed little
    stable_changes: int = 1  # a run with at most this many added/revised/pruned entries counts as "stable"
    sparse_entries: int = 3  # fewer in-scope entries than this: run at every opportunity (after min_gap)
    surprise_threshold: float = 3.0  # |reward - expectation| / reward scale that triggers an early run
    min_gap: int = 4  # never two runs closer than this
    enabled: bool = True  # False: never run meta-reasoning (the "no meta-reasoning" ablation)


@dataclasses.dataclass(frozen=True)
class SchedulerState:
    interval: float  # current interval between runs
    last_run: int  # decision step of the last run (-10**9 before the first)
    runs: int  # runs so far
    reward_mean: float  # running mean of per-decision reward (the expectation)
    reward_scale: float  # running mean absolute deviation (the surprise unit), >= 1e-3


@dataclasses.dataclass(frozen=True)
class Decision:
    """One logged scheduler decision."""

    step: int
    run: bool
    reason: str  # 'sparse' | 'surprise' | 'interval' | 'wait' | 'gap' | 'disabled'
    interval: float
    surprise: float
    num_entries: int


def init_state(cfg: SchedulerConfig) -> SchedulerState:
    return SchedulerState(float(cfg.min_interval), -10**9, 0, 0.0, 1.0)


def observe_reward(cfg: SchedulerConfig, state: SchedulerState, reward: float) -> tuple[SchedulerState, float]:
    """Update the reward expectation with this decision's (mean over envs) reward; return (state, surprise)."""
    surprise = abs(reward - state.reward_mean) / max(state.reward_scale, 1e-3)
    mean = 0.95 * state.reward_mean + 0.05 * reward
    scale = max(0.95 * state.reward_scale + 0.05 * abs(reward - state.reward_mean), 1e-3)
    return dataclasses.replace(state, reward_mean=mean, reward_scale=scale), surprise


def decide(cfg: SchedulerConfig, state: SchedulerState, step: int, num_entries: int, surprise: float) -> Decision:
    """Should meta-reasoning run at ``step``? ``num_entries``: in-scope memory size; ``surprise`` from observe_reward."""
    since = step - state.last_run
    if not cfg.enabled:
        return Decision(step, False, "disabled", state.interval, surprise, num_entries)
    if since < cfg.min_gap:
        return Decision(step, False, "gap", state.interval, surprise, num_entries)
    if num_entries < cfg.sparse_entries:
        return Decision(step, True, "sparse", state.interval, surprise, num_entries)
    if surprise > cfg.surprise_threshold:
        return Decision(step, True, "surprise", state.interval, surprise, num_entries)
    if since >= state.interval:
        return Decision(step, True, "interval", state.interval, surprise, num_entries)
    return Decision(step, False, "wait", state.interval, surprise, num_entries)


def after_reflection(cfg: SchedulerConfig, state: SchedulerState, step: int, changes: int) -> SchedulerState:
    """Record a run at ``step`` that added/revised/pruned ``changes`` entries; adapt the interval."""
    if changes <= cfg.stable_changes:
        interval = min(state.interval * cfg.growth, float(cfg.max_interval))
    else:
        interval = float(cfg.min_interval)
    return dataclasses.replace(state, interval=interval, last_run=step, runs=state.runs + 1)
