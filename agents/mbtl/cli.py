"""``omnitask mbtl`` / ``python -m agents.mbtl``: build a transfer matrix, replay every strategy, or run online MBTL.

  build  CONFIG   train + zero-shot evaluate every (source, seed) not stored yet (resumable)
  replay CONFIG   replay every strategy on the stored matrix -> curves.csv, PNG plots, summary.json
  run    CONFIG   build then replay
  online CONFIG   online MBTL through the run loop (trains only what it selects, to run.total_env_steps)
Options: ``--set key=value`` (OmegaConf dotlist, repeatable), ``--executor inline|local|ray``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COMMANDS = ("build", "replay", "run", "online")


def load(path: str, overrides: list[str]):
    from omnitask.config import ConfigError, load_config
    cfg = load_config(path, overrides)
    if cfg.agent != "mbtl":
        raise ConfigError(f"{path}: `omnitask mbtl` needs `agent: mbtl`, got {cfg.agent!r}")
    return cfg


def replay(cfg, log=print) -> tuple[dict, list]:
    """Replay every strategy on the stored matrix and write the outputs; returns (summary, curves)."""
    import jax

    from agents.mbtl import strategies
    from agents.mbtl.build import experiment_dir, load_normalised
    from agents.mbtl.plots import write_outputs

    norm = load_normalised(cfg)
    k_max = min(cfg.mbtl.k_max, norm.m.shape[0])
    mt_equiv = norm.multitask_steps / norm.steps_per_task if norm.multitask_row is not None else None
    curves = strategies.all_strategies(norm.m, norm.u, k_max, cfg.mbtl.selector, jax.random.PRNGKey(cfg.seed),
                                       cfg.mbtl.num_random_orders, norm.multitask_row, mt_equiv)
    out = experiment_dir(cfg) / "replay"
    summary = write_outputs(curves, norm.m, norm.steps_per_task, out, title=f"MBTL {cfg.env.id}")
    log(f"replay written to {out}")
    log(json.dumps(summary["sample_efficiency"], indent=1))
    return summary, curves


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omnitask mbtl", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("config", help="experiment YAML with `agent: mbtl`")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--executor", choices=("inline", "local", "ray"), default=None,
                   help="where matrix jobs run (default: mbtl.executor)")
    args = p.parse_args(argv)
    from omnitask.config import ConfigError
    try:
        overrides = list(args.overrides) + ([f"mbtl.executor={args.executor}"] if args.executor else [])
        cfg = load(args.config, overrides)
        if args.command in ("build", "run"):
            from agents.mbtl.build import build_matrix
            store, ran = build_matrix(cfg)
            print(f"{ran} jobs run; {len(store)} rows in {store.path}")
            store.export_csv(store.dir / "matrix_mean.csv")
        if args.command in ("replay", "run"):
            replay(cfg)
        if args.command == "online":
            import dataclasses

            from agents.mbtl.build import experiment_dir
            from omnitask.run_dir import new_run_dir
            from omnitask.runner import train
            # Its own run directory beside the study's (build/replay write experiment_dir(cfg)).
            cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, name=f"{experiment_dir(cfg).name}-online"))
            run_dir = new_run_dir(cfg)
            result = train(cfg, Path(run_dir))
            print(json.dumps({"run_dir": str(run_dir), **result.final_eval}, indent=1))
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
