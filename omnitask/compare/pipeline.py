"""``omnitask compare`` end to end: find runs -> group -> score matrices -> estimates -> compare.{md,json,png}."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from omnitask.compare.aggregate import METRICS, Estimate, aggregate_estimates, curve_estimates
from omnitask.compare.normalise import MODES, load_reference_file
from omnitask.compare.paired import PairedResult, paired_comparison
from omnitask.compare.runs import find_run_dirs, group_runs, load_run
from omnitask.compare.scores import ScoreTable, build_table
from omnitask.config import ConfigError


@dataclasses.dataclass(frozen=True)
class CompareOptions:
    group_by: str = "name"  # agent | name | name:REGEX | config.KEY
    metric: str = "return_mean"  # eval metric; per-task values are read from <metric>/<task>
    at_steps: int | None = None  # score the last evaluation at or before this many env steps (default: final)
    normalise: str = "none"  # none | human | random-max
    reference: str | None = None  # YAML of extra references {task or env id: {random: R, max: M}}
    baseline: str | None = None  # group the others are paired against (default: the first group)
    reps: int = 2000  # bootstrap resamples
    seed: int = 0  # bootstrap seed
    confidence: float = 0.95
    drop_nonfinite: bool = False  # leave out runs whose score is null (non-finite) instead of refusing


@dataclasses.dataclass
class Comparison:
    options: CompareOptions
    table: ScoreTable
    runs: dict[str, list[str]]  # group -> run directories
    aggregates: dict[str, dict[str, Estimate]]  # group -> metric -> estimate
    curves: dict  # group -> (steps, IQM per step, CI or None)
    paired: list[PairedResult]
    notes: list[str]


def compare(paths: Sequence[str | Path], options: CompareOptions = CompareOptions()) -> Comparison:
    try:
        import rliable  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError("omnitask compare needs rliable: pip install 'omnitask[compare]'") from None
    if options.normalise not in MODES:
        raise ConfigError(f"--normalise {options.normalise!r} is not known; allowed: {', '.join(MODES)}")
    if options.reps < 100:
        raise ConfigError(f"--reps {options.reps}: use at least 100 bootstrap resamples (2000 is the default)")
    if not 0.5 <= options.confidence < 1:
        raise ConfigError(f"--confidence {options.confidence}: must be in [0.5, 1)")
    runs = [load_run(p) for p in find_run_dirs(paths)]
    groups = group_runs(runs, options.group_by)
    refs = load_reference_file(options.reference) if options.reference else {}
    table = build_table(groups, options.metric, options.normalise, options.at_steps, refs, options.drop_nonfinite)
    notes = list(table.notes)
    for g, seeds in table.seeds.items():
        if len(seeds) < 2:
            notes.append(f"group {g} has {len(seeds)} run(s) per task: no confidence interval, point estimates "
                         "only (train more seeds: omnitask train CONFIG --seeds 0,1,2)")
    names = METRICS if options.normalise != "none" else METRICS[:3]  # optimality gap needs a 0..1 scale
    aggregates = aggregate_estimates(table.scores, names, options.reps, options.seed, options.confidence)
    curves = {g: (table.curve_steps[g], *est) for g, est in
              curve_estimates(table.curves, max(100, options.reps // 4), options.seed, options.confidence).items()}
    paired = _paired(table, options, notes)
    return Comparison(options, table, {g: [str(r.path) for r in rs] for g, rs in groups.items()}, aggregates,
                      curves, paired, notes)


def _paired(table: ScoreTable, options: CompareOptions, notes: list[str]) -> list[PairedResult]:
    groups = list(table.scores)
    if len(groups) < 2:
        return []
    baseline = options.baseline or groups[0]
    if baseline not in groups:
        raise ConfigError(f"--baseline {baseline!r} is not a group; groups: {', '.join(groups)}")
    out = []
    for g in groups:
        if g == baseline:
            continue
        res = paired_comparison(g, table.scores[g], table.seeds[g], baseline, table.scores[baseline],
                                table.seeds[baseline], options.reps, options.seed, options.confidence)
        if res is None:
            notes.append(f"{g} vs {baseline}: fewer than 2 shared seeds, no paired comparison")
        else:
            out.append(res)
    return out
