"""``run.mesh`` data parallelism on 2 forced host devices: the cases in tests/sharding_cases.py run in a subprocess
(``XLA_FLAGS=--xla_force_host_platform_device_count=2`` must be set before JAX starts, and must not change the
device count of this test process). The default suite runs the cheap cases (PVN pretraining update, PVN online
update, DQN rollout + updates, a checkpoint written on 2 devices resumed on 1); OMNITASK_FULL=1 runs all (PPO, ScaleZero search and
update, PVN's whole online train call, a short run on 2 devices vs 1, resume 1 -> 2)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHEAP = "pvn_pretraining or pvn_online_update or (updates_on and dqn) or 2to1"


def test_sharded_cases_on_two_forced_host_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=str(ROOT))
    select = [] if os.environ.get("OMNITASK_FULL") == "1" else ["-k", CHEAP]
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests" / "sharding_cases.py"), "-q",
                           "-p", "no:cacheprovider", *select], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def test_fsdp_model_axis_cases_on_four_forced_host_devices():
    """ScaleZero's {data: 2, model: 2} update vs 1 device, checkpoints across layouts (sharding_model_cases.py)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests" / "sharding_model_cases.py"), "-q",
                           "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def test_model_axis_refused_by_agents_that_do_not_shard_parameters():
    from omnitask.config import ConfigError, load_config
    with pytest.raises(ConfigError, match=r"run.mesh.model=2: only agent\(s\) scalezero shard parameters over a model "
                                          r"axis; agent 'dqn' supports \{data: N\} only"):
        load_config("configs/dqn/cartpole.yaml", ["run.mesh={data: 1, model: 2}"])
    load_config("configs/dqn/cartpole.yaml", ["run.mesh={data: 1, model: 1}"])
    load_config("configs/scalezero/cartpole.yaml", ["run.mesh={data: 1, model: 2}"])
