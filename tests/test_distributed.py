"""Multi-process runs (``run.distributed``): 2 CPU processes on 127.0.0.1, one device each, joined by
``jax.distributed`` (gloo collectives), give the same result as one process with 2 devices and the same global
batch. The processes run tests/distributed_case.py through the run loop. Default suite: DQN; OMNITASK_FULL=1: PPO too.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CASE = str(ROOT / "tests" / "distributed_case.py")
AGENTS = ["ppo", "dqn"] if os.environ.get("OMNITASK_FULL") == "1" else ["dqn"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check(procs) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, err[-4000:]


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    agents = ",".join(AGENTS)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, CASE, str(tmp_path), "2", str(i), str(port), agents], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    _check(procs)
    one = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    _check([subprocess.Popen([sys.executable, CASE, str(tmp_path), "1", "0", "0", agents], env=one,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)])
    for agent in AGENTS:
        two, single = np.load(tmp_path / f"{agent}-p2.npz"), np.load(tmp_path / f"{agent}-p1.npz")
        assert (int(two["processes"]), int(two["devices"])) == (2, 2)
        assert (int(single["processes"]), int(single["devices"])) == (1, 2)
        for name in single.files:
            if name.startswith("arr_"):
                np.testing.assert_allclose(two[name], single[name], rtol=1e-5, atol=1e-6)
        assert float(two["eval"]) == float(single["eval"])
        # only process 0 wrote the run files; both processes wrote the checkpoint together (orbax)
        run = tmp_path / "p2" / agent
        assert (run / "metrics.jsonl").exists() and (run / "final_eval.json").exists()
        assert any((run / "checkpoints").iterdir())
