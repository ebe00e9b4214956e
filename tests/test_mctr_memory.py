"""MCTR knowledge memory: merge, contradiction, pruning, retrieval by scope, atomic persistence (incl. a crash)."""
from __future__ import annotations

import json
import re
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


# ------------------------------------------------------------------------------------ claims are never merged away
@pytest.mark.parametrize("old, new", [
    ("Moving RIGHT when the ball is to the right keeps the paddle under it.",
     "Moving LEFT when the ball is to the right keeps the paddle under it."),
    ("Do not shoot the aliens while they are shielded by the bunkers.",
     "Shoot the aliens while they are shielded by the bunkers."),
])
def test_similar_texts_with_different_actions_or_negations_stay_apart(old, new):
    cfg = MemoryConfig(merge_threshold=0.9)
    assert float(embed_text(old) @ embed_text(new)) >= cfg.merge_threshold  # the wording alone would merge them
    kb = KnowledgeBase(cfg)
    kb.apply([Proposal("rule", old, "game:Breakout")], 1)
    rep = kb.apply([Proposal("rule", new, "game:Breakout")], 2)
    assert len(rep.added) == 1 and rep.merged == [] and len(kb) == 2
    assert sorted(e.text for e in kb.entries.values()) == sorted([old, new])
    assert all(e.confidence <= cfg.init_confidence for e in kb.entries.values())  # nothing was confirmed


def test_numbered_rules_stay_distinct():
    kb = KnowledgeBase(MemoryConfig(max_entries=5000))
    rules = [Proposal("rule", f"Rule {i}: keep the paddle under the ball in round {i}.", "general")
             for i in range(2000)]
    rep = kb.apply(rules, 1)
    assert len(rep.added) == 2000 and len(kb) == 2000 and rep.merged == []


def test_text_only_match_adds_evidence_but_not_confidence():
    kb = KnowledgeBase(MemoryConfig(init_confidence=0.3))
    eid = kb.apply([Proposal("rule", "Shoot the aliens before they land.", "general")], 1).added[0]
    for step in range(2, 6):
        rep = kb.apply([Proposal("rule", "Shoot the aliens before they land!", "general")], step)
        assert rep.merged == [eid]
    e = kb.entries[eid]
    assert e.evidence == 5 and e.confidence == pytest.approx(0.3) and e.updated == 5


def test_free_text_revision_of_a_measured_entry_is_refused():
    kb = KnowledgeBase()
    eid = kb.apply([_ao(-4.0, n=24)], 1).added[0]
    before = dict(vars(kb.entries[eid]))
    rep = kb.apply([Proposal("action_outcome", "FIRE after losing a life is great.", "game:Breakout",
                             replaces=eid)], 2)
    assert rep.revised == [] and rep.refused and rep.refused[0].startswith(eid)
    after = dict(vars(kb.entries[eid]))
    assert {k: v for k, v in after.items() if k != "confidence"} == {k: v for k, v in before.items()
                                                                     if k != "confidence"}
    assert after["value"] == -4.0 and after["evidence"] == 24
    # the VLM's parser refuses it too, and the prompt shows measured entries without a revisable id
    from agents.mctr.parsing import parse_meta
    from agents.mctr.prompts import format_knowledge
    proposals, malformed, reasons = parse_meta(f'<revise id="{eid}">FIRE is great.</revise>', kb.entries)
    assert proposals == [] and malformed == 1 and "refused" in reasons[0]
    assert eid not in format_knowledge(list(kb.entries.values())) and "read-only" in format_knowledge(
        list(kb.entries.values()))


# ------------------------------------------------------------------------------------ the file: typed, recoverable
def _write(path, header: dict, rows: list) -> None:
    path.write_text("\n".join([json.dumps(header)] + [r if isinstance(r, str) else json.dumps(r) for r in rows])
                    + "\n")


def _row(eid: str, **kw) -> dict:
    d = {"id": eid, "kind": "rule", "text": f"entry {eid}", "scope": "general", "evidence": 1, "confidence": 0.3,
         "created": 0, "updated": 0, "key": "", "value": 0.0, "revisions": 0, "template": ""}
    d.update(kw)
    return d


def test_truncated_line_strict_refuses_and_recovery_keeps_good_entries(tmp_path):
    path = tmp_path / "k.jsonl"
    good = [_row("k00000"), _row("k00001")]
    _write(path, {"format": "mctr-knowledge-v1", "next_id": 3},
           good + [json.dumps(_row("k00002"))[:40], _row("k00003", evidence="12")])
    with pytest.raises(ValueError, match=r"k\.jsonl:4: entry is not JSON"):
        KnowledgeBase.load(path)
    kb = KnowledgeBase.load(path, recover=True)
    assert sorted(kb.entries) == ["k00000", "k00001"]
    assert len(kb.load_errors) == 2 and kb.load_errors[0].startswith(f"{path}:4:")
    assert "field 'evidence' is str" in kb.load_errors[1] and "allowed: int" in kb.load_errors[1]


@pytest.mark.parametrize("row, message", [
    (_row("k00005", confidence="high"), "field 'confidence' is str"),
    (_row("k00005", value=None), "field 'value' is NoneType"),
    (_row("k00005", evidence=True), "field 'evidence' is bool"),
    (_row("k00005", confidence=3.0), "confidence 3.0"),
    (_row("k00005", kind="wish"), "bad kind 'wish'"),
    (_row("x5"), "bad id 'x5'"),
    ([1, 2], "must be a JSON object"),
])
def test_every_field_is_type_checked(tmp_path, row, message):
    path = tmp_path / "k.jsonl"
    _write(path, {"format": "mctr-knowledge-v1", "next_id": 0}, [row])
    with pytest.raises(ValueError, match=re.escape(message)):
        KnowledgeBase.load(path)


def test_missing_next_id_continues_after_the_highest_id_and_duplicates_are_refused(tmp_path):
    path = tmp_path / "k.jsonl"
    _write(path, {"format": "mctr-knowledge-v1"}, [_row("k00000"), _row("k00007")])
    kb = KnowledgeBase.load(path)
    eid = kb.apply([Proposal("rule", "A new rule about sharks.", "general")], 1).added[0]
    assert eid == "k00008" and len(kb) == 3
    _write(path, {"format": "mctr-knowledge-v1", "next_id": 2}, [_row("k00000"), _row("k00001", text="other"),
                                                                   _row("k00001", text="again")])
    with pytest.raises(ValueError, match="duplicate id 'k00001'"):
        KnowledgeBase.load(path)
    kb = KnowledgeBase.load(path, recover=True)
    assert kb.entries["k00001"].text == "other" and "duplicate id" in kb.load_errors[0]
