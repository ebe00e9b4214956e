"""Aggregate metrics with stratified-bootstrap confidence intervals, through ``rliable`` (Agarwal et al. 2021).

rliable 1.2.0 gotcha: its bootstraps draw indices from NumPy's *global* RNG (``np.random.choice``) and ignore the
``random_state`` argument, so every call here runs inside ``_seeded`` (which restores the global state afterwards)
to make intervals reproducible for a given ``seed``.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator, Mapping

import numpy as np

METRICS = ("mean", "median", "iqm", "optimality_gap")
METRIC_TITLES = {"mean": "mean", "median": "median", "iqm": "IQM", "optimality_gap": "optimality gap"}


@dataclasses.dataclass(frozen=True)
class Estimate:
    point: float
    low: float | None  # None: no interval (fewer than 2 runs)
    high: float | None

    def as_dict(self) -> dict:
        return {"point": self.point, "ci_low": self.low, "ci_high": self.high}


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _aggregate_fn(names: tuple[str, ...]):
    from rliable import metrics
    fns = {"mean": metrics.aggregate_mean, "median": metrics.aggregate_median, "iqm": metrics.aggregate_iqm,
           "optimality_gap": metrics.aggregate_optimality_gap}
    return lambda scores: np.array([fns[n](scores) for n in names])


def aggregate_estimates(scores: Mapping[str, np.ndarray], names: tuple[str, ...] = METRICS, reps: int = 2000,
                        seed: int = 0, confidence: float = 0.95) -> dict[str, dict[str, Estimate]]:
    """group -> metric -> estimate, from ``[runs, tasks]`` score matrices; CIs resample runs within each task."""
    from rliable import library as rly
    fn = _aggregate_fn(names)
    out = {}
    for group, s in scores.items():
        if s.shape[0] < 2:  # one run: a point estimate only
            out[group] = {n: Estimate(float(p), None, None) for n, p in zip(names, fn(s))}
            continue
        with _seeded(seed):
            point, interval = rly.get_interval_estimates({group: s}, fn, reps=reps,
                                                         confidence_interval_size=confidence)
        out[group] = {n: Estimate(float(point[group][i]), float(interval[group][0, i]),
                                  float(interval[group][1, i])) for i, n in enumerate(names)}
    return out


def curve_estimates(curves: Mapping[str, np.ndarray], reps: int = 500, seed: int = 0, confidence: float = 0.95
                    ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """group -> (IQM per step [steps], CI [2, steps] or None) from ``[runs, tasks, steps]`` curves."""
    from rliable import library as rly
    from rliable import metrics

    def iqm_per_step(s):  # [runs, tasks, steps] -> [steps]
        return np.array([metrics.aggregate_iqm(s[..., k]) for k in range(s.shape[-1])])

    out = {}
    for group, c in curves.items():
        if c.shape[0] < 2:
            out[group] = (iqm_per_step(c), None)
            continue
        with _seeded(seed):
            point, interval = rly.get_interval_estimates({group: c}, iqm_per_step, reps=reps,
                                                         confidence_interval_size=confidence)
        out[group] = (point[group], interval[group])
    return out


def performance_profiles(scores: Mapping[str, np.ndarray], taus: np.ndarray, reps: int = 500, seed: int = 0
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fraction of runs scoring above each tau, with CIs (rliable's score distributions)."""
    from rliable import library as rly
    with _seeded(seed):
        return rly.create_performance_profile(dict(scores), taus, reps=reps)


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = 1000, seed: int = 0,
                               confidence: float = 0.95) -> Estimate:
    """P(X > Y) averaged over tasks (Mann-Whitney per task), CI by independent stratified bootstrap."""
    from rliable import library as rly
    from rliable import metrics
    if min(x.shape[0], y.shape[0]) < 2:
        return Estimate(float(metrics.probability_of_improvement(x, y)), None, None)
    with _seeded(seed):
        point, interval = rly.get_interval_estimates({"poi": [x, y]}, metrics.probability_of_improvement,
                                                     reps=reps, confidence_interval_size=confidence)
    low, high = np.ravel(interval["poi"])  # [2, 1]
    return Estimate(float(np.ravel(point["poi"])[0]), float(low), float(high))
