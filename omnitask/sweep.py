"""Independent runs (seeds) of one experiment, on a local process pool or a Ray cluster.

No home-made cluster code: ``executor='ray'`` hands each run to ``ray.remote`` (``ray.init(address=...)`` joins an
existing cluster; without an address a local Ray starts). Each run gets its own run directory and is an ordinary
``omnitask train`` run (resumable, plottable).
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
from pathlib import Path
from typing import Any, Sequence

EXECUTORS = ("local", "ray")


def _run_one(cfg: Any) -> dict:
    from omnitask.run_dir import new_run_dir
    from omnitask.runner import train
    run_dir = new_run_dir(cfg)
    result = train(cfg, run_dir)
    return {"seed": cfg.seed, "run_dir": str(run_dir), **result.final_eval}


def seed_configs(cfg: Any, seeds: Sequence[int]) -> list[Any]:
    base = cfg.run.name or f"{cfg.agent}-{cfg.env.id.replace('/', '_')}"
    return [dataclasses.replace(cfg, seed=int(s), run=dataclasses.replace(cfg.run, name=f"{base}-s{s}", progress=False))
            for s in seeds]


def run_seeds(cfg: Any, seeds: Sequence[int], executor: str = "local", max_workers: int | None = None,
              ray_address: str | None = None) -> list[dict]:
    """Train ``cfg`` once per seed; returns one summary dict per seed (final eval metrics + run_dir)."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    configs = seed_configs(cfg, seeds)
    if executor == "ray":
        import ray
        started = not ray.is_initialized()
        if started:
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False,
                     **({} if ray_address else {"num_cpus": max_workers or None}))
        try:
            remote = ray.remote(num_cpus=1)(_run_one)
            return ray.get([remote.remote(c) for c in configs])
        finally:
            if started:
                ray.shutdown()
    # spawn: JAX is not fork-safe once initialised in the parent.
    with cf.ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_run_one, configs))


def write_summary(results: list[dict], out: Path) -> None:
    from omnitask.fileio import atomic_write_json
    atomic_write_json(out, results)
