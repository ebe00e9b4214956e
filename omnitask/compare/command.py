"""The ``omnitask compare`` subcommand: arguments and console output."""
from __future__ import annotations

import argparse
from pathlib import Path

from omnitask.compare.normalise import MODES


def add_parser(sub) -> None:
    c = sub.add_parser(
        "compare", help="aggregate runs over seeds and tasks (rliable CIs, normalised scores, paired tests)",
        description="Compare groups of runs: mean / median / IQM / optimality gap with stratified-bootstrap CIs, "
                    "per-task tables, paired tests for groups run with the same seeds. Writes compare.md, "
                    "compare.json and compare.png to --out.")
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run directories, or folders holding them (e.g. a seed sweep's out_dir)")
    c.add_argument("--group-by", default="name", metavar="agent|name|name:REGEX|config.KEY",
                   help="how runs form groups (default: run name without its -s<seed> suffix)")
    c.add_argument("--metric", default="return_mean", help="eval metric (per task: <metric>/<task>)")
    c.add_argument("--at-steps", type=int, default=None, metavar="N",
                   help="score the last evaluation at or before N env steps instead of the final one")
    c.add_argument("--normalise", default="none", choices=MODES,
                   help="human: Atari human-normalised; random-max: fraction of max above random (classic, "
                        "MinAtar); Meta-World scores its success rate in both")
    c.add_argument("--reference", default=None, metavar="FILE.yaml",
                   help="extra references {task or env id: {random: R, max: M}} (e.g. traffic)")
    c.add_argument("--baseline", default=None, metavar="GROUP", help="group the others are compared against")
    c.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    c.add_argument("--confidence", type=float, default=0.95, help="CI level (default 0.95)")
    c.add_argument("--drop-nonfinite", action="store_true",
                   help="leave out runs whose score is non-finite (null) instead of refusing; the report lists them")
    c.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the first RUN_DIR)")
    c.set_defaults(func=run_command)


def run_command(args: argparse.Namespace, console) -> int:
    from omnitask.compare.pipeline import CompareOptions, compare
    from omnitask.compare.plots import plot_comparison
    from omnitask.compare.report import markdown, write_reports

    options = CompareOptions(group_by=args.group_by, metric=args.metric, at_steps=args.at_steps,
                             normalise=args.normalise, reference=args.reference, baseline=args.baseline,
                             reps=args.reps, seed=args.seed, confidence=args.confidence,
                             drop_nonfinite=args.drop_nonfinite)
    result = compare(args.run_dirs, options)
    out = Path(args.out or args.run_dirs[0])
    md, js = write_reports(result, out)
    png = plot_comparison(result, out / "compare.png")
    print(markdown(result))
    console.print(f"wrote {md}, {js}, {png}")
    return 0
