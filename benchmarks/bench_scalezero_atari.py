"""ScaleZero on one real Atari game at CPU width: baselines, learning curve and the pre-registered verdict.

The full form (configs/scalezero/cpu_atari_asterix.yaml, whose header holds the pre-registration):

    python benchmarks/bench_scalezero_atari.py baselines --seeds 0,1 --out runs/sz_asterix/baselines.json
    omnitask train configs/scalezero/cpu_atari_asterix.yaml --set seed=S --set run.out_dir=runs/sz_asterix \
        --set run.name=asterix-sS                                   # S = 0, then 1
    python benchmarks/bench_scalezero_atari.py report runs/sz_asterix/asterix-s0 runs/sz_asterix/asterix-s1 \
        --baselines runs/sz_asterix/baselines.json --png docs/scalezero_cpu_atari_asterix.png

Boxing (configs/scalezero/cpu_atari_boxing.yaml, pre-registered in its header) the same way, with
``baselines --config configs/scalezero/cpu_atari_boxing.yaml --seeds 0,1,2 --out runs/sz_boxing/baselines.json``;
``report`` reads the game and the games per evaluation from the baselines file.

``baselines`` measures, with the trainer's own evaluation loop (same envs, episode cap and episode accounting):
the uniform-random policy (``--random-calls`` x ``eval_episodes`` games) and, per seed, the untrained network's
greedy evaluation exactly as the run would evaluate at env step 0 (its init key and ``fold_in(eval_key, 0)``).
``report`` prints each run's evaluations, applies the rule "final mean - baseline mean > 2 x SE of the difference"
against the random policy (primary) and the untrained network (secondary), and draws eval return vs env steps.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_CONFIG = "configs/scalezero/cpu_atari_asterix.yaml"


def _se_key(result: dict) -> str:
    return next(k for k in result if k.startswith("return_se/"))


def baselines(config: str, seeds: list[int], random_calls: int, out: Path) -> dict:
    from agents.scalezero import ScaleZeroTrainer
    from omnitask.config import load_config
    from omnitask.fileio import atomic_write_json

    cfg = load_config(config)
    episodes = int(cfg.run.eval_episodes)
    trainer = ScaleZeroTrainer(cfg, None)
    try:
        state = trainer.init(jax.random.PRNGKey(0))  # params unused by the random policy
        games = []
        for i in range(random_calls):
            r = trainer.evaluate(state, episodes, jax.random.PRNGKey(10_000 + i), policy="random")
            games.append((r["return_mean"], r[_se_key(r)]))
    finally:
        trainer.close()
    means = np.array([g[0] for g in games])
    # equal-size calls: the pooled mean is the mean of call means; SE from the per-call SEs and the spread of means
    n = episodes * random_calls
    within = np.array([g[1] ** 2 * episodes * (episodes - 1) for g in games]).sum()  # sum of squared deviations
    between = episodes * ((means - means.mean()) ** 2).sum()
    random_se = math.sqrt((within + between) / (n - 1) / n)
    result = {"config": config, "episodes_per_eval": episodes,
              "random": {"mean": float(means.mean()), "se": random_se, "games": n,
                         "call_means": means.tolist()},
              "untrained": {}}
    for seed in seeds:
        run_cfg = load_config(config, [f"seed={seed}"])
        init_key, eval_key = jax.random.split(jax.random.PRNGKey(seed))  # omnitask.runner's keys
        trainer = ScaleZeroTrainer(run_cfg, None)
        try:
            r = trainer.evaluate(trainer.init(init_key), episodes, jax.random.fold_in(eval_key, 0))
        finally:
            trainer.close()
        result["untrained"][str(seed)] = {"mean": r["return_mean"], "se": r[_se_key(r)], "games": episodes}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    print(json.dumps(result, indent=1))
    return result


def _evals(run_dir: Path) -> list[dict]:
    from omnitask.metrics_log import read_metrics
    return [r for r in read_metrics(run_dir) if r["split"] == "eval"]


def above(a_mean, a_se, b_mean, b_se) -> tuple[float, float, bool]:
    """(difference, SE of the difference, difference > 2 SE)."""
    diff, se = a_mean - b_mean, math.sqrt(a_se ** 2 + b_se ** 2)
    return diff, se, bool(diff > 2 * se)


def report(runs: list[Path], base_file: Path, png: Path | None) -> None:
    base = json.loads(base_file.read_text())
    rnd = base["random"]
    print(f"random policy: {rnd['mean']:.1f} +- {rnd['se']:.1f} SE ({rnd['games']} games)")
    curves = {}
    for run in runs:
        evals = _evals(run)
        if not evals:
            print(f"{run}: no evaluations yet")
            continue
        se_key = _se_key(evals[-1])
        pts = [(int(e["env_steps"]), e["return_mean"], e[se_key]) for e in evals]
        curves[run.name] = pts
        print(f"{run.name}: " + ", ".join(f"{s // 1000}k {m:.1f}+-{se:.1f}" for s, m, se in pts))
        final_steps, final_mean, final_se = pts[-1]
        d, se, ok = above(final_mean, final_se, rnd["mean"], rnd["se"])
        print(f"  final @{final_steps}: {final_mean:.1f} +- {final_se:.1f}; vs random {d:+.1f} (SE {se:.1f}): "
              f"{'CLEARLY ABOVE' if ok else 'not clearly above'} random")
        seed = run.name.rsplit("-s", 1)[-1]
        init = base["untrained"].get(seed)
        if init is not None:
            d, se, ok = above(final_mean, final_se, init["mean"], init["se"])
            print(f"  untrained (seed {seed}) {init['mean']:.1f} +- {init['se']:.1f}; final vs untrained {d:+.1f} "
                  f"(SE {se:.1f}): {'clearly above' if ok else 'not clearly above'}")
    if png is not None and curves:
        _plot(curves, base, png)
        print(f"wrote {png}")


def _game(base: dict) -> str:
    """The game of the baselines' config (files written before the config was recorded: Asterix)."""
    from omnitask.config import load_config
    return load_config(base.get("config", DEFAULT_CONFIG)).env.id.split("/", 1)[-1]


def _plot(curves: dict, base: dict, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omnitask.fileio import atomic_write_bytes
    from omnitask.plotting import format_step_axis

    fig, ax = plt.subplots(figsize=(7, 5.2))
    rnd = base["random"]
    ax.axhspan(rnd["mean"] - 2 * rnd["se"], rnd["mean"] + 2 * rnd["se"], color="0.85")
    ax.axhline(rnd["mean"], color="0.3", ls="--", label=f"uniform random policy ({rnd['games']} games, +-2 SE)")
    for i, (name, pts) in enumerate(sorted(curves.items())):
        steps, means, ses = (np.array(x, float) for x in zip(*pts))
        seed = name.rsplit("-s", 1)[-1]
        init = base["untrained"].get(seed)
        if init is not None:  # the run's own evaluation at env step 0 (untrained network)
            steps, means = np.r_[0.0, steps], np.r_[init["mean"], means]
            ses = np.r_[init["se"], ses]
        ax.errorbar(steps, means, yerr=np.nan_to_num(ses), marker="o", ms=4, capsize=3, color=f"C{i}",
                    label=f"{name}: greedy eval ({base.get('episodes_per_eval', 8)} games, +-1 SE"
                          f"{'; step 0 = untrained' if init else ''})")
    ax.set_xlabel("env steps (agent steps, frame skip 4)")
    ax.set_ylabel("game score (unclipped)")
    ax.set_title(f"ScaleZero, CPU width, Atari {_game(base)} (games capped at 1,000 agent steps)")
    format_step_axis(ax)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)  # below: no point hidden
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    png.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(png, buf.getvalue())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("baselines", help="random policy and untrained-network evaluations")
    b.add_argument("--config", default=DEFAULT_CONFIG)
    b.add_argument("--seeds", default="0", help="comma-separated run seeds for the untrained evaluations")
    b.add_argument("--random-calls", type=int, default=8, help="evaluation calls of the random policy")
    b.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("report", help="verdict and curve of finished (or running) runs")
    r.add_argument("runs", nargs="+", type=Path)
    r.add_argument("--baselines", type=Path, required=True)
    r.add_argument("--png", type=Path, default=None)
    a = p.parse_args(argv)
    if a.cmd == "baselines":
        baselines(a.config, [int(s) for s in a.seeds.split(",")], a.random_calls, a.out)
    else:
        report(a.runs, a.baselines, a.png)


if __name__ == "__main__":
    main()
