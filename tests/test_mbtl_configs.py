"""Every configs/mbtl/*.yaml loads as a typed MBTL experiment and its context grid is valid for its env."""
from pathlib import Path

import pytest

from agents.mbtl.build import grid
from agents.mbtl.cli import load
from conftest import FULL
from omnitask.config import ConfigError

CONFIGS = sorted(Path("configs/mbtl").glob("*.yaml"))
EXPECTED_N = {"cartpole": 100, "pendulum": 100, "traffic_signal": 50, "ecodrive": 50, "ring": 40, "metaworld": 100}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_grid_is_valid(path):
    family = next((k for k in EXPECTED_N if path.stem.startswith(k)), None)
    if family in ("traffic_signal", "ecodrive"):
        pytest.importorskip("libsumo")
    if family == "metaworld":
        pytest.importorskip("metaworld")
    cfg = load(str(path), [])
    values, u = grid(cfg)
    assert values.shape[0] == u.shape[0] and 0.0 <= u.min() and u.max() <= 1.0
    if path.stem.endswith("_cpu"):  # CPU-sized builds stored in agents/mbtl/results/: fewer contexts allowed
        assert 30 <= values.shape[0] <= EXPECTED_N[family]
    elif path.stem != "cartpole_ci":
        assert values.shape[0] == EXPECTED_N[family]


def test_unknown_keys_and_values_are_refused():
    with pytest.raises(ConfigError, match="did you mean 'steps_per_task'"):
        load("configs/mbtl/cartpole_ci.yaml", ["mbtl.step_per_task=5"])
    with pytest.raises((ConfigError, ValueError), match="allowed: ppo_jax, run_loop"):
        load("configs/mbtl/cartpole_ci.yaml", ["mbtl.source_trainer=magic"])


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="ring smoke run (~40 s on a busy 2-core machine): OMNITASK_FULL=1")
def test_ring_road_jobs_run_on_the_vmapped_ppo():
    from agents.mbtl.build import experiment_jobs
    from agents.mbtl.jobs import run_job
    cfg = load("configs/mbtl/ring_hold_duration.yaml", [
        "mbtl.axes=[{name: hold_duration, num: 3, low: 0.1, high: 10.0, spacing: linear}]",
        "mbtl.steps_per_task=1024", "mbtl.eval_episodes=1", "mbtl.multitask=false", "env.num_envs=4"])
    values, _ = grid(cfg)
    rows = run_job(experiment_jobs(cfg, values)[0])
    assert len(rows) == 9 and all(r["env_steps"] == 1024 for r in rows)
