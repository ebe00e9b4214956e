"""Transfer-matrix executors: a local process pool and a local Ray give the same matrix; an interrupted build
resumes without recomputing finished jobs. Real PPO jobs on 3 CartPole contexts with a one-update budget."""
import numpy as np
import pytest

from agents.mbtl.jobs import make_jobs, run_job
from agents.mbtl.matrix import TransferStore
from agents.ppo import PPOConfig
from omnitask.executors import run_each

CONTEXTS = np.tile(np.array([1.0, 0.1, 0.5, 9.8, 10.0], np.float32), (3, 1))
CONTEXTS[:, 2] = [0.1, 0.5, 2.0]  # pole half-length


def _jobs():
    return make_jobs("classic/CartPole-v1", CONTEXTS, seeds=[3], chunk_size=1, multitask=False,
                     source_trainer="ppo_jax", steps=512, num_envs=4, eval_episodes=1,
                     ppo=PPOConfig(num_steps=128, num_minibatches=2, num_epochs=1))


def _build(tmp_path, name, executor, stop_after=None):
    store = TransferStore(tmp_path / name, "classic/CartPole-v1", CONTEXTS)
    todo = [j for j in _jobs() if not store.has(j.sources[0], j.seed)]
    done = []

    def on_result(job, rows):
        store.add(rows)
        done.append(job.name)
        if stop_after is not None and len(done) >= stop_after:
            raise KeyboardInterrupt  # simulated interruption after the job's rows were stored

    try:
        # one worker: it compiles the (cached) PPO programs once and reuses them for every job
        ran = run_each(run_job, todo, on_result, executor=executor, max_workers=1)
    except KeyboardInterrupt:
        ran = None
    return store, ran, done


@pytest.fixture(scope="module", autouse=True)
def shared_compilation_cache(tmp_path_factory):
    """One persistent XLA cache for this module: the pool worker compiles the PPO programs, the Ray worker and
    this process load them (worker processes inherit the environment). Restored afterwards."""
    import os

    import jax
    cache = str(tmp_path_factory.mktemp("xla_cache"))
    env = {"JAX_COMPILATION_CACHE_DIR": cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    old_env = {k: os.environ.get(k) for k in env}
    old_cfg = {k: getattr(jax.config, k) for k in ("jax_compilation_cache_dir",
                                                    "jax_persistent_cache_min_compile_time_secs",
                                                    "jax_persistent_cache_min_entry_size_bytes")}
    os.environ.update(env)
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield cache
    for k, v in old_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    for k, v in old_cfg.items():
        jax.config.update(k, v)


@pytest.fixture(scope="module")
def pool_matrix(tmp_path_factory):
    store, ran, _ = _build(tmp_path_factory.mktemp("pool"), "m", "local")
    assert ran == 3
    return store.matrix()


def test_process_pool_and_local_ray_give_the_same_matrix(pool_matrix, tmp_path):
    pytest.importorskip("ray")
    store, ran, _ = _build(tmp_path, "ray", "ray")
    assert ran == 3
    np.testing.assert_array_equal(store.matrix(), pool_matrix)
    assert pool_matrix.shape == (1, 3, 3) and np.all(pool_matrix > 0)
    import ray
    assert not ray.is_initialized()  # the executor shut its local Ray down


def test_interrupted_build_resumes_without_recomputing(pool_matrix, tmp_path):
    store, ran, done = _build(tmp_path, "resume", "inline", stop_after=1)
    assert ran is None and len(done) == 1 and len(store) == 3  # interrupted: one job (3 rows) kept
    first = store.rows()
    store2, ran2, done2 = _build(tmp_path, "resume", "inline")
    assert ran2 == 2 and done[0] not in done2  # only the two missing jobs ran
    assert [r for r in store2.rows() if r["source"] == first[0]["source"]] == first
    np.testing.assert_array_equal(store2.matrix(), pool_matrix)  # same numbers as the process pool


def test_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="allowed: inline, local, ray"):
        run_each(run_job, _jobs(), lambda j, r: None, executor="slurm")


@pytest.mark.slow
@pytest.mark.skipif(not __import__("conftest").FULL, reason="run-loop source trainer smoke (~60 s busy): OMNITASK_FULL=1")
def test_run_loop_source_trainer_with_a_suite_agent():
    from agents.mbtl.jobs import run_job
    jobs = make_jobs("classic/CartPole-v1", CONTEXTS[:2], seeds=[0], chunk_size=1, multitask=False,
                     source_trainer="run_loop", steps=2048, num_envs=4, eval_episodes=2, base_agent="ppo",
                     base_config={"num_steps": 128}, env_options={})
    rows = run_job(jobs[0])
    assert [(r["source"], r["target"]) for r in rows] == [(0, 0), (0, 1)]
    assert all(r["value"] > 0 and r["env_steps"] >= 2048 for r in rows)
