"""Transfer-matrix jobs: train some source contexts, evaluate each policy zero-shot on every target context.

A ``Job`` is a small picklable description (it travels to process-pool workers and Ray tasks); ``run_job`` is a
top-level function returning the job's rows for ``TransferStore.add``. Source index ``-1`` is the multi-task
policy. The PRNG key of a job is derived from (seed, first source) only, so any executor gives the same rows.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from typing import Any

import numpy as np

from agents.mbtl.matrix import MULTITASK


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of transfer-matrix work."""

    env_id: str  # environment id
    contexts: np.ndarray  # [N, C] the full context grid (targets); sources index into it
    sources: tuple[int, ...]  # source indices trained by this job ((-1,) = the multi-task policy)
    seed: int  # training seed
    source_trainer: str  # 'ppo_jax' | 'run_loop'
    steps: int  # env steps per source policy (the multi-task policy's own budget for (-1,))
    num_envs: int  # parallel envs per policy
    eval_episodes: int  # episodes per (source, target)
    ppo: Any = None  # PPOConfig for 'ppo_jax'
    base_agent: str = "ppo"  # agent for 'run_loop'
    base_config: Any = None  # agent section for 'run_loop'
    env_options: Any = None  # env options for 'run_loop'

    @property
    def name(self) -> str:
        src = "multitask" if self.sources == (MULTITASK,) else f"{self.sources[0]}-{self.sources[-1]}"
        return f"seed{self.seed}_src{src}"


def make_jobs(env_id: str, contexts: np.ndarray, seeds, chunk_size: int, *, multitask: bool, **common) -> list[Job]:
    """Jobs covering every (seed, source) in chunks of ``chunk_size`` sources, plus one multi-task job per seed
    when ``multitask`` (its steps given by ``common['multitask_steps']``)."""
    n = int(np.asarray(contexts).shape[0])
    mt_steps = common.pop("multitask_steps", 0) or n * common["steps"]
    jobs = []
    for seed in seeds:
        for start in range(0, n, chunk_size):
            jobs.append(Job(env_id, np.asarray(contexts, np.float32), tuple(range(start, min(n, start + chunk_size))),
                            int(seed), **common))
        if multitask:
            jobs.append(Job(env_id, np.asarray(contexts, np.float32), (MULTITASK,), int(seed),
                            **dict(common, steps=int(mt_steps))))
    return jobs


def run_job(job: Job) -> list[dict]:
    """Train the job's sources and evaluate them on all targets -> rows (source, target, seed, value, env_steps)."""
    t0 = time.perf_counter()
    if job.source_trainer == "ppo_jax":
        values, steps = _ppo_jax(job)
    elif job.source_trainer == "run_loop":
        values, steps = _run_loop(job)
    else:
        raise ValueError(f"unknown source trainer {job.source_trainer!r}; allowed: ppo_jax, run_loop")
    seconds = time.perf_counter() - t0
    return [{"source": s, "target": t, "seed": job.seed, "value": float(values[i, t]), "env_steps": int(steps),
             "seconds": seconds} for i, s in enumerate(job.sources) for t in range(values.shape[1])]


def _job_key(job: Job):
    import jax
    return jax.random.fold_in(jax.random.PRNGKey(job.seed), job.sources[0] + 1)


_COMPILED: dict[tuple, Any] = {}  # jitted train/eval per (env, PPO config, shapes): one compile per worker


def _ppo_programs(env_id: str, ppo: Any, num_envs: int, num_updates: int, eval_episodes: int):
    """Cached ``(train(keys [S], contexts [S, C]) -> params [S, ...], evaluate(params [S], contexts [T, C],
    keys [S, T]) -> returns [S, T])`` built from PPO's building blocks (agents.ppo.jax_loop)."""
    cache_key = (env_id, repr(ppo), num_envs, num_updates, eval_episodes)
    if cache_key in _COMPILED:
        return _COMPILED[cache_key]
    import jax
    import jax.numpy as jnp

    from agents.ppo import evaluate_params, make_jax_ppo, make_learner
    from envs.functional import jax_functions

    out = jax_functions(env_id)
    if out is None:
        raise ValueError(f"{env_id} is not JAX-native; use mbtl.source_trainer=run_loop")
    spec, fns = out
    _, init, run = make_jax_ppo(ppo, spec, fns, num_envs, num_updates)

    def train_one(key, context):  # context [C] -> params of one policy
        runner = init(key, jnp.broadcast_to(context, (num_envs, context.shape[0])))
        runner, _ = run(runner, num_updates)
        return runner.train_state.params

    learner = make_learner(ppo, spec, num_envs=ppo.num_minibatches, num_updates=1)  # network only
    max_steps = int(spec.max_episode_steps or 1000)

    def eval_one(params_i, context, key):  # mean return of one policy over eval_episodes of one context
        rows = jnp.broadcast_to(context, (eval_episodes, context.shape[0]))
        return evaluate_params(learner, fns, max_steps, params_i, rows, key, ppo.eval_deterministic)["return"].mean()

    train = jax.jit(jax.vmap(train_one))
    evaluate = jax.jit(jax.vmap(jax.vmap(eval_one, in_axes=(None, 0, 0)), in_axes=(0, None, 0)))
    _COMPILED[cache_key] = (train, evaluate)
    return train, evaluate


def _ppo_jax(job: Job) -> tuple[np.ndarray, int]:
    """Vmapped PPO: every source of the chunk trains at once (one policy per source context, ``num_envs`` copies
    of it), then a vmapped zero-shot evaluation of every policy on every target. The multi-task policy trains on
    envs spread over the whole grid."""
    import jax
    import jax.numpy as jnp

    from agents.ppo import num_updates_for

    key_train, key_eval = jax.random.split(_job_key(job))
    contexts = np.asarray(job.contexts, np.float32)  # [N, C]
    n = contexts.shape[0]
    if job.sources == (MULTITASK,):
        # one policy; num_envs rounded up to a multiple of N so every context has the same number of envs
        reps = int(np.ceil(max(job.num_envs, n) / n))
        num_envs = reps * n
        num_updates = num_updates_for(job.steps, num_envs, job.ppo)
        train, evaluate = _ppo_programs(job.env_id, job.ppo, num_envs, num_updates, job.eval_episodes)
        from agents.ppo import make_jax_ppo
        from envs.functional import jax_functions
        spec, fns = jax_functions(job.env_id)
        _, init, run = make_jax_ppo(job.ppo, spec, fns, num_envs, num_updates)
        per_env = jnp.asarray(np.tile(contexts, (reps, 1)))  # [B, C]
        runner, _ = jax.jit(lambda k: run(init(k, per_env), num_updates))(key_train)
        params = jax.tree.map(lambda x: x[None], runner.train_state.params)  # [1, ...]
    else:
        num_envs = job.num_envs
        num_updates = num_updates_for(job.steps, num_envs, job.ppo)
        train, evaluate = _ppo_programs(job.env_id, job.ppo, num_envs, num_updates, job.eval_episodes)
        src = jnp.asarray(contexts[list(job.sources)])  # [S, C]
        params = train(jax.random.split(key_train, src.shape[0]), src)
    s = len(job.sources)
    keys = jax.random.split(key_eval, s * n).reshape(s, n, -1)
    values = evaluate(params, jnp.asarray(contexts), keys)  # [S, N]
    steps = num_updates * num_envs * job.ppo.num_steps
    return np.asarray(values, np.float64), int(steps)


def _run_loop(job: Job) -> tuple[np.ndarray, int]:
    """Any suite agent through the run loop: train each source, then evaluate its state on every target context
    with a trainer built for that target (same spec, different context)."""
    import jax

    from omnitask.config import build_config
    from omnitask.runner import make_trainer, train

    if job.sources == (MULTITASK,):
        raise ValueError("the multi-task baseline needs source_trainer='ppo_jax' (set mbtl.multitask=false)")
    import envs
    spec = envs.spec(job.env_id, **(job.env_options or {}))
    names = spec.context_names
    contexts = np.asarray(job.contexts, np.float64)
    values = np.zeros((len(job.sources), contexts.shape[0]))
    steps = 0
    with tempfile.TemporaryDirectory(prefix="mbtl-") as tmp:
        for i, s in enumerate(job.sources):
            def cfg_for(ctx_row, name):
                raw = {"agent": job.base_agent, "seed": job.seed,
                       "env": {"id": job.env_id, "num_envs": job.num_envs, "options": dict(job.env_options or {}),
                               "context": {n: float(v) for n, v in zip(names, ctx_row)}},
                       "run": {"total_env_steps": job.steps, "eval_every": 0, "checkpoint_every": 0,
                               "eval_episodes": job.eval_episodes, "out_dir": tmp, "name": name,
                               "progress": False},
                       job.base_agent: dict(job.base_config or {})}
                return build_config(raw, source=f"mbtl run_loop job {job.name}")

            from pathlib import Path

            from omnitask.run_dir import new_run_dir
            cfg = cfg_for(contexts[s], f"src{s}")
            result = train(cfg, new_run_dir(cfg))
            steps = max(steps, int(result.env_steps))
            for t in range(contexts.shape[0]):
                tcfg = cfg_for(contexts[t], f"src{s}-tgt{t}")
                trainer = make_trainer(tcfg, Path(tmp) / f"eval-{s}-{t}")
                try:
                    key = jax.random.fold_in(jax.random.PRNGKey(job.seed), 7919 * (t + 1))
                    values[i, t] = float(trainer.evaluate(result.state, job.eval_episodes, key)["return_mean"])
                finally:
                    trainer.close()
    return values, steps
