"""Divergence detection: every agent with an absurd learning rate stops at the first non-finite update, with one
line, without saving the diverged state; ``run.on_nonfinite=warn`` keeps going and NaN metrics are logged as null."""
import json
import math
import re

import jax
import numpy as np
import pytest

from omnitask.checkpoint import Checkpoints
from omnitask.nonfinite import NonFiniteError, Watch, finite_flag, problem
from omnitask.run_dir import new_run_dir
from omnitask.runner import make_trainer, train

from tiny_configs import CARTPOLE, DQN_TINY, MBTL_TINY, MINATAR, PPO_TINY, PVN_TINY, SCALEZERO_TINY, experiment

ABSURD_LR = 1e30
# case -> (env, agent section with the absurd learning rate): the tiny configs reach a learner update within a few
# train steps.
CASES = {
    "ppo": (CARTPOLE, {**PPO_TINY, "lr": ABSURD_LR}),
    "dqn": (CARTPOLE, {**DQN_TINY, "lr": ABSURD_LR}),
    "scalezero": (CARTPOLE, {**SCALEZERO_TINY, "learning_rate": ABSURD_LR}),
    "pvn_pretrain": (MINATAR, {**PVN_TINY, "pretrain": {**PVN_TINY["pretrain"], "learning_rate": ABSURD_LR}}),
    # Huber TD loss and Adam keep a linear head finite for a long while at 1e30: overflow at once
    "pvn_online": (MINATAR, {**PVN_TINY, "eval": {**PVN_TINY["eval"], "learning_rate": 1e38}}),
    "mbtl_online": (CARTPOLE, {**MBTL_TINY, "base_config": {**PPO_TINY, "lr": ABSURD_LR}}),
}


def _cfg(tmp_path, case, on_nonfinite="stop", total=4000):
    env, section = CASES[case]
    return experiment(case.split("_")[0], env, section,
                      {"total_env_steps": total, "eval_every": 0, "eval_episodes": 1, "checkpoint_every": 100,
                       "out_dir": str(tmp_path), "name": case, "on_nonfinite": on_nonfinite})


def _all_finite(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.floating))


@pytest.mark.parametrize("case", list(CASES))
def test_absurd_learning_rate_stops_with_one_line_and_no_diverged_checkpoint(tmp_path, case):
    cfg = _cfg(tmp_path, case)
    run_dir = new_run_dir(cfg)
    with pytest.raises(NonFiniteError) as err:
        train(cfg, run_dir)
    message = str(err.value)
    agent = "ppo" if case == "mbtl_online" else cfg.agent  # MBTL trains its sources through the run loop
    match = re.fullmatch(rf"non-finite loss at env step ([0-9,]+) \(agent {agent}\): .*=(nan|inf).*", message)
    assert match, message
    diverged_at = int(match.group(1).replace(",", ""))
    assert not (run_dir / "final_eval.json").exists()
    if case != "mbtl_online":  # MBTL's sources diverge inside their own (temporary) run directories
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])  # the diverged step
        flags = [v for k, v in last.items() if k.split("/")[-1] == "finite"]
        assert last["env_steps"] == diverged_at and min(flags) < 1.0 and None in last.values(), last  # NaN -> null
    saved = sorted(int(p.name) for p in (run_dir / "checkpoints").glob("[0-9]*"))
    assert all(step < diverged_at for step in saved), (saved, diverged_at)  # the diverged state never saved


def test_checkpoints_before_a_divergence_stay_finite(tmp_path):
    """DQN saves every 100 env steps (train steps of 200) and learns from 200 on: it diverges in the step ending at 400;
    the checkpoint at 200 stays the newest and is finite."""
    cfg = _cfg(tmp_path, "dqn")
    run_dir = new_run_dir(cfg)
    with pytest.raises(NonFiniteError, match="non-finite loss at env step 400 "):
        train(cfg, run_dir)
    ckpts = Checkpoints(run_dir)
    try:
        assert ckpts.latest_step() == 200
        trainer = make_trainer(cfg, run_dir)
        state, meta = ckpts.restore(trainer.init(jax.random.PRNGKey(0)))
        trainer.close()
    finally:
        ckpts.close()
    assert meta["env_steps"] == 200 and _all_finite(state)


def test_mctr_ttrl_head_reports_divergence():
    """MCTR's test-time RL head: an update whose logits overflow is flagged (the run loop sees ``finite`` in the
    trainer's metrics like any agent's). Driven directly: on Pong's short branch horizons every group return is
    equal, the advantages are zero and the zero-initialised head never moves, whatever the learning rate.
    (1e38: the head's tanh layer bounds its logits by lr * hidden, finite at 1e30 for millions of updates.)"""
    from agents.mctr.ttrl import GroupBatch, TTRLConfig, init_state, make_head, make_update
    cfg = TTRLConfig(learning_rate=1e38, group_size=4)
    head, opt = make_head(6, cfg)
    state = init_state(jax.random.PRNGKey(0), head, opt, 8)
    update = make_update(head, opt, cfg)
    rng = np.random.default_rng(0)
    batch = GroupBatch(rng.normal(size=(2, 8)).astype(np.float32), np.zeros((2, 6), np.float32),
                       rng.integers(0, 6, (2, 4)).astype(np.int32), rng.normal(size=(2, 4)).astype(np.float32))
    flags = []
    for _ in range(3):
        state, metrics = update(state, batch)
        flags.append(float(metrics["finite"]))
    assert flags[0] == 1.0 and flags[-1] == 0.0, flags


def test_warn_keeps_going_and_logs_nan_metrics_as_null(tmp_path, capsys):
    cfg = _cfg(tmp_path, "ppo", on_nonfinite="warn", total=384)
    run_dir = new_run_dir(cfg)
    result = train(cfg, run_dir)
    assert result.env_steps == 384
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert len(train_rows) == 3 and all(r["finite"] == 0.0 for r in train_rows[1:])
    assert all(r["loss/policy"] is None for r in train_rows[1:])  # NaN -> null, not dropped


def test_finite_flag_and_problem_text():
    assert float(finite_flag(np.ones(3), {"a": np.float32(2.0)})) == 1.0
    assert float(finite_flag(np.ones(3), {"a": np.float32(np.inf)})) == 0.0
    assert problem({"finite": 1.0, "loss": math.nan}) is None  # no flag failed: a NaN loss alone is "no update"
    assert problem({"finite": math.nan}) is None  # no update this step
    assert problem({"dqn/finite": 0.5, "dqn/loss": math.nan, "pvn/finite": 1.0}) == "dqn/loss=nan (dqn/finite=0.50)"
    watch = Watch("toy", "warn")
    assert watch.check({"finite": 0.0, "loss": math.inf}, 10).startswith("non-finite loss at env step 10 (agent toy)")
    assert watch.check({"finite": 0.0}, 20) is None  # warned once
    with pytest.raises(ValueError, match="run.on_nonfinite"):
        Watch("toy", "ignore")


def test_mbtl_cli_exits_3_with_one_line_when_a_source_diverges(tmp_path, capsys):
    """`omnitask mbtl online` reports a diverged source learner like `omnitask train`: one line, exit code 3."""
    import yaml

    from agents.mbtl.cli import main

    raw = {"agent": "mbtl", "env": CARTPOLE,
           "run": {"total_env_steps": 4000, "eval_every": 0, "eval_episodes": 1, "out_dir": str(tmp_path),
                   "progress": False},
           "mbtl": {**MBTL_TINY, "base_config": {**PPO_TINY, "lr": ABSURD_LR}}}
    path = tmp_path / "mbtl.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["online", str(path)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: non-finite loss at env step "), err
