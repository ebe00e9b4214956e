"""MCTR knowledge memory: merge, contradiction, pruning, retrieval by scope, atomic persistence (incl. a crash)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agents.mctr.memory import KnowledgeBase, MemoryConfig, Proposal
from agents.mctr.retrieval import embed_text


def _ao(value: float, n: int = 4, scope: str = "game:Breakout") -> Proposal:
    return Proposal("action_outcome", f"In Breakout, FIRE after losing a life has advantage {value:+.2f}.", scope,
                    n, key="ao|life_lost|FIRE", value=value)


def test_merge_same_key_accumulates_evidence_and_confidence():
    kb = KnowledgeBase(MemoryConfig(init_confidence=0.3))
    r1 = kb.apply([_ao(0.6, n=2)], step=10)
    r2 = kb.apply([_ao(0.3, n=4)], step=20)
    assert len(r1.added) == 1 and r2.merged == r1.added and len(kb) == 1
    e = kb.entries[r1.added[0]]
    assert e.evidence == 6
    assert e.value == pytest.approx((0.6 * 2 + 0.3 * 4) / 6)  # evidence-weighted mean
    assert e.confidence == pytest.approx(1 - 0.7 * 0.7)  # each confirmation closes 30% of the gap to 1
    assert (e.created, e.updated) == (10, 20)


def test_keyed_text_restates_merged_belief():
    t = "In Breakout, FIRE [[hurts|does nothing|helps]] (advantage {value:+.2f}, n={evidence})."
    kb = KnowledgeBase(MemoryConfig(min_effect=0.05))
    p = lambda v, n: Proposal("action_outcome", "x", "game:Breakout", n, key="ao|play|FIRE", value=v, template=t)  # noqa
    eid = kb.apply([p(0.9, 1)], 1).added[0]
    kb.apply([p(0.0, 3)], 2)  # merged mean 0.225 over 4: still "helps"
    assert kb.entries[eid].text == "In Breakout, FIRE helps (advantage +0.23, n=4)."
    kb.apply([p(0.01, 36)], 3)  # mean (0.9 + 0.36) / 40 = 0.0315 -> below min_effect: "does nothing"
    assert kb.entries[eid].text == "In Breakout, FIRE does nothing (advantage +0.03, n=40)."


def test_unkeyed_texts_merge_only_when_they_say_the_same_thing():
    kb = KnowledgeBase(MemoryConfig(merge_threshold=0.9))
    kb.apply([Proposal("rule", "Shoot the aliens before they reach the bottom.", "genre:fixed_shooter")], 1)
    kb.apply([Proposal("rule", "Shoot the aliens before they reach the bottom!", "genre:fixed_shooter")], 2)
    assert len(kb) == 1 and next(iter(kb.entries.values())).evidence == 2
    kb.apply([Proposal("rule", "Collect the keys to open doors in the temple.", "genre:fixed_shooter")], 3)
    kb.apply([Proposal("rule", "Shoot the aliens before they reach the bottom.", "genre:maze")], 4)  # other scope
    assert len(kb) == 3


def test_contradiction_revises_text_value_and_cuts_confidence():
    kb = KnowledgeBase(MemoryConfig(init_confidence=0.4, revise_confidence_factor=0.5))
    eid = kb.apply([_ao(0.5)], 1).added[0]
    kb.apply([_ao(0.5)], 2)
    before = kb.entries[eid].confidence
    rep = kb.apply([_ao(-0.4, n=3)], 3)
    e = kb.entries[eid]
    assert rep.revised == [eid] and e.revisions == 1
    assert e.value == pytest.approx(-0.4) and e.evidence == 3 and "-0.40" in e.text
    assert e.confidence == pytest.approx(before * 0.5)
    # a tiny opposite value is noise, not a contradiction
    rep = kb.apply([_ao(0.01)], 4)
    assert rep.merged == [eid] and rep.revised == []


def test_explicit_revision_by_id():
    kb = KnowledgeBase()
    eid = kb.apply([Proposal("pattern", "The ball speeds up after 4 hits.", "game:Breakout")], 1).added[0]
    rep = kb.apply([Proposal("pattern", "The ball speeds up after 12 hits.", "game:Breakout", replaces=eid)], 2)
    assert rep.revised == [eid] and kb.entries[eid].text.endswith("12 hits.")


def test_unconfirmed_entries_decay_and_are_pruned():
    kb = KnowledgeBase(MemoryConfig(init_confidence=0.3, decay=0.5, prune_below=0.05))
    old = kb.apply([_ao(0.5)], 0).added[0]
    other = Proposal("rule", "Keep the paddle under the ball.", "genre:paddle")
    for step in range(1, 3):
        rep = kb.apply([other], step)
        assert old in kb.entries, step  # 0.3 -> 0.15 -> 0.075 -> 0.0375 < 0.05 at the third decay
        assert rep.pruned == []
    assert kb.entries[old].confidence == pytest.approx(0.075)
    rep = kb.apply([other], 3)
    assert rep.pruned == [old] and old not in kb.entries and len(kb) == 1


def test_retrieval_prefers_similar_text_and_own_scope():
    kb = KnowledgeBase()
    kb.apply([Proposal("rule", "In Breakout, move the paddle under the ball.", "game:Breakout"),
              Proposal("rule", "In paddle games, move the paddle under the ball.", "genre:paddle"),
              Proposal("rule", "In Pong, move the paddle under the ball.", "game:Pong"),
              Proposal("rule", "In Seaquest, surface before oxygen runs out.", "game:Seaquest")], 1)
    got = kb.retrieve("move the paddle under the ball", "Breakout", "paddle", k=3)
    assert [e.scope for e in got] == ["game:Breakout", "genre:paddle", "game:Pong"]
    assert embed_text("move the paddle") @ embed_text("move the paddle") == pytest.approx(1.0, abs=1e-5)


def test_persistence_round_trip_and_reload(tmp_path):
    path = tmp_path / "kb" / "knowledge.jsonl"
    kb = KnowledgeBase(path=path)
    kb.apply([_ao(0.5), Proposal("rule", "Fire often.", "general")], 7)
    assert path.exists()  # saved after the update, no explicit save needed
    back = KnowledgeBase.load(path)
    assert {k: vars(v) for k, v in back.entries.items()} == {k: vars(v) for k, v in kb.entries.items()}
    back.apply([Proposal("rule", "Avoid the sharks.", "game:Seaquest")], 8)  # ids continue, no collision
    assert len(KnowledgeBase.load(path)) == 3 and len(set(back.entries)) == 3


def test_malformed_file_is_refused_with_line_number(tmp_path):
    path = tmp_path / "k.jsonl"
    KnowledgeBase(path=path).apply([_ao(0.5)], 1)
    path.write_text(path.read_text() + '{"id": "k9", "kind": "wish", "text": "x"}\n')
    with pytest.raises(ValueError, match=r"k\.jsonl:3.*missing fields"):
        KnowledgeBase.load(path)
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="header is not JSON"):
        KnowledgeBase.load(path)
    with pytest.raises(ValueError, match="bad knowledge scope"):
        Proposal("rule", "x", "planet:Mars")


def test_crash_during_write_leaves_a_valid_file(tmp_path):
    """A writer process is SIGKILLed while rewriting the file in a loop; the file always loads completely."""
    path = tmp_path / "knowledge.jsonl"
    script = textwrap.dedent(f"""
        from agents.mctr.memory import KnowledgeBase, Proposal
        kb = KnowledgeBase(path={str(path)!r})
        i = 0
        while True:
            kb.apply([Proposal("rule", "rule number %d " % i + "x" * 2000, "general")], i)
            if i == 0:
                print("ready", flush=True)
            i += 1
    """)
    for trial in range(2):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.2 + 0.1 * trial)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kb = KnowledgeBase.load(path)  # complete, parseable
        assert len(kb) >= 1
        lines = path.read_text().splitlines()
        assert json.loads(lines[0])["format"] == "mctr-knowledge-v1" and len(lines) == len(kb) + 1
        leftovers = [p for p in tmp_path.iterdir() if p.name != "knowledge.jsonl"]
        for p in leftovers:  # a killed writer may leave its temp file; it is never the real file
            assert p.name.startswith(".knowledge.jsonl.") and p.suffix == ".tmp"
