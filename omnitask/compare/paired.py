"""Paired comparison of two groups run with the same seeds: mean difference with a stratified-bootstrap CI
(rliable, over seeds within each task), a Wilcoxon signed-rank test and a paired (sign-flip) permutation test
(scipy) on the per-seed task-mean differences, and rliable's probability of improvement (its bootstrap runs a
Mann-Whitney test per task and resample, so it gets a quarter of the resamples)."""
from __future__ import annotations

import dataclasses

import numpy as np

from omnitask.compare.aggregate import Estimate, _seeded, probability_of_improvement


@dataclasses.dataclass(frozen=True)
class PairedResult:
    group: str
    baseline: str
    seeds: tuple[int, ...]  # seeds both groups ran
    differences: tuple[float, ...]  # per seed: mean over tasks of (group - baseline)
    mean_difference: Estimate
    wilcoxon_p: float | None  # two-sided; None with < 2 pairs or all differences 0
    permutation_p: float | None  # two-sided sign-flip test of the mean difference
    prob_improvement: Estimate  # P(group > baseline), rliable

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["mean_difference"] = self.mean_difference.as_dict()
        d["prob_improvement"] = self.prob_improvement.as_dict()
        return d


def mean_difference(diff: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95) -> Estimate:
    """Mean of ``diff`` ``[pairs, tasks]`` (per-task means, averaged) with rliable's stratified-bootstrap CI."""
    from rliable import library as rly
    from rliable import metrics
    with _seeded(seed):
        point, interval = rly.get_interval_estimates({"d": diff}, lambda d: np.array([metrics.aggregate_mean(d)]),
                                                     reps=reps, confidence_interval_size=confidence)
    return Estimate(float(point["d"][0]), float(interval["d"][0, 0]), float(interval["d"][1, 0]))


def paired_comparison(group: str, x: np.ndarray, x_seeds: list[int], baseline: str, y: np.ndarray,
                      y_seeds: list[int], reps: int = 2000, seed: int = 0, confidence: float = 0.95
                      ) -> PairedResult | None:
    """``x``/``y``: ``[seeds, tasks]`` scores; pairs by seed. None when the groups share fewer than 2 seeds."""
    import scipy.stats

    common = sorted(set(x_seeds) & set(y_seeds))
    if len(common) < 2:
        return None
    xi = np.array([x_seeds.index(s) for s in common])
    yi = np.array([y_seeds.index(s) for s in common])
    diff = x[xi] - y[yi]  # [pairs, tasks]
    per_seed = diff.mean(axis=1)  # [pairs]
    mean_diff = mean_difference(diff, reps, seed, confidence)
    wilcoxon_p = None
    if np.any(per_seed != 0):
        wilcoxon_p = float(scipy.stats.wilcoxon(per_seed, alternative="two-sided").pvalue)
    permutation_p = None
    if np.any(per_seed != 0):
        # sign flips of the paired differences: exact when 2^n is small, else 20k random flips
        res = scipy.stats.permutation_test((per_seed,), np.mean, permutation_type="samples",
                                           n_resamples=20_000, alternative="two-sided", rng=seed)
        permutation_p = float(res.pvalue)
    poi = probability_of_improvement(x[xi], y[yi], reps=max(100, reps // 4), seed=seed, confidence=confidence)
    return PairedResult(group, baseline, tuple(common), tuple(float(d) for d in per_seed), mean_diff,
                        wilcoxon_p, permutation_p, poi)
