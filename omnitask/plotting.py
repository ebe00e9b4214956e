"""Learning-curve PNGs from a run's metrics.jsonl (headless matplotlib)."""
from __future__ import annotations

from pathlib import Path

from omnitask.metrics_log import read_metrics

# Train metrics worth a panel when present (first match wins per panel).
_TRAIN_RETURN_KEYS = ("episode_return", "return_mean", "train_return")


def plot_run(run_dir: Path, out: Path | None = None) -> Path | None:
    """Eval return (and per-task eval returns) and the training episode return vs env steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    if not rows:
        return None
    evals = [r for r in rows if r["split"] == "eval"]
    trains = [r for r in rows if r["split"] == "train"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    if evals:
        steps = [r["env_steps"] for r in evals]
        ax.plot(steps, [r.get("return_mean") for r in evals], "o-", label="eval return (mean)", lw=2)
        per_task = sorted({k for r in evals for k in r if k.startswith("return_mean/")})
        for k in per_task[:12]:
            ax.plot(steps, [r.get(k) for r in evals], "-", alpha=0.6, label=k.split("/", 1)[1])
        ax.legend(fontsize=7)
    ax.set_title("evaluation")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax = axes[1]
    # Training-return series: keys with a return name as one of their path parts ("train/episode_return",
    # "train_return/<task>", ...), one line each.
    keys = sorted({k for r in trains for k in r if set(k.split("/")) & set(_TRAIN_RETURN_KEYS)})
    for key in keys[:12]:
        pts = [(r["env_steps"], r[key]) for r in trains if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), "-", alpha=0.8, label=key)
    if len(keys) > 1:
        ax.legend(fontsize=7)
    ax.set_title("training episode returns" if keys else "training (no return metric)")
    ax.set_xlabel("env steps")
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(Path(run_dir).name, fontsize=9)
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "learning_curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
