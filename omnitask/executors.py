"""The one place where independent pieces of work run in parallel: in this process, a local process pool or Ray.

``run_each(fn, items, on_result)`` calls ``fn(item)`` for every item and hands each result to ``on_result(item,
result)`` in this process as soon as it is ready, so an interrupted batch keeps every finished piece (MBTL's
transfer-matrix jobs use this). ``run_seeds`` trains one experiment once per seed (``omnitask train --seeds``).

Items cross process boundaries by pickle, so they must be plain data or importable classes: experiment configs are
generated classes (``omnitask.config.schema_for``) and travel as ``to_dict`` mappings, rebuilt by the worker.
No home-made cluster code: ``executor='ray'`` hands each item to ``ray.remote``; ``ray.init(address=...)`` joins an
existing cluster, without an address a local Ray with ``max_workers`` CPUs starts (and is shut down again).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from pathlib import Path
from typing import Any, Callable, Sequence

EXECUTORS = ("inline", "local", "ray")


def run_each(fn: Callable[[Any], Any], items: Sequence[Any], on_result: Callable[[Any, Any], None],
             executor: str = "local", max_workers: int | None = 2, ray_address: str | None = None) -> int:
    """Run ``fn`` on every item, calling ``on_result(item, result)`` here as each finishes; returns items run.

    ``fn`` must be a module-level function (it is pickled by reference).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if max_workers is not None and max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    items = list(items)
    if not items:
        return 0
    if executor == "inline":
        for item in items:
            on_result(item, fn(item))
    elif executor == "ray":
        _run_ray(fn, items, on_result, max_workers, ray_address)
    else:  # spawn: JAX is not fork-safe once initialised in the parent
        workers = min(max_workers or len(items), len(items))
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            try:
                for fut in cf.as_completed(futures):
                    on_result(futures[fut], fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    return len(items)


def _run_ray(fn, items: list, on_result, max_workers: int | None, ray_address: str | None) -> None:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False,
                 **({} if ray_address else {"num_cpus": max_workers}))
    try:
        remote = ray.remote(num_cpus=1)(fn)
        pending = {remote.remote(item): item for item in items}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                on_result(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------------------ seed sweeps
def train_from_dict(raw: dict) -> dict:
    """Worker side of a seed sweep: rebuild the typed config from plain data, train in a new run directory."""
    from omnitask.config import build_config
    from omnitask.run_dir import new_run_dir
    from omnitask.runner import train

    cfg = build_config(raw, source=f"seed {raw.get('seed')} of a sweep")
    run_dir = new_run_dir(cfg)
    result = train(cfg, run_dir)
    return {"seed": cfg.seed, "run_dir": str(run_dir), **result.final_eval}


def seed_configs(cfg: Any, seeds: Sequence[int]) -> list[dict]:
    """One plain-data config per seed, each with its own run name and no progress bar."""
    from omnitask.config import to_dict

    base = cfg.run.name or f"{cfg.agent}-{cfg.env.id.replace('/', '_')}"
    out = []
    for s in seeds:
        raw = to_dict(cfg)
        raw["seed"] = int(s)
        raw["run"].update(name=f"{base}-s{s}", progress=False)
        out.append(raw)
    return out


def run_seeds(cfg: Any, seeds: Sequence[int], executor: str = "local", max_workers: int | None = None,
              ray_address: str | None = None) -> list[dict]:
    """Train ``cfg`` once per seed; one summary dict per seed (final eval metrics + run_dir), in seed order."""
    configs = seed_configs(cfg, seeds)
    results: dict[int, dict] = {}
    run_each(train_from_dict, configs, lambda raw, res: results.__setitem__(raw["seed"], res), executor,
             max_workers, ray_address)
    return [results[int(s)] for s in seeds]


def write_summary(results: list[dict], out: Path) -> None:
    from omnitask.fileio import atomic_write_json
    atomic_write_json(out, results)
