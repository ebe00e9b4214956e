"""Multi-process runs (``run.distributed``): 2 CPU processes on 127.0.0.1, one device each, joined by
``jax.distributed`` (gloo collectives), give the same result as one process with 2 devices and the same global
batch; and a run checkpointed by 2 processes and resumed (``--resume``) by 2 new processes ends bit-identical to the
uninterrupted 2-process run. The processes run tests/distributed_case.py through the run loop. Default suite: DQN;
OMNITASK_FULL=1: PPO too.
"""
from __future__ import annotations

import json
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


def _launch(out: Path, runs: list[str], env: dict) -> None:
    """Two processes of one distributed run, each running ``runs`` (distributed_case.py's RUNS) in order."""
    port = _free_port()
    _check([subprocess.Popen([sys.executable, CASE, str(out), "2", str(i), str(port), ",".join(runs)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)])


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """Each agent's whole run and (DQN) its first half, by one 2-process launch: (out dir, env)."""
    out = tmp_path_factory.mktemp("distributed")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    _launch(out, AGENTS + ["dqn:part"], env)
    return out, env


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(two_process_runs):
    tmp_path, env = two_process_runs
    one = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    _check([subprocess.Popen([sys.executable, CASE, str(tmp_path), "1", "0", "0", ",".join(AGENTS)], env=one,
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


@pytest.mark.slow
def test_two_process_checkpoint_resumed_by_two_new_processes_is_bit_identical(two_process_runs):
    """DQN: 2 processes run 200 of 400 env steps and checkpoint (orbax, both processes); 2 new processes
    ``--resume`` it to 400. Params, target, Adam moments and step equal the uninterrupted 2-process run exactly."""
    out, env = two_process_runs
    _launch(out, ["dqn:resume"], env)
    straight, resumed = np.load(out / "dqn-p2.npz"), np.load(out / "dqn-resumed-p2.npz")
    assert int(resumed["processes"]) == 2 and int(resumed["env_steps"]) == int(straight["env_steps"]) == 400
    names = [n for n in straight.files if n.startswith("ts_")]
    assert names and sorted(names) == sorted(n for n in resumed.files if n.startswith("ts_"))
    for name in names:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
    assert float(resumed["eval"]) == float(straight["eval"])
    resumes = json.loads((out / "p2" / "dqn-part" / "provenance.json").read_text())["resumes"]
    assert [r["from_env_steps"] for r in resumes] == [200]  # recorded once, by process 0
