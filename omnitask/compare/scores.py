"""Score matrices of grouped runs: ``[seeds, tasks]`` final (or at-N-steps) scores and ``[seeds, tasks, steps]``
learning curves, normalised per task.

A row is a seed. A multi-task run fills a whole row (``<metric>/<task>`` keys of its eval rows); single-task runs
on different envs fill one cell each (task = env id), so "DQN on Pong and Breakout, seeds 0-2" is a 3 x 2 matrix.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from omnitask.compare.normalise import Reference, family, normalise, reference_for
from omnitask.compare.runs import Run
from omnitask.config import ConfigError


@dataclasses.dataclass(frozen=True, order=True)
class TaskKey:
    env_id: str
    name: str  # per-task name of a multi-task run ("" for a single-task run)

    def label(self, short: bool) -> str:
        if short:
            return self.name or self.env_id
        return f"{self.env_id}:{self.name}" if self.name else self.env_id


@dataclasses.dataclass
class ScoreTable:
    tasks: tuple[TaskKey, ...]
    labels: tuple[str, ...]  # display names of ``tasks``
    seeds: dict[str, list[int]]  # group -> row seeds
    raw: dict[str, np.ndarray]  # group -> [seeds, tasks] un-normalised scores
    scores: dict[str, np.ndarray]  # group -> [seeds, tasks] normalised scores (== raw for mode 'none')
    curve_steps: dict[str, np.ndarray]  # group -> [steps] env steps evaluated by every run of the group
    curves: dict[str, np.ndarray]  # group -> [seeds, tasks, steps] normalised eval scores
    references: dict[str, Reference | None]  # task label -> reference used (None: as is)
    best: dict[str, float]  # task label -> best raw score compared (stands in for a missing maximum)
    metric: str
    mode: str
    score_steps: dict[str, int]  # run path -> env steps of the row that was scored
    notes: list[str]


def metric_for(run: Run, metric: str, mode: str) -> str:
    """Meta-World runs are scored by success rate when normalising (``success/<task>`` or ``success_rate``)."""
    if mode != "none" and family(run.env_id) == "metaworld":
        keys = set(run.final)
        return "success" if any(k.startswith("success/") for k in keys) else "success_rate"
    return metric


def scored_row(run: Run, at_steps: int | None) -> dict:
    """The final evaluation, or the last evaluation at or before ``at_steps`` env steps."""
    if at_steps is None:
        return run.final
    rows = [r for r in run.evals if r["env_steps"] <= at_steps]
    if not rows:
        first = run.evals[0]["env_steps"] if run.evals else None
        raise ConfigError(f"run {run.path}: no evaluation at or before {at_steps} env steps "
                          f"(first evaluation: {first})")
    return rows[-1]


def task_values(run: Run, row: Mapping, metric: str) -> dict[TaskKey, float | None]:
    """``<metric>/<task>`` values of a multi-task row, else ``{env id: <metric>}``."""
    prefix = metric + "/"
    per_task = {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}
    if per_task and run.config.get("agent") == "pvn":  # PVN's sub-keys are its learners, not tasks
        raise ConfigError(f"run {run.path}: PVN logs one {metric} per learner ({', '.join(sorted(per_task))}), "
                          f"not per task; compare one learner with --metric {prefix}<learner>")
    if per_task:
        return {TaskKey(run.env_id, name): v for name, v in per_task.items()}
    if metric in row:
        return {TaskKey(run.env_id, ""): row[metric]}
    names = sorted(k for k, v in row.items() if isinstance(v, float) or v is None)
    raise ConfigError(f"run {run.path}: its evaluation has no metric {metric!r}; available: {', '.join(names)}")


def _scale(task: TaskKey, metric: str) -> str:
    """Tasks with one scale id can be averaged raw: contexts of one env, not different games or Meta-World tasks."""
    fam = family(task.env_id)
    if fam == "atari" and task.name:
        return f"atari/{task.name}"
    if fam == "metaworld" and task.name and not metric.startswith("success"):
        return f"metaworld/{task.name}"
    return task.env_id


def _cells(groups: Mapping[str, Sequence[Run]], metric: str, mode: str, at_steps: int | None,
           drop_nonfinite: bool, notes: list[str], score_steps: dict[str, int]
           ) -> dict[str, dict[tuple[int, TaskKey], tuple[float, Run]]]:
    """group -> (seed, task) -> (raw score, run)."""
    out: dict[str, dict] = {}
    for group, runs in groups.items():
        cells: dict[tuple[int, TaskKey], tuple[float, Run]] = {}
        for run in runs:
            row = scored_row(run, at_steps)
            values = task_values(run, row, metric_for(run, metric, mode))
            bad = [t.label(False) for t, v in values.items() if v is None]
            if bad:
                if not drop_nonfinite:
                    raise ConfigError(f"run {run.path}: {metric} is not finite (null) for {', '.join(bad)} at "
                                      f"{row.get('env_steps')} env steps; pass --drop-nonfinite to leave such runs "
                                      "out (the report lists them)")
                notes.append(f"left out {run.path} (group {group}): non-finite {metric} for {', '.join(bad)}")
                continue
            score_steps[str(run.path)] = int(row.get("env_steps") or 0)
            if at_steps is None and not run.finished:
                notes.append(f"{run.path} has no final_eval.json (unfinished?): scored its last evaluation, at "
                             f"{score_steps[str(run.path)]:,} env steps")
            for task, v in values.items():
                if (run.seed, task) in cells:
                    other = cells[(run.seed, task)][1]
                    raise ConfigError(f"group {group}: runs {other.path} and {run.path} are both seed {run.seed} "
                                      f"on {task.label(False)}; split them with --group-by or compare one")
                cells[(run.seed, task)] = (float(v), run)
        if not cells:
            raise ConfigError(f"group {group}: no run left to compare")
        out[group] = cells
    return out


def build_table(groups: Mapping[str, Sequence[Run]], metric: str = "return_mean", mode: str = "none",
                at_steps: int | None = None, references: Mapping[str, Reference] = (),
                drop_nonfinite: bool = False) -> ScoreTable:
    notes: list[str] = []
    score_steps: dict[str, int] = {}
    cells = _cells(groups, metric, mode, at_steps, drop_nonfinite, notes, score_steps)
    # every group must cover the same tasks, each with the same seeds
    task_sets = {g: frozenset(t for _, t in c) for g, c in cells.items()}
    tasks = tuple(sorted(next(iter(task_sets.values()))))
    for g, ts in task_sets.items():
        if ts != set(tasks):
            first = next(iter(task_sets))
            raise ConfigError(f"groups cover different tasks: {first}: {sorted(t.label(False) for t in tasks)}; "
                              f"{g}: {sorted(t.label(False) for t in ts)}; compare groups on the same tasks")
    seeds: dict[str, list[int]] = {}
    for g, c in cells.items():
        by_task = {t: sorted(s for s, tt in c if tt == t) for t in tasks}
        first = by_task[tasks[0]]
        for t, s in by_task.items():
            if s != first:
                raise ConfigError(f"group {g}: {t.label(False)} has seeds {s} but {tasks[0].label(False)} has "
                                  f"{first}; every task of a group needs the same seeds")
        seeds[g] = first
    short = len({t.env_id for t in tasks}) == 1
    labels = tuple(t.label(short) for t in tasks)
    if mode == "none":
        scales = sorted({_scale(t, metric) for t in tasks})
        if len(scales) > 1:
            raise ConfigError(f"runs on different envs ({', '.join(scales)}) cannot be aggregated on raw {metric}; "
                              "pass --normalise human (Atari) or random-max (classic control, MinAtar), or "
                              "--reference FILE")
    refs = {lab: reference_for(t.env_id, t.name or None, mode, references) for t, lab in zip(tasks, labels)}
    raw = {g: np.array([[c[(s, t)][0] for t in tasks] for s in seeds[g]]) for g, c in cells.items()}
    best = {lab: float(max(raw[g][:, j].max() for g in raw)) for j, lab in enumerate(labels)}
    for lab, ref in refs.items():
        if ref is not None and ref.high is None:
            notes.append(f"{lab}: no maximum score exists; 1.0 = the best compared run ({best[lab]:.4g})")

    def norm(values: np.ndarray) -> np.ndarray:  # [seeds, tasks, ...]
        out = np.array(values, dtype=float)
        for j, lab in enumerate(labels):
            out[:, j] = np.vectorize(lambda v: normalise(v, refs[lab], best[lab]))(out[:, j])
        return out

    scores = {g: norm(r) for g, r in raw.items()}
    curve_steps, curves = {}, {}
    for g, c in cells.items():
        steps, curve = _curve(c, seeds[g], tasks, metric, mode)
        if steps is None:
            notes.append(f"group {g}: its runs share fewer than 2 evaluation steps; no learning curve")
            continue
        curve_steps[g], curves[g] = steps, norm(curve)
    return ScoreTable(tasks, labels, seeds, raw, scores, curve_steps, curves, refs, best, metric, mode,
                      score_steps, notes)


def _curve(cells: Mapping, seeds: Sequence[int], tasks: Sequence[TaskKey], metric: str, mode: str
           ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """[steps] and raw [seeds, tasks, steps] over the eval steps every (seed, task) run has a finite value at."""
    series: dict[tuple[int, TaskKey], dict[int, float]] = {}
    for s in seeds:
        for t in tasks:
            run = cells[(s, t)][1]
            m = metric_for(run, metric, mode)
            pts = {}
            for row in run.evals:
                v = task_values(run, row, m).get(t) if _has_metric(row, m) else None
                if v is not None:
                    pts[int(row["env_steps"])] = v
            series[(s, t)] = pts
    common = sorted(set.intersection(*(set(p) for p in series.values())))
    if len(common) < 2:
        return None, None
    arr = np.array([[[series[(s, t)][k] for k in common] for t in tasks] for s in seeds])
    return np.array(common), arr


def _has_metric(row: Mapping, metric: str) -> bool:
    return metric in row or any(k.startswith(metric + "/") for k in row)
