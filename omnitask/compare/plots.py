"""compare.png: aggregate learning curves with CI bands, rliable's performance profiles and probability of
improvement (headless matplotlib)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from omnitask.compare.aggregate import performance_profiles
from omnitask.compare.pipeline import Comparison

_SCORE_NAME = {"none": "{metric}", "human": "human-normalised score", "random-max": "fraction of max above random"}


def plot_comparison(c: Comparison, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter
    from rliable import plot_utils

    t, o = c.table, c.options
    groups = list(t.scores)
    colors = dict(zip(groups, plt.get_cmap("tab10").colors))
    score_name = _SCORE_NAME[o.normalise].format(metric=o.metric)
    panels = 3 if c.paired else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.4 * panels, 3.8),
                             gridspec_kw={"width_ratios": [1.0, 1.0, 0.9][:panels]})

    ax = axes[0]
    for g, (steps, iqm, ci) in c.curves.items():
        ax.plot(steps, iqm, "-o", ms=3, color=colors[g], label=f"{g} (n={len(t.seeds[g])})")
        if ci is not None:
            ax.fill_between(steps, ci[0], ci[1], color=colors[g], alpha=0.2, lw=0)
    ax.set_xlabel("env steps")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 20k, not 20000 (labels run together otherwise)
    ax.set_ylabel(f"IQM of {score_name}")
    ax.set_title(f"learning curves (IQM, {o.confidence:.0%} CI band)", fontsize=9)
    if c.curves:
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)

    ax = axes[1]
    all_scores = np.concatenate([s.ravel() for s in t.scores.values()])
    lo, hi = float(min(0.0, all_scores.min())), float(max(all_scores.max(), 1.0 if o.normalise != "none" else 0.0))
    taus = np.linspace(lo, hi + 1e-9, 41)
    profiles, cis = performance_profiles(t.scores, taus, reps=max(100, o.reps // 4), seed=o.seed)
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax,
                                         colors={g: colors[g] for g in groups}, xlabel=f"{score_name} (τ)",
                                         ylabel="fraction of runs > τ", labelsize=9, ticklabelsize=8)
    ax.set_title("performance profile (score distribution)", fontsize=9)
    ax.legend(handles=[plt.Line2D([], [], color=colors[g], label=g) for g in groups], fontsize=7, loc="best")

    if c.paired:
        ax = axes[2]
        est = {f"{r.group},{r.baseline}": r.prob_improvement.point for r in c.paired}
        ci = {f"{r.group},{r.baseline}": np.array([r.prob_improvement.low if r.prob_improvement.low is not None
                                                   else r.prob_improvement.point,
                                                   r.prob_improvement.high if r.prob_improvement.high is not None
                                                   else r.prob_improvement.point]) for r in c.paired}
        plot_utils.plot_probability_of_improvement(est, ci, ax=ax, colors=[colors[r.group] for r in c.paired],
                                                   xticks=[0, 0.25, 0.5, 0.75, 1.0], labelsize=8,
                                                   ticklabelsize=7, interval_height=0.35,
                                                   left_ylabel="group X", right_ylabel="baseline Y",
                                                   ylabel_x_coordinate=0.05)
        ax.axvline(0.5, color="0.5", lw=0.8, ls="--")
        ax.set_title(f"P(X > Y), {o.confidence:.0%} CI", fontsize=9, pad=14)
        ax.set_xlim(0, 1)
        for a in [ax, *fig.axes[panels:]]:  # the bars and rliable's twin axis holding the baseline names
            a.set_ylim(-0.9, len(c.paired) - 0.1)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
