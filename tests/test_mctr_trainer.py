"""MCTR through the run loop: the shipped configs run (tiny budgets), knowledge persists and reloads on resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.mctr.memory import KnowledgeBase
from omnitask.config import load_config
from omnitask.run_dir import new_run_dir
from omnitask.runner import train

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "mctr"


def _tiny(tmp_path, name, steps, extra=()):
    return load_config(CONFIGS / "embedded_cpu.yaml", [
        f"run.total_env_steps={steps}", "run.eval_every=0", "run.eval_episodes=1", "run.checkpoint_every=0",
        f"run.out_dir={tmp_path}", f"run.name={name}", "run.progress=false", "mctr.decisions_per_step=6",
        "mctr.eval_max_decisions=12", "mctr.ttrl.horizon=2", *extra])


def test_embedded_run_persists_knowledge_and_resume_reloads_it(tmp_path):
    # a branch group every 2 decisions: enough informative groups in 12 decisions for the memory to get entries
    cfg = _tiny(tmp_path, "a", 24, ["mctr.ttrl.every=2"])
    result = train(cfg, new_run_dir(cfg))
    run_dir = result.run_dir
    assert result.env_steps == 24 and np.isfinite(result.final_eval["return_mean"])
    assert json.loads((run_dir / "final_eval.json").read_text())["return_mean"] == result.final_eval["return_mean"]
    kb = KnowledgeBase.load(run_dir / "knowledge.jsonl")
    assert len(kb) > 0
    sched_log = (run_dir / "mctr" / "scheduler.jsonl").read_text().splitlines()
    assert len(sched_log) == 12  # one logged decision per real decision step (2 steps x 6 decisions)
    # a crash left a cut-off line (e.g. a copy made mid-write): the resume keeps every good entry and reports it
    with open(run_dir / "knowledge.jsonl", "a") as f:
        f.write('{"id": "k99999", "kind": "rule", "te')
    # resume with a larger budget: the memory file is reloaded (entries kept, ids continue), training continues
    cfg2 = load_config(run_dir / "config.yaml", ["run.total_env_steps=48"])
    result2 = train(cfg2, run_dir, resume=True)
    assert result2.env_steps == 48
    assert (run_dir / "knowledge.jsonl.corrupt").read_text().endswith('"te')
    kb2 = KnowledgeBase.load(run_dir / "knowledge.jsonl")
    # entries created before the checkpoint (decision < 12) survive: the file was reloaded, not started afresh
    assert any(e.created < 12 for e in kb2.entries.values()) and kb2._next_id >= kb._next_id
    assert len((run_dir / "mctr" / "scheduler.jsonl").read_text().splitlines()) == 24


def test_memory_init_carries_seen_knowledge(tmp_path):
    seen = KnowledgeBase(path=tmp_path / "seen.jsonl")
    from agents.mctr.memory import Proposal
    seen.apply([Proposal("rule", "In fixed_shooter games, fire often.", "genre:fixed_shooter")], 1)
    cfg = _tiny(tmp_path, "b", 12, [f"mctr.memory_init={tmp_path / 'seen.jsonl'}"])
    result = train(cfg, new_run_dir(cfg))
    kb = KnowledgeBase.load(result.run_dir / "knowledge.jsonl")
    assert any(e.text == "In fixed_shooter games, fire often." for e in kb.entries.values())


def test_vlm_config_loads_and_points_at_a_server():
    cfg = load_config(CONFIGS / "vlm_paper.yaml")
    assert cfg.mctr.server.base_url.startswith("http://127.0.0.1") and cfg.mctr.frames == 3
    with pytest.raises(Exception, match="unknown config key 'mctr.server.urll'"):
        load_config(CONFIGS / "vlm_paper.yaml", ["mctr.server.urll=x"])
