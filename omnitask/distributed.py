"""Multi-process (multi-host) runs on JAX's own multi-controller runtime: ``jax.distributed.initialize``.

``run.distributed: {coordinator: HOST:PORT, num_processes: N, process_id: i}`` starts process ``i`` of ``N``;
``run.distributed: {cluster: true}`` lets JAX detect them on a scheduler (SLURM, Open MPI, ...; the coordinator may
also come from ``JAX_COORDINATOR_ADDRESS``). Every process runs the same program: with ``run.mesh: {data: -1}`` the
mesh spans every process's devices, each process steps the envs of its own devices and computes its shard of the
global batch, and the compiler's collectives (gloo on CPU) average the gradients. Only process 0 writes metrics,
plots and the run directory's files; checkpoints are written by orbax from all processes together.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax

from omnitask.schema import ConfigError, section_as


@dataclasses.dataclass
class DistributedConfig:
    coordinator: Optional[str] = None  # HOST:PORT of process 0's coordination service; None: one process
    num_processes: Optional[int] = None  # processes in the run (with ``coordinator``)
    process_id: Optional[int] = None  # this process, 0..num_processes-1 (with ``coordinator``)
    cluster: bool = False  # let jax.distributed.initialize() detect the processes on a cluster scheduler


def distributed_config(run_cfg: Any) -> DistributedConfig:
    """``run.distributed`` (absent: one process), with its fields checked together."""
    d = section_as(DistributedConfig, getattr(run_cfg, "distributed", None), "run.distributed")
    manual = (d.coordinator, d.num_processes, d.process_id)
    if any(v is not None for v in manual) and not all(v is not None for v in manual):
        raise ConfigError("run.distributed needs all of coordinator (HOST:PORT), num_processes and process_id, got "
                          f"coordinator={d.coordinator!r}, num_processes={d.num_processes}, process_id={d.process_id}")
    if d.coordinator is not None:
        if ":" not in d.coordinator:
            raise ConfigError(f"run.distributed.coordinator must be HOST:PORT, got {d.coordinator!r}")
        if not (d.num_processes >= 1 and 0 <= d.process_id < d.num_processes):
            raise ConfigError(f"run.distributed: process_id must be in 0..num_processes-1 and num_processes >= 1, "
                              f"got process_id={d.process_id}, num_processes={d.num_processes}")
    return d


def initialize(run_cfg: Any) -> bool:
    """Join the run's processes (before anything else touches a JAX backend); True if this is a multi-process run.

    Safe to call twice. On CPU the cross-process collectives are gloo's (JAX's CPU default has none).
    """
    d = distributed_config(run_cfg)
    if d.coordinator is None and not d.cluster:
        return False
    if jax.distributed.is_initialized():
        return True
    # JAX's CPU client has no cross-process collectives by default; gloo's (only the CPU backend uses them)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if d.cluster:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(d.coordinator, num_processes=d.num_processes, process_id=d.process_id)
    return True


def is_primary() -> bool:
    """Process 0 (or a single-process run): the one that writes metrics, plots and run files."""
    return jax.process_index() == 0
