"""Build (or resume) a transfer matrix for an MBTL experiment config, and load it normalised for replay."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from agents.mbtl import contexts as ctx
from agents.mbtl.config import MBTLConfig
from agents.mbtl.jobs import Job, make_jobs, run_job
from agents.mbtl.matrix import MULTITASK, TransferStore, normalise
from omnitask.executors import run_each


def experiment_dir(cfg: Any) -> Path:
    name = cfg.run.name or f"mbtl-{cfg.env.id.replace('/', '_')}"
    return Path(cfg.run.out_dir) / name


def matrix_dir(cfg: Any) -> Path:
    m: MBTLConfig = cfg.mbtl
    return Path(m.matrix_dir) if m.matrix_dir else experiment_dir(cfg) / "matrix"


def grid(cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values [N, C], u [N, D]) of the experiment's context grid."""
    import envs
    return ctx.make_grid(envs.spec(cfg.env.id, **dict(cfg.env.options)), list(cfg.mbtl.axes))


def experiment_jobs(cfg: Any, values: np.ndarray) -> list[Job]:
    m: MBTLConfig = cfg.mbtl
    return make_jobs(cfg.env.id, values, m.seeds, m.chunk_size, multitask=m.multitask,
                     multitask_steps=m.multitask_steps, source_trainer=m.source_trainer, steps=m.steps_per_task,
                     num_envs=cfg.env.num_envs, eval_episodes=m.eval_episodes, ppo=m.ppo,
                     base_agent=m.base_agent, base_config=dict(m.base_config),
                     env_options=dict(cfg.env.options))


def build_matrix(cfg: Any, executor: str | None = None, on_job: Callable[[Job], None] | None = None,
                 log: Callable[[str], None] = print) -> tuple[TransferStore, int]:
    """Run every job whose rows are not stored yet; returns (store, number of jobs run)."""
    values, _ = grid(cfg)
    store = TransferStore(matrix_dir(cfg), cfg.env.id, values)
    todo = [j for j in experiment_jobs(cfg, values) if not all(store.has(s, j.seed) for s in j.sources)]
    total = len(experiment_jobs(cfg, values))
    log(f"transfer matrix {store.dir}: {total - len(todo)}/{total} jobs stored, running {len(todo)}")

    def on_result(job: Job, rows: list[dict]) -> None:
        store.add(rows)
        log(f"  job {job.name} done ({rows[0]['seconds']:.1f} s)")
        if on_job is not None:
            on_job(job)

    m: MBTLConfig = cfg.mbtl
    ran = run_each(run_job, todo, on_result, executor or m.executor, m.max_workers, m.ray_address)
    return store, ran


@dataclasses.dataclass(frozen=True)
class Normalised:
    """A stored matrix ready for replay."""

    m: np.ndarray  # [N, N] mean over seeds, normalised to [0, 1] (sources x targets)
    per_seed: np.ndarray  # [S, N, N] normalised per seed
    u: np.ndarray  # [N, D] normalised context coordinates
    multitask_row: np.ndarray | None  # [N] normalised mean multi-task row (None when not built)
    steps_per_task: int  # env steps of one source policy
    multitask_steps: int  # env steps of the multi-task policy (0 when not built)


def load_normalised(cfg: Any) -> Normalised:
    values, u = grid(cfg)
    store = TransferStore(matrix_dir(cfg), cfg.env.id, values)
    raw = store.matrix(list(cfg.mbtl.seeds))  # [S, N, N]
    if np.isnan(raw).any():
        missing = int(np.isnan(raw).sum())
        raise ValueError(f"{store.dir}: {missing} (source, target, seed) entries missing; run `omnitask mbtl build`")
    lo, hi = cfg.mbtl.perf_low, cfg.mbtl.perf_high
    mt = store.multitask_row(list(cfg.mbtl.seeds))
    if cfg.mbtl.normalise == "per_target":
        # per seed and target: (v - min over sources) / (max - min), the multi-task policy on the same scale
        mt_ok = mt is not None and not np.isnan(mt).any()
        both = np.concatenate([raw, mt[:, None, :]], axis=1) if mt_ok else raw  # [S, N (+1), N]
        lo_t, hi_t = both.min(axis=1, keepdims=True), both.max(axis=1, keepdims=True)  # [S, 1, N]
        scaled = np.clip((both - lo_t) / np.maximum(hi_t - lo_t, 1e-12), 0.0, 1.0)
        per_seed = scaled[:, :raw.shape[1]]
        mt_row = scaled[:, -1].mean(0) if mt_ok else None
        return Normalised(per_seed.mean(0), per_seed, u, mt_row, store.env_steps(0),
                          store.env_steps(MULTITASK) if mt_row is not None else 0)
    per_seed = normalise(raw, lo, hi)
    mt_row = None if mt is None or np.isnan(mt).any() else normalise(mt, lo if lo is not None else np.nanmin(raw),
                                                                     hi if hi is not None else np.nanmax(raw)).mean(0)
    return Normalised(per_seed.mean(0), per_seed, u, mt_row, store.env_steps(0),
                      store.env_steps(MULTITASK) if mt_row is not None else 0)
