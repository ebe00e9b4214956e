"""``omnitask mbtl`` / ``python -m agents.mbtl``: build a transfer matrix, replay every strategy, or run online MBTL.

  build  CONFIG   train + zero-shot evaluate every (source, seed) not stored yet (resumable)
  replay CONFIG   replay every strategy on the stored matrix -> curves.csv, PNG plots, summary.json
  run    CONFIG   build then replay
  online CONFIG   online MBTL through the run loop (trains only what it selects, to run.total_env_steps)
  replay --matrix FILE.csv [--contexts FILE.csv] [--strategies a,b] [--seeds N] [--k-max 15] [--out DIR]
                  replay on any stored transfer matrix: N rows (sources) x N columns (targets), no header,
                  values = normalised performance of the source's policy on the target (checked to be in [0, 1]
                  unless --no-normalise-check); contexts: N rows x D columns (default: the 1-D grid 0..N-1)
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


def read_matrix_csv(path: str, check_range: bool = True):
    """[N, N] transfer matrix from a header-less CSV, with one-line errors for what replay cannot use."""
    import numpy as np
    try:
        m = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except OSError as err:
        raise ValueError(f"--matrix {path}: cannot read ({err.strerror or err})") from None
    except ValueError as err:
        raise ValueError(f"--matrix {path}: not a numeric CSV without header ({err})") from None
    if m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"--matrix {path}: must be square N x N with N >= 2 (rows = sources, columns = targets), "
                         f"got {m.shape[0]} x {m.shape[1]}")
    if np.isnan(m).any() or np.isinf(m).any():
        r, c = np.argwhere(~np.isfinite(m))[0]
        raise ValueError(f"--matrix {path}: {int((~np.isfinite(m)).sum())} NaN/inf cells (first at row {r}, column "
                         f"{c}); every (source, target) needs a value")
    if check_range and (m.min() < 0 or m.max() > 1):
        raise ValueError(f"--matrix {path}: values must be normalised to [0, 1], got [{m.min():g}, {m.max():g}] "
                         "(normalise it, or pass --no-normalise-check)")
    return m


def read_contexts_csv(path: str | None, n: int):
    """[N, D] contexts (raw values) -> normalised [0, 1] per column; None: the 1-D grid 0..N-1."""
    import numpy as np
    if path is None:
        return np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    try:
        c = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as err:
        raise ValueError(f"--contexts {path}: cannot read a numeric CSV without header ({err})") from None
    if c.shape[0] != n:
        raise ValueError(f"--contexts {path}: needs one row per context ({n}), got {c.shape[0]}")
    if not np.isfinite(c).all():
        raise ValueError(f"--contexts {path}: has NaN/inf values")
    span = c.max(0) - c.min(0)
    if (span <= 0).any():
        raise ValueError(f"--contexts {path}: column(s) {np.nonzero(span <= 0)[0].tolist()} are constant")
    return ((c - c.min(0)) / span).astype(np.float32)


def replay_matrix(args) -> int:
    """``replay --matrix``: every requested strategy on a CSV matrix -> curves.csv, plots, summary.json."""
    import jax

    from agents.mbtl import strategies
    from agents.mbtl.plots import write_outputs
    from agents.mbtl.selector import SelectorConfig

    m = read_matrix_csv(args.matrix, not args.no_normalise_check)
    u = read_contexts_csv(args.contexts, m.shape[0])
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.seeds < 1 or args.k_max < 1:
        raise ValueError(f"--seeds and --k-max must be >= 1, got {args.seeds}, {args.k_max}")
    k_max = min(args.k_max, m.shape[0])
    curves = strategies.replay_named(m, u, names, k_max, SelectorConfig(), jax.random.PRNGKey(args.seed),
                                     args.seeds)
    out = Path(args.out) if args.out else Path(args.matrix).parent / (Path(args.matrix).stem + "_replay")
    summary = write_outputs(curves, m, args.steps_per_task, out, title=f"MBTL replay: {Path(args.matrix).name}")
    print(f"replay written to {out}")
    print(json.dumps({"final_perf": summary["final_perf"],
                      "tasks_to_90pct_oracle": summary["sample_efficiency"]["tasks_to_target"]}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    from agents.mbtl.strategies import STRATEGY_NAMES
    p = argparse.ArgumentParser(prog="omnitask mbtl", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("config", nargs="?", help="experiment YAML with `agent: mbtl` (not with replay --matrix)")
    p.add_argument("--matrix", help="replay: a transfer-matrix CSV instead of a config's stored matrix")
    p.add_argument("--contexts", help="replay --matrix: contexts CSV, N rows x D columns (default 1-D 0..N-1)")
    p.add_argument("--strategies", default=",".join(STRATEGY_NAMES),
                   help=f"replay --matrix: comma-separated subset of {','.join(STRATEGY_NAMES)}")
    p.add_argument("--seeds", type=int, default=1, help="replay --matrix: PRNG seeds averaged for the GP strategies")
    p.add_argument("--seed", type=int, default=0, help="replay --matrix: first PRNG seed")
    p.add_argument("--k-max", type=int, default=15, help="replay --matrix: trained tasks to replay up to")
    p.add_argument("--steps-per-task", type=int, default=1, help="replay --matrix: env steps of one source policy")
    p.add_argument("--out", help="replay --matrix: output directory (default: <matrix stem>_replay next to it)")
    p.add_argument("--no-normalise-check", action="store_true", help="replay --matrix: accept values outside [0, 1]")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--executor", choices=("inline", "local", "ray"), default=None,
                   help="where matrix jobs run (default: mbtl.executor)")
    args = p.parse_args(argv)
    from omnitask.config import ConfigError
    from omnitask.nonfinite import NonFiniteError
    if args.matrix is not None:
        if args.command != "replay" or args.config is not None:
            p.error("--matrix goes with `replay` and no config: omnitask mbtl replay --matrix FILE.csv")
        try:
            return replay_matrix(args)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.config is None:
        p.error(f"{args.command} needs a CONFIG (or: replay --matrix FILE.csv)")
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
    except NonFiniteError as err:  # a source or the online learner diverged: exit 3, as `omnitask train`
        print(f"error: {err}", file=sys.stderr)
        return 3
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
