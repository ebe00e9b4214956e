"""compare.md (tables a reader can paste into a paper draft) and compare.json (the same numbers, for scripts)."""
from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np

from omnitask.compare.aggregate import METRIC_TITLES, Estimate
from omnitask.compare.pipeline import Comparison
from omnitask.fileio import atomic_write_json, atomic_write_text

_MODE_TEXT = {"none": "raw scores", "human": "human-normalised (0 = random, 1 = human tester)",
              "random-max": "fraction of the maximum above random (0 = random policy, 1 = maximum)"}


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _est(e: Estimate) -> str:
    return _num(e.point) + (f" [{_num(e.low)}, {_num(e.high)}]" if e.low is not None else " (no CI)")


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def markdown(c: Comparison) -> str:
    o, t = c.options, c.table
    pct = f"{o.confidence:.0%}"
    when = "final evaluation" if o.at_steps is None else f"last evaluation at or before {o.at_steps:,} env steps"
    lines = [f"# Comparison of {sum(len(r) for r in c.runs.values())} runs in {len(c.runs)} groups", "",
             f"- metric: `{o.metric}` at the {when}; groups by `{o.group_by}`",
             f"- scores: {_MODE_TEXT[o.normalise]} (`--normalise {o.normalise}`)",
             f"- intervals: {pct} stratified-bootstrap CIs over runs within each task (rliable, {o.reps} resamples, "
             f"seed {o.seed}); IQM = mean of the middle 50% of all run x task scores", ""]
    metrics = list(next(iter(c.aggregates.values())))
    lines += ["## Aggregates", "",
              "| group | runs | seeds | " + " | ".join(METRIC_TITLES[m] for m in metrics) + " |",
              "|---|---|---|" + "---|" * len(metrics)]
    for g, est in c.aggregates.items():
        seeds = ",".join(map(str, t.seeds[g]))
        lines.append(f"| {g} | {len(c.runs[g])} | {seeds} | " + " | ".join(_est(est[m]) for m in metrics) + " |")
    groups = list(t.scores)
    lines += ["", "## Per task (mean ± std over seeds)", "", "| task | " + " | ".join(groups) + " |",
              "|---|" + "---|" * len(groups)]
    for j, lab in enumerate(t.labels):
        cells = []
        for g in groups:
            col = t.scores[g][:, j]
            cells.append(f"{_num(float(col.mean()))} ± {_num(float(col.std(ddof=1)) if len(col) > 1 else None)}")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    if c.paired:
        lines += ["", "## Paired comparisons (same seeds)", "",
                  f"| group − baseline | pairs | mean difference [{pct} CI] | Wilcoxon p | permutation p | "
                  f"P(group > baseline) [{pct} CI] |", "|---|---|---|---|---|---|"]
        for r in c.paired:
            lines.append(f"| {r.group} − {r.baseline} | {len(r.seeds)} | {_est(r.mean_difference)} | "
                         f"{_p(r.wilcoxon_p)} | {_p(r.permutation_p)} | {_est(r.prob_improvement)} |")
        lines += ["", "Per-seed differences (mean over tasks): " + "; ".join(
            f"{r.group} − {r.baseline}: " + ", ".join(f"s{s}: {_num(d)}" for s, d in zip(r.seeds, r.differences))
            for r in c.paired) + ".",
                  "Two-sided tests on the per-seed differences: with n pairs no p-value can be below 2/2^n ("
                  + ", ".join(sorted({f"n = {len(r.seeds)}: {2 / 2 ** len(r.seeds):.3g}" for r in c.paired}))
                  + "), so a handful of seeds can show an effect size but not significance."]
    rows: dict[tuple, list[str]] = {}  # tasks sharing one reference share a row
    for lab, ref in t.references.items():
        if ref is not None:
            high = ref.high if ref.high is not None else t.best[lab]
            rows.setdefault((ref.low, high, ref.source), []).append(lab)
    if rows:
        lines += ["", "## Normalisation references", "", "| task | 0 = | 1 = | source |", "|---|---|---|---|"]
        for (low, high, source), labs in rows.items():
            lines.append(f"| {', '.join(labs)} | {_num(low)} | {_num(high)} | {source} |")
    if c.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in c.notes]
    return "\n".join(lines) + "\n"


def as_json(c: Comparison) -> dict:
    o, t = c.options, c.table
    return {
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "options": {k: getattr(o, k) for k in o.__dataclass_fields__},
        "tasks": list(t.labels),
        "groups": {g: {"runs": c.runs[g], "seeds": t.seeds[g],
                       "scores": np.asarray(t.scores[g]).tolist(), "raw_scores": np.asarray(t.raw[g]).tolist(),
                       "aggregates": {m: e.as_dict() for m, e in c.aggregates[g].items()},
                       "curve": ({"env_steps": c.curves[g][0].tolist(), "iqm": np.asarray(c.curves[g][1]).tolist(),
                                  "ci": None if c.curves[g][2] is None else np.asarray(c.curves[g][2]).tolist()}
                                 if g in c.curves else None)}
                   for g in t.scores},
        "paired": [r.as_dict() for r in c.paired],
        "references": {lab: None if r is None else {"low": r.low, "high": r.high if r.high is not None
                                                     else t.best[lab], "source": r.source}
                       for lab, r in t.references.items()},
        "scored_env_steps": t.score_steps,
        "notes": c.notes,
    }


def write_reports(c: Comparison, out_dir: Path) -> tuple[Path, Path]:
    md, js = Path(out_dir) / "compare.md", Path(out_dir) / "compare.json"
    atomic_write_text(md, markdown(c))
    atomic_write_json(js, as_json(c))
    return md, js
