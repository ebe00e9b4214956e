"""Learning-curve PNGs from a run's metrics.jsonl (headless matplotlib)."""
from __future__ import annotations

from pathlib import Path

from omnitask.metrics_log import read_metrics

# Train metrics worth a panel when present (first match wins per panel).
_TRAIN_RETURN_KEYS = ("episode_return", "return_mean", "train_return")
# Eval metrics that are not returns: (key, axis label). MBTL's online trainer reports normalised performance.
_EVAL_SCORES = (("generalized_performance", "normalised generalised performance"),)
_MAX_SERIES = 12


def _task(key: str) -> str | None:
    """The task or learner a series belongs to: ``return_mean/<task>``, ``train_return/<task>``,
    ``<learner>/episode_return`` -> the name; plain ``episode_return`` / ``train/episode_return`` -> None."""
    names = [part for part in key.split("/") if part not in _TRAIN_RETURN_KEYS and part != "train"]
    return "/".join(names) or None


def _steps_label(x: float, _pos=None) -> str:
    """Env-step tick label: 500, 2.5k, 1.2M (short, so tick labels never run together)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def format_step_axis(ax) -> None:
    """At most ~6 integer ticks labelled with ``_steps_label`` on the x axis (env steps)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))


def plot_run(run_dir: Path, out: Path | None = None) -> Path | None:
    """Evaluation score (and per-task eval returns) and the training episode returns vs env steps.

    A task keeps one colour in both panels; the eval mean is black. Step axes use engineering notation (12k, 1.2M)
    so tick labels never run together.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    if not rows:
        return None
    evals = [r for r in rows if r["split"] == "eval"]
    trains = [r for r in rows if r["split"] == "train"]
    train_keys = sorted({k for r in trains for k in r if set(k.split("/")) & set(_TRAIN_RETURN_KEYS)})[:_MAX_SERIES]
    eval_keys = sorted({k for r in evals for k in r if k.startswith("return_mean/")})[:_MAX_SERIES]
    tasks = sorted({t for k in train_keys + eval_keys if (t := _task(k)) is not None})
    # One colour per task in both panels; series without a task (e.g. "episode_return") take the next ones.
    others = [k for k in train_keys if _task(k) is None]
    colour = {name: f"C{i % 10}" for i, name in enumerate(tasks + others)}

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    score_key, score_label = next(((k, label) for k, label in _EVAL_SCORES if any(k in r for r in evals)),
                                  ("return_mean", "return"))
    if evals:
        steps = [r["env_steps"] for r in evals]
        ax.plot(steps, [r.get(score_key) for r in evals], "o-", c="k", lw=2, label=f"eval {score_label} (mean)")
        for k in eval_keys:
            ax.plot(steps, [r.get(k) for r in evals], "-", alpha=0.7, c=colour[_task(k)], label=_task(k))
        ax.legend(fontsize=7)
    ax.set_title("evaluation")
    ax.set_ylabel(score_label)
    ax = axes[1]
    # Training-return series: keys with a return name as one of their path parts ("train/episode_return",
    # "train_return/<task>", ...), one line each.
    for key in train_keys:
        pts = [(r["env_steps"], r[key]) for r in trains if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), "-", alpha=0.8, c=colour[_task(key) or key], label=key,
                    marker="o" if len(pts) < 3 else None, ms=4)  # a line of 1-2 points would not show
    if train_keys:
        ax.legend(fontsize=7)
        ax.set_title("training episode returns")
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no training-return metric logged\n(keys: " + ", ".join(_TRAIN_RETURN_KEYS) + ")",
                ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")
    for a in axes:
        a.set_xlabel("env steps")
        format_step_axis(a)
        a.grid(alpha=0.3)
    fig.suptitle(Path(run_dir).name, fontsize=9)
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "learning_curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
