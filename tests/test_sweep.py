"""Seed sweeps (`omnitask train CONFIG --seeds 0,1`): every agent's CPU config, twice, on a spawned process pool and
on Ray. Workers receive plain config dicts (the typed experiment classes are generated per agent and do not pickle)
and rebuild them; each seed trains in its own run directory. Tiny budgets: this tests the plumbing, not learning."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from omnitask.cli import main
from omnitask.config import load_config
from omnitask.executors import run_each, seed_configs, train_from_dict

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
LOCK_SHA256 = hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()
RUN = ["run.eval_every=0", "run.eval_episodes=1", "run.checkpoint_every=0", "run.log_every=1"]
# Each agent's CPU config with a budget of one or two train steps.
TINY = {
    "ppo/cartpole.yaml": ["run.total_env_steps=256", "env.num_envs=2", "ppo.num_steps=128",
                          "ppo.updates_per_train_step=1"],
    "dqn/cartpole.yaml": ["run.total_env_steps=64", "dqn.steps_per_train_step=8", "dqn.learning_starts=32",
                          "dqn.batch_size=8"],
    "scalezero/cartpole.yaml": ["run.total_env_steps=16", "scalezero.warmup_transitions=8",
                                "scalezero.batch_size=4", "scalezero.updates_per_iter=1",
                                "scalezero.num_simulations=2", "scalezero.eval_num_simulations=2"],
    "pvn/minatar_breakout_cpu.yaml": [
        "run.total_env_steps=16", "env.num_envs=4", "pvn.data.collect_transitions=200", "pvn.data.chunk_size=100",
        "pvn.pretrain.num_tasks=10", "pvn.pretrain.encoder.feature_dim=8", "pvn.pretrain.num_updates=1",
        "pvn.pretrain.updates_per_call=1", "pvn.pretrain.warmup_steps=1", "pvn.pretrain.batch_size=4",
        "pvn.eval.replay_capacity=64", "pvn.eval.min_replay=16", "pvn.eval.batch_size=4",
        "pvn.eval.iterations_per_call=4", "pvn.baselines=[]", "pvn.fire_rate_transitions=16", "pvn.eval_seeds=1",
        "pvn.eval.eval_max_steps=20"],
    "mbtl/cartpole_ci.yaml": ["run.total_env_steps=256", "mbtl.steps_per_task=128", "mbtl.eval_episodes=1",
                              "mbtl.ppo.num_steps=32", "mbtl.ppo.num_minibatches=1", "mbtl.selector.gp.num_steps=2",
                              "mbtl.selector.gp.num_restarts=1"],
    "mctr/embedded_cpu.yaml": ["run.total_env_steps=8", "mctr.decisions_per_step=2", "mctr.eval_max_decisions=2",
                               "mctr.ttrl.horizon=1"],
}


def _sweep_configs(out_dir: Path) -> list[dict]:
    raws = []
    for name, overrides in TINY.items():
        cfg = load_config(CONFIGS / name, [*RUN, *overrides, f"run.out_dir={out_dir}", "run.name=null"])
        raws += seed_configs(cfg, [0, 1])
    return raws


def _check(results: dict, out_dir: Path) -> None:
    assert len(results) == 2 * len(TINY)
    for (agent, seed), res in results.items():
        run_dir = Path(res["run_dir"])
        assert run_dir.parent == out_dir and run_dir.name.endswith(f"-s{seed}")
        saved = load_config(run_dir / "config.yaml")
        assert saved.agent == agent and saved.seed == seed
        assert json.loads((run_dir / "final_eval.json").read_text())["env_steps"] > 0
        provenance = json.loads((run_dir / "provenance.json").read_text())
        assert provenance["lock_sha256"] == LOCK_SHA256 and provenance["seed"] == seed


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_two_seed_sweep_of_every_agent(executor, tmp_path):
    if executor == "ray":
        pytest.importorskip("ray")
    results = {}
    run_each(train_from_dict, _sweep_configs(tmp_path), lambda raw, res: results.__setitem__(
        (raw["agent"], raw["seed"]), res), executor=executor, max_workers=2)
    _check(results, tmp_path)
    if executor == "ray":
        import ray
        assert not ray.is_initialized()  # the executor shut its local Ray down


def test_cli_seed_sweep_writes_one_run_per_seed(tmp_path, capsys):
    args = ["train", str(CONFIGS / "ppo/cartpole.yaml"), "--seeds", "0,1", "--workers", "2", "--executor", "local",
            "--set", f"run.out_dir={tmp_path}"]
    for override in [*RUN, *TINY["ppo/cartpole.yaml"]]:
        args += ["--set", override]
    assert main(args) == 0
    summary = json.loads((tmp_path / "ppo-seeds.json").read_text())
    assert [r["seed"] for r in summary] == [0, 1]
    assert [Path(r["run_dir"]).name for r in summary] == ["ppo-classic_CartPole-v1-s0", "ppo-classic_CartPole-v1-s1"]
    assert all(r["return_mean"] > 0 for r in summary)
