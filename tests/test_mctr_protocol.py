"""MCTR evaluation protocol: seen games feed the memory, every ablation/baseline runs on an unseen game."""
from __future__ import annotations

import json

from agents.mctr.config import MCTRConfig
from agents.mctr.evaluation import VARIANTS, run_protocol
from agents.mctr.games import SEEN, UNSEEN, lookup
from agents.mctr.memory import KnowledgeBase
from agents.mctr.ttrl import TTRLConfig


def test_split_is_documented_and_consistent():
    assert len(SEEN) == 33 and len(UNSEEN) == 12
    assert {g.genre for g in UNSEEN} <= {g.genre for g in SEEN}
    assert lookup("atari/MsPacman").unseen and lookup("ms_pacman") is lookup("MsPacman")


def test_protocol_runs_every_variant_with_equal_budget(tmp_path):
    cfg = MCTRConfig(ttrl=TTRLConfig(horizon=2, every=2))
    res = run_protocol(cfg, [lookup("Pong")], [lookup("Breakout")], VARIANTS, budget=6, seeds=[0], num_envs=1,
                       out_dir=tmp_path, verbose=False)
    saved = json.loads((tmp_path / "protocol_results.json").read_text())
    assert saved["summary"] == res["summary"] and set(res["summary"]["top1"]) == set(VARIANTS)
    rec = {r["variant"]: r for r in res["records"] if r["phase"] == "unseen"}
    assert set(rec) == set(VARIANTS) and all(r["decisions"] == 6 for r in rec.values())
    seen_kb = KnowledgeBase.load(tmp_path / "seed0" / "seen_knowledge.jsonl")  # may be empty after 6 decisions
    # the unseen game starts from a copy of the seen memory; variants that may not write leave it as it was
    for v in ("no_meta", "static_retrieval"):
        kb = KnowledgeBase.load(tmp_path / "seed0" / v / "Breakout" / "knowledge.jsonl")
        assert sorted(e.text for e in kb.entries.values()) == sorted(e.text for e in seen_kb.entries.values())
        assert rec[v]["reflections"] == 0
    assert rec["no_memory"]["memory_entries"] == 0 and rec["icl"]["memory_entries"] == 0
    assert rec["static_retrieval"]["branch_decisions"] == 0 and rec["full"]["branch_decisions"] > 0
    assert rec["full"]["reflections"] > 0 and rec["no_ttrl"]["reflections"] > 0
    for r in rec.values():
        g = lookup(r["game"])
        assert r["human_normalised"] == (r["score"] - g.random) / (g.human - g.random)
