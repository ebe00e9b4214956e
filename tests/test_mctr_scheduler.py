"""MCTR adaptive meta-reasoning scheduler on scripted streams."""
from __future__ import annotations

from agents.mctr import scheduler as S


def _drive(cfg, steps, changes_fn, reward_fn=lambda t: 0.0, entries=10):
    state, runs = S.init_state(cfg), []
    for t in range(steps):
        state, surprise = S.observe_reward(cfg, state, reward_fn(t))
        d = S.decide(cfg, state, t, entries, surprise)
        if d.run:
            runs.append((t, d.reason))
            state = S.after_reflection(cfg, state, t, changes_fn(t))
    return runs, state


def test_frequency_falls_as_memory_stabilises():
    cfg = S.SchedulerConfig(min_interval=8, max_interval=128, growth=2.0, stable_changes=1, min_gap=4)
    # the memory changes a lot for the first 100 steps, then each run changes nothing
    runs, state = _drive(cfg, 1000, lambda t: 10 if t < 100 else 0)
    early = sum(1 for t, _ in runs if t < 100)
    late = sum(1 for t, _ in runs if 500 <= t < 1000)
    assert early >= 10  # every ~8 steps while unstable
    assert late <= 5  # interval grew to 128
    assert state.interval == 128
    gaps = [b - a for (a, _), (b, _) in zip(runs, runs[1:])]
    assert gaps[-1] >= gaps[len(gaps) // 4]  # gaps never shrink while stable


def test_renewed_change_resets_the_interval():
    cfg = S.SchedulerConfig(min_interval=8, max_interval=256)
    runs, state = _drive(cfg, 600, lambda t: 0 if t < 400 else 5)
    assert state.interval == 8
    first_after = min(t for t, _ in runs if t >= 400)  # the next scheduled run sees the change...
    assert sum(1 for t, _ in runs if t > first_after) >= (600 - first_after) // 8 - 2  # ...then every 8 steps


def test_sparse_memory_runs_at_every_gap_and_surprise_triggers_early():
    cfg = S.SchedulerConfig(min_interval=8, max_interval=256, min_gap=4, sparse_entries=3)
    runs, _ = _drive(cfg, 40, lambda t: 0, entries=0)
    assert [t for t, _ in runs] == list(range(0, 40, 4)) and {r for _, r in runs} == {"sparse"}
    # stable memory, rare big reward at t=300 -> a surprise run although the interval is long
    runs, _ = _drive(cfg, 400, lambda t: 0, reward_fn=lambda t: 50.0 if t == 300 else 0.0)
    assert (300, "surprise") in runs


def test_disabled_never_runs_and_logs_why():
    cfg = S.SchedulerConfig(enabled=False)
    state = S.init_state(cfg)
    d = S.decide(cfg, state, 100, 0, 99.0)
    assert not d.run and d.reason == "disabled"
