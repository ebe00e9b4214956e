"""``omnitask`` command line: train / eval / plot / envs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from omnitask.config import ConfigError
from omnitask.nonfinite import NonFiniteError
from omnitask.executors import EXECUTORS
from omnitask.schema import CheckpointError


def _shared_run_dir(cfg) -> Path:
    """The run directory of a multi-process run: named by ``run.name``, made by process 0 (the others wait)."""
    from jax.experimental import multihost_utils

    from omnitask.distributed import is_primary
    from omnitask.run_dir import new_run_dir
    if not cfg.run.name:
        raise ConfigError("a multi-process run (run.distributed) needs run.name: every process must write to the same "
                          "run directory")
    run_dir = new_run_dir(cfg) if is_primary() else Path(cfg.run.out_dir) / cfg.run.name
    multihost_utils.sync_global_devices("omnitask run directory")
    return run_dir


def _cmd_train(args, console: Console) -> int:
    from omnitask.config import load_config
    from omnitask.distributed import initialize as initialize_processes
    from omnitask.run_dir import load_run_config, new_run_dir, removed_if_setup_fails
    from omnitask.runner import train

    if args.resume:
        cfg = load_run_config(Path(args.resume), args.set)
        if args.config:
            from omnitask.run_dir import config_differences
            diffs = config_differences(load_config(args.config, args.set), cfg)
            if diffs:
                raise ConfigError(f"{args.config} differs from the config of {args.resume} in: {', '.join(diffs)}")
        run_dir = Path(args.resume)
    else:
        if not args.config:
            raise ConfigError("train needs a CONFIG.yaml (or --resume RUN_DIR)")
        cfg = load_config(args.config, args.set)
        if args.seeds:
            return _train_seeds(cfg, args, console)
        run_dir = _shared_run_dir(cfg) if initialize_processes(cfg.run) else new_run_dir(cfg)
    console.print(f"run directory: [bold]{escape(str(run_dir))}[/bold]")
    if args.resume:
        result = train(cfg, run_dir, resume=True, console=console)
    else:
        with removed_if_setup_fails(run_dir):
            result = train(cfg, run_dir, console=console)
    summary = ", ".join(f"{k}={v:.3g}" for k, v in sorted(result.final_eval.items()))  # every key
    console.print(f"done: {result.env_steps:,} env steps; final eval ({cfg.run.eval_episodes} episodes): {summary}",
                  markup=False, highlight=False, soft_wrap=True)
    console.print(f"results in [bold]{escape(str(run_dir))}[/bold] (config.yaml, metrics.jsonl, tb/, checkpoints/, "
                  "learning_curve.png)")
    return 0


def _train_seeds(cfg, args, console: Console) -> int:
    from omnitask.executors import run_seeds, write_summary
    seeds = [int(s) for s in args.seeds.split(",")]
    console.print(f"training {len(seeds)} seeds on executor '{args.executor}'")
    results = run_seeds(cfg, seeds, executor=args.executor, max_workers=args.workers, ray_address=args.ray_address)
    out = Path(cfg.run.out_dir) / f"{cfg.run.name or cfg.agent}-seeds.json"
    write_summary(results, out)
    for r in results:
        console.print(f"seed {r['seed']}: return_mean={r.get('return_mean', float('nan')):.3g}  {r['run_dir']}")
    console.print(f"summary: {out}")
    return 0


def _cmd_eval(args, console: Console) -> int:
    if args.video:
        from omnitask.video import record_video
        v = record_video(Path(args.run_dir), max_steps=args.max_steps)
        ended = "episode return" if v.finished else f"partial return (no episode end within {args.max_steps} steps)"
        every = "every env step" if v.stride == 1 else f"every {v.stride} env steps"
        console.print(f"checkpoint at {v.env_steps:,} env steps: {ended} {v.episode_return:.4g} over "
                      f"{v.episode_length} steps; wrote {v.path} ({v.frames} frames, {every}, {v.delay_cs * 10} ms "
                      f"each: real time at the env's {v.steps_per_second:g} steps/s)", soft_wrap=True)
        return 0
    from omnitask.runner import evaluate_run
    result = evaluate_run(Path(args.run_dir), args.episodes)
    episodes = int(result.pop("episodes"))
    console.print(f"evaluated the checkpoint at {int(result.pop('env_steps')):,} env steps "
                  f"({result.pop('checkpoint')}) over {episodes} episode{'s' if episodes != 1 else ''} "
                  f"-> {Path(args.run_dir) / 'eval.json'}", soft_wrap=True)
    for k, v in sorted(result.items()):
        console.print(f"{k}: {v:.4g}")
    return 0


def _cmd_plot(args, console: Console) -> int:
    from omnitask.plotting import plot_run
    out = plot_run(Path(args.run_dir), Path(args.out) if args.out else None)
    if out is None:
        raise ConfigError(f"{args.run_dir} has no metrics.jsonl to plot")
    console.print(f"wrote {out}")
    return 0


def _cmd_envs(args, console: Console) -> int:
    from omnitask.envs_listing import describe, listing
    print(describe(args.env_id) if args.env_id else listing(args.family))
    return 0


def _cmd_mbtl(args, console: Console) -> int:
    from agents.mbtl.cli import main as mbtl_main
    return mbtl_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omnitask", description="JAX RL agent suite: train, evaluate, plot, list envs.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train from an experiment YAML (or resume a run)")
    t.add_argument("config", nargs="?", help="experiment YAML, e.g. configs/quickstart.yaml")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set ppo.lr=1e-3 --set run.total_env_steps=50000")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    t.add_argument("--seeds", default=None, metavar="0,1,2", help="train one independent run per seed")
    t.add_argument("--executor", default="local", choices=list(EXECUTORS),
                   help="where --seeds runs go: this process, a local process pool or Ray (local or --ray-address)")
    t.add_argument("--workers", type=int, default=None, help="parallel runs for --seeds")
    t.add_argument("--ray-address", default=None, help="address of an existing Ray cluster")
    t.set_defaults(func=_cmd_train)
    e = sub.add_parser("eval", help="evaluate the newest checkpoint of a run")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=None)
    e.add_argument("--video", action="store_true", help="record one episode of the policy as RUN_DIR/eval_<steps>.gif")
    e.add_argument("--max-steps", type=int, default=2000, help="frame limit of the video")
    e.set_defaults(func=_cmd_eval)
    pl = sub.add_parser("plot", help="(re)draw a run's learning curves")
    pl.add_argument("run_dir")
    pl.add_argument("--out", default=None)
    pl.set_defaults(func=_cmd_plot)
    en = sub.add_parser("envs", help="list environment ids, or show one env's spec")
    en.add_argument("env_id", nargs="?")
    en.add_argument("--family", default=None, help="only this family (classic, atari, metaworld, traffic, ...)")
    en.set_defaults(func=_cmd_envs)
    from omnitask.compare.command import add_parser as add_compare_parser
    add_compare_parser(sub)
    mb = sub.add_parser("mbtl", add_help=False,
                        help="MBTL studies: build|replay|run|online CONFIG (see `omnitask mbtl --help`)")
    mb.add_argument("rest", nargs=argparse.REMAINDER)
    mb.set_defaults(func=_cmd_mbtl)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["mbtl"]:  # forwarded whole: argparse's REMAINDER would swallow `--help` / `--set` badly
        from agents.mbtl.cli import main as mbtl_main
        return mbtl_main(argv[1:])
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        return args.func(args, console)
    except NonFiniteError as err:  # training diverged: exit 3, distinct from bad input (2)
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 3
    except KeyboardInterrupt as err:  # runner.Interrupted says where the checkpoint is
        console.print(str(err) or "interrupted before the first checkpoint", highlight=False, markup=False,
                      soft_wrap=True)
        return 130
    except (ConfigError, CheckpointError, ValueError, ModuleNotFoundError) as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2
    except OSError as err:  # read-only or full disk, a file where a directory should be, ...
        where = f"{err.filename}: " if err.filename else ""
        console.print(f"[red]error:[/red] {escape(where + (err.strerror or str(err)))}", highlight=False,
                      soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
