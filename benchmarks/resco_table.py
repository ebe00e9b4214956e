"""RESCO table: average delay (s) per vehicle of fixed-time, max-pressure, DQN and PPO beside the RESCO paper's.

    python benchmarks/resco_table.py --nets cologne1 ingolstadt1 cologne3 --episodes 3 --runs /tmp/resco_runs

Fixed-time and max-pressure are run here (``envs.traffic.resco_eval``, ``--episodes`` SUMO seeds each). DQN and
PPO come from the ``final_eval.json`` of runs trained with ``configs/traffic/resco_<net>_{dqn,ppo}.yaml``
(``omnitask train ... --set run.out_dir=<runs>``); a missing run prints "-". ``--json PATH`` also writes the rows.

RESCO reference values (``PAPER_DELAY``): read off the benchmark figure in the RESCO repository
(github.com/Pi-Star-Lab/RESCO, README, ``delays.png``: delay (s) learning curves over 5 seeds; dashed lines are the
Fixed Time and Max Pressure baselines, the IDQN curve's last episode (of 100) is listed, IPPO is the marker after
1400 episodes). Values were digitised from pixel positions of that figure (about +-1 s on cologne1/cologne3, +-0.1 s
on ingolstadt1); the paper's Table 1 (best episode per method) could not be retrieved here.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# network -> method -> average delay (s), digitised from RESCO's delays.png (see module docstring)
PAPER_DELAY = {
    "cologne1": {"fixed-time": 56.9, "max-pressure": 28.2, "dqn": 26.8, "ppo": 54.5},
    "ingolstadt1": {"fixed-time": 39.4, "max-pressure": 28.3, "dqn": 22.1, "ppo": 19.8},
    "cologne3": {"fixed-time": 46.7, "max-pressure": 91.1, "dqn": 43.0, "ppo": 18.3},
    "cologne8": {"fixed-time": 63.7, "max-pressure": 21.8, "dqn": 22.3, "ppo": 22.1},
    "ingolstadt7": {"fixed-time": 91.3, "max-pressure": 80.5, "dqn": 39.6, "ppo": 31.0},
    "ingolstadt21": {"fixed-time": 133.0, "max-pressure": 76.3, "dqn": 85.0, "ppo": 68.0},
    "grid4x4": {"max-pressure": 34.2, "dqn": 34.3, "ppo": 43.7},
    "arterial4x4": {"max-pressure": 820.0, "ppo": 693.0},
}
METHODS = ("fixed-time", "max-pressure", "dqn", "ppo")


def run_metrics(runs: Path | None, agent: str, net: str) -> dict | None:
    """RESCO metrics of trained runs' final evaluations (``<agent>-resco-<net>`` and its ``-s<seed>`` siblings),
    averaged over the runs found, with ``runs`` (their number) and ``delay_min``/``delay_max``; None when none."""
    if runs is None:
        return None
    found = []
    for path in sorted(runs.glob(f"{agent}-resco-{net}*/final_eval.json")):
        if path.parent.name != f"{agent}-resco-{net}" and not path.parent.name.startswith(f"{agent}-resco-{net}-s"):
            continue
        ev = json.loads(path.read_text())
        found.append({k[:-len("_mean")]: float(v) for k, v in ev.items() if k.startswith("resco_") and k.endswith("_mean")})
    if not found:
        return None
    out = {k: sum(f[k] for f in found) / len(found) for k in found[0]}
    delays = [f["resco_delay"] for f in found]
    return out | {"runs": len(found), "delay_min": min(delays), "delay_max": max(delays)}


def fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def main(argv=None) -> int:
    from envs.traffic.resco import RESCO_NAMES
    from envs.traffic.resco_eval import evaluate_baseline

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", nargs="+", default=["cologne1", "ingolstadt1", "cologne3"], choices=RESCO_NAMES)
    p.add_argument("--episodes", type=int, default=1, help="SUMO seeds per baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=None, help="out_dir of the DQN/PPO runs")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    for net in args.nets:
        ours = {b: evaluate_baseline(net, b, args.episodes, args.seed) for b in ("fixed-time", "max-pressure")}
        ours["dqn"], ours["ppo"] = run_metrics(args.runs, "dqn", net), run_metrics(args.runs, "ppo", net)
        for m in METHODS:
            r = ours[m] or {}
            rows.append({"net": net, "method": m, "runs": r.get("runs", 0),
                         "delay_range": (r.get("delay_min"), r.get("delay_max")),
                         "delay": r.get("resco_delay"), "trip_time": r.get("resco_trip_time"),
                         "wait": r.get("resco_wait"), "queue": r.get("resco_queue"),
                         "paper_delay": PAPER_DELAY.get(net, {}).get(m)})
    print("| network | method | delay (s) | RESCO delay (s) | trip time (s) | wait (s) | queue (veh/signal-step) | n |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["delay_range"]
        spread = f" ({fmt(lo)}-{fmt(hi)})" if lo is not None and r["runs"] > 1 else ""
        print(f"| {r['net']} | {r['method']} | {fmt(r['delay'])}{spread} | {fmt(r['paper_delay'])} | "
              f"{fmt(r['trip_time'])} | {fmt(r['wait'])} | {fmt(r['queue'])} | {r['runs']} |")
    if args.json:
        from omnitask.fileio import atomic_write_json

        atomic_write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
