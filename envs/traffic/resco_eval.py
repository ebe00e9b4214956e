"""RESCO baselines: the networks' own fixed-time programs and max-pressure, evaluated with RESCO's metrics.

``evaluate_baseline(name, "fixed-time" | "max-pressure", episodes, seed)`` runs whole episodes of
``traffic/resco/<name>`` (one simulation, every signal controlled) and averages RESCO's episode metrics
(``resco_delay``, ``resco_trip_time``, ``resco_wait``, ``resco_queue``; see ``envs.traffic.resco``).

* fixed-time: the env's ``fixed_time=True`` mode -- SUMO runs each light's static program from the net file.
* max-pressure: ``envs.traffic.controllers.MaxPressureController`` on ``info['phase_pressure']``; padded actions
  of a signal carry the pressure of the phase they alias, so the argmax (lowest index on ties) is always one of the
  signal's own phases.
"""
from __future__ import annotations

import numpy as np

BASELINES = ("fixed-time", "max-pressure")


def evaluate_baseline(name: str, controller: str, episodes: int = 1, seed: int = 0) -> dict[str, float]:
    """Mean (over ``episodes`` SUMO seeds) of RESCO's metrics and of the per-signal return; ``runs`` (episodes) and
    ``delay_min`` / ``delay_max`` over them."""
    import envs
    from envs.traffic.controllers import MaxPressureController
    from envs.traffic.resco import RESCO_METRICS, check_name, net_layout, map_files

    check_name(name)
    if controller not in BASELINES:
        raise ValueError(f"unknown RESCO baseline {controller!r}; allowed: {', '.join(BASELINES)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    signals = net_layout(map_files(name)[0]).num_signals
    rows = []
    with envs.make(f"traffic/resco/{name}", num_envs=signals, seed=seed,
                   fixed_time=controller == "fixed-time") as env:
        policy = MaxPressureController()
        ts = env.reset(seed=seed)
        for _ in range(episodes):
            ret = np.zeros(signals)
            while True:
                actions = (policy.act(ts) if controller == "max-pressure"
                           else np.zeros(env.num_envs, np.int32))
                ts = env.step(actions)
                ret += ts.reward
                if ts.truncated.any() or ts.terminated.any():
                    break
            rows.append({**{k: float(ts.info[k][0]) for k in RESCO_METRICS}, "return": float(ret.mean())})
    delays = [r["resco_delay"] for r in rows]
    return ({k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            | {"runs": len(rows), "delay_min": min(delays), "delay_max": max(delays)})
