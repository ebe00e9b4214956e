"""Run transfer-matrix jobs in this process, on a local process pool (default) or on Ray.

Results come back to the parent as each job finishes and go through ``on_result`` (which stores them), so an
interrupted build keeps every finished job. Ray: ``ray.init(address=...)`` joins a cluster; without an address a
local Ray with ``max_workers`` CPUs starts (and is shut down again).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from typing import Callable, Sequence

from agents.mbtl.jobs import Job, run_job

EXECUTORS = ("inline", "local", "ray")


def run_jobs(jobs: Sequence[Job], on_result: Callable[[Job, list[dict]], None], executor: str = "local",
             max_workers: int = 2, ray_address: str | None = None) -> int:
    """Run every job, calling ``on_result(job, rows)`` in this process as each finishes; returns jobs run."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    jobs = list(jobs)
    if not jobs:
        return 0
    if executor == "inline":
        for job in jobs:
            on_result(job, run_job(job))
        return len(jobs)
    if executor == "ray":
        return _run_ray(jobs, on_result, max_workers, ray_address)
    # spawn: JAX is not fork-safe once initialised in the parent
    with cf.ProcessPoolExecutor(max_workers=min(max_workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        try:
            for fut in cf.as_completed(futures):
                on_result(futures[fut], fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return len(jobs)


def _run_ray(jobs: list[Job], on_result, max_workers: int, ray_address: str | None) -> int:
    import ray

    started = not ray.is_initialized()
    if started:
        kwargs = {} if ray_address else {"num_cpus": max_workers}
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        remote = ray.remote(num_cpus=1)(run_job)
        pending = {remote.remote(job): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                on_result(pending.pop(ref), ray.get(ref))
        return len(jobs)
    finally:
        if started:
            ray.shutdown()
