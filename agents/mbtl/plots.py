"""Replay outputs: curves CSV, PNG plots (vs trained tasks, vs env samples on a log scale) and the
sample-efficiency ratio of MBTL vs independent training at a fraction of the exhaustive oracle."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from agents.mbtl.strategies import Curve
from omnitask.fileio import atomic_write_bytes, atomic_write_text


def _first_reach(perf: np.ndarray, tasks: np.ndarray, target: float) -> float | None:
    hit = np.nonzero(perf >= target - 1e-12)[0]
    return float(tasks[hit[0]]) if hit.size else None


def sample_efficiency(curves: list[Curve], m: np.ndarray, fraction: float = 0.9) -> dict:
    """Tasks (= samples / steps_per_task) each strategy needs to reach ``fraction`` of the exhaustive oracle.

    Independent training's curve is (k / N) mean(diag) (each policy serves only its own context). When it never
    reaches the target, the ratio against its full cost (N tasks) is reported as a lower bound.
    """
    by = {c.name: c for c in curves}
    oracle = float(by["Exhaustive Oracle"].perf[0]) if "Exhaustive Oracle" in by else float(m.max(axis=0).mean())
    target = fraction * oracle
    n = m.shape[0]
    diag_mean = float(np.diag(m).mean())
    k_ind = math.ceil(target * n / diag_mean - 1e-9) if diag_mean >= target else None
    out = {"fraction": fraction, "exhaustive_oracle": oracle, "target": target,
           "independent_full_performance": diag_mean, "independent_tasks_to_target": k_ind, "num_contexts": n,
           "tasks_to_target": {c.name: _first_reach(c.perf, c.tasks, target) for c in curves
                               if c.name not in ("Exhaustive Oracle", "Independent")}}
    k_mbtl = out["tasks_to_target"].get("MBTL")
    out["mbtl_vs_independent"] = (k_ind / k_mbtl) if (k_ind and k_mbtl) else None
    out["mbtl_vs_independent_full_cost_lower_bound"] = (n / k_mbtl) if (k_mbtl and not k_ind) else None
    k_mt = out["tasks_to_target"].get("Multi-task")
    out["mbtl_vs_multitask"] = (k_mt / k_mbtl) if (k_mt and k_mbtl) else None
    # every strategy's samples to the target relative to MBTL's (> 1: MBTL needs fewer)
    out["mbtl_vs_each"] = {name: (k / k_mbtl) if (k and k_mbtl) else None
                           for name, k in out["tasks_to_target"].items() if name != "MBTL"}
    return out


def curves_csv(curves: list[Curve], steps_per_task: int) -> str:
    lines = ["strategy,k,task_equivalents,env_steps,perf,perf_std,selected"]
    for c in curves:
        for i, p in enumerate(c.perf):
            t = float(c.tasks[i])
            std = "" if c.perf_std is None else f"{c.perf_std[i]:.6f}"
            sel = "" if c.order is None else str(int(c.order[i]))
            lines.append(f"{c.name},{i + 1},{t:g},{int(round(t * steps_per_task))},{p:.6f},{std},{sel}")
    return "\n".join(lines) + "\n"


def _figure(curves: list[Curve], steps_per_task: int, x: str, title: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for c in curves:
        xs = c.tasks.astype(float) * (steps_per_task if x == "samples" else 1)
        style = {"Exhaustive Oracle": dict(ls="--", c="k"), "Sequential Oracle": dict(ls=":", c="k"),
                 "MBTL": dict(lw=2.5, c="C3"), "Multi-task": dict(marker="s", ls="none", c="C5"),
                 "Independent": dict(c="C0"), "Random": dict(c="C1"), "Equidistant": dict(c="C2"),
                 "Coarse-to-fine": dict(c="C8"), "Greedy (pseudo)": dict(c="C4")}.get(c.name, {})
        if c.name == "Multi-task":
            ax.plot(xs[:1], c.perf[:1], label=c.name, **style)
            continue
        (line,) = ax.plot(xs, c.perf, label=c.name, **style)
        if c.perf_std is not None:  # the band takes its curve's colour and has its own legend entry
            ax.fill_between(xs, c.perf - c.perf_std, c.perf + c.perf_std, alpha=0.15, color=line.get_color(),
                            label=f"{c.name} ± 1 std over orders")
    if x == "samples":
        ax.set_xscale("log")
        ax.set_xlabel("training env steps (log scale)")
    else:
        ax.set_xlabel("number of trained tasks")
    ax.set_ylabel("normalised generalised performance")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # beside the data
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def write_outputs(curves: list[Curve], m: np.ndarray, steps_per_task: int, out_dir: str | Path,
                  title: str = "MBTL") -> dict:
    """Write curves.csv, perf_vs_tasks.png, perf_vs_samples.png, summary.json into out_dir; returns summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curves.csv", curves_csv(curves, steps_per_task))
    atomic_write_bytes(out / "perf_vs_tasks.png", _figure(curves, steps_per_task, "tasks", title))
    atomic_write_bytes(out / "perf_vs_samples.png", _figure(curves, steps_per_task, "samples", title))
    summary = {"sample_efficiency": sample_efficiency(curves, m),
               "final_perf": {c.name: float(c.perf[-1]) for c in curves},
               "k_max": int(len(curves[0].perf)), "steps_per_task": int(steps_per_task),
               "orders": {c.name: [int(i) for i in c.order] for c in curves if c.order is not None}}
    if "MBTL" in summary["orders"]:
        summary["mbtl_order"] = summary["orders"]["MBTL"]
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
