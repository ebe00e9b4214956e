"""MCTR's transferable meta-level knowledge: which acting routine pays off (agents/mctr/routine.py)."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from agents.mctr import routine
from agents.mctr.agent import MCTRAgent
from agents.mctr.backends import make_backends
from agents.mctr.backends.base import Observation
from agents.mctr.backends.embedded import EmbeddedActionReasoner
from agents.mctr.config import MCTRConfig
from agents.mctr.evaluation import make_env
from agents.mctr.games import lookup
from agents.mctr.memory import Entry, KnowledgeBase, Proposal
from agents.mctr.perception import situation
from agents.mctr.ttrl import TTRLConfig


def test_measure_is_a_standardised_difference_with_its_effective_sample_size():
    trials = [(routine.ON, r) for r in (3.0, 5.0, 4.0, 4.0)] + [(routine.OFF, r) for r in (1.0, 2.0, 3.0, 2.0)]
    v = routine.measure(trials)
    sd = np.sqrt((2.0 + 2.0) / 6)  # pooled SD of the two groups (sum of squares 2 each, 6 degrees of freedom)
    assert v.value == pytest.approx(2.0 / sd) and v.evidence == pytest.approx(2.0)
    assert v.z == pytest.approx(v.value * np.sqrt(2.0))
    assert routine.measure(trials[:5]) is None  # one OFF trial: not measurable yet
    assert routine.measure([(routine.ON, 1.0)] * 3 + [(routine.OFF, 1.0)] * 3) is None  # no variation
    pooled = routine.pool(routine.Verdict(1.0, 2.0), routine.Verdict(-1.0, 6.0))
    assert pooled.value == pytest.approx(-0.5) and pooled.evidence == 8.0


def test_assignment_alternates_without_knowledge_and_probes_with_it():
    assert [routine.assign(None, c) for c in range(4)] == [1, 0, 1, 0]
    assert [routine.assign(routine.ON, c) for c in range(8)] == [1, 1, 1, 0, 1, 1, 1, 0]
    assert [routine.assign(routine.OFF, c) for c in range(4)] == [0, 0, 0, 1]


def _verdict_entry(kb: KnowledgeBase, scope: str, value: float, evidence: int) -> None:
    kb.apply([Proposal("rule", f"verdict {value}", scope, evidence, key=routine.key("replay_best_branch"),
                       value=value, mode="set")], 0)


def test_this_games_significant_verdict_overrides_the_carried_one():
    kb = KnowledgeBase()
    _verdict_entry(kb, "genre:fixed_shooter", +1.0, 20)  # carried: replay pays (z 4.5)
    pref = lambda: routine.preferred(kb, "replay_best_branch", "Assault", "fixed_shooter", 2.0)  # noqa: E731
    assert pref() == routine.ON
    _verdict_entry(kb, "game:Assault", -0.3, 9)  # this game disagrees, not yet significantly (z 0.9)
    assert pref() == routine.ON
    _verdict_entry(kb, "game:Assault", -0.8, 9)  # now significantly (z 2.4): fast override
    assert pref() == routine.OFF
    assert routine.preferred(kb, "hold_action", "Assault", "fixed_shooter", 2.0) is None  # other routine: unknown


def test_set_mode_restates_a_measurement_instead_of_adding_it_again():
    kb = KnowledgeBase()
    k = routine.key("hold_action")
    kb.apply([Proposal("rule", "a", "general", 10, key=k, value=0.5, mode="set")], 0)
    kb.apply([Proposal("rule", "b", "general", 12, key=k, value=0.4, mode="set")], 1)
    e = kb.by_key(k, "general")
    assert (e.value, e.evidence, e.revisions) == (0.4, 12, 0) and e.confidence > kb.cfg.init_confidence
    kb.apply([Proposal("rule", "c", "general", 14, key=k, value=-0.4, mode="set")], 2)  # sign flip: a revision
    assert (e.value, e.evidence, e.revisions) == (-0.4, 14, 1)
    with pytest.raises(ValueError, match="mode"):
        Proposal("rule", "free text", "general", mode="set")


def test_proposals_pool_the_carried_genre_verdict_with_this_games_measurement():
    trials = {"replay_best_branch": [(1, 3.0), (1, 5.0), (0, 1.0), (0, 2.0)]}
    own = routine.measure(trials["replay_best_branch"])
    carried = {("replay_best_branch", "genre:g"): routine.Verdict(0.0, 10.0)}
    out = {p.scope: p for p in routine.proposals(trials, carried, "Game", "g")}
    assert set(out) == {"game:Game", "genre:g", "general"} and all(p.mode == "set" for p in out.values())
    assert out["game:Game"].value == pytest.approx(own.value)
    assert out["genre:g"].value == pytest.approx(own.value * own.evidence / (own.evidence + 10.0))
    assert "earns more reward" in out["game:Game"].text


def test_other_games_action_statistics_move_no_logits():
    """Action-name statistics measured in another game (genre scope) must not steer this game's actions."""
    names = ("NOOP", "FIRE", "LEFT", "RIGHT")
    def entry(scope, key, value):
        return Entry("k00000", "rule" if key.startswith("comp") else "action_outcome", "t", scope, 50, 0.9, 0, 0,
                     key=key, value=value)
    sit = situation([], "play", None)
    def logits(knowledge):
        return EmbeddedActionReasoner()._logits_one(Observation(
            "Assault", "fixed_shooter", np.zeros((1, 210, 160, 3), np.uint8), [], sit, names, knowledge,
            np.zeros((4, 2), np.float32)))
    carried = [entry("genre:fixed_shooter", "comp|LEFT", 1.5), entry("genre:fixed_shooter", "ao|play|FIRE", 2.0)]
    assert np.all(logits(carried) == 0.0)
    own = [entry("game:Assault", "comp|LEFT", 1.5)]
    assert logits(own)[2] > 0 and logits(own)[0] == 0


def test_replaying_the_best_branch_reproduces_its_return():
    """The clone includes the sticky-action RNG: replaying the best branch's actions from the branching state earns
    exactly that branch's reward over the interval (Boxing: punches often make branch returns differ)."""
    cfg = MCTRConfig(ttrl=TTRLConfig(horizon=6, commit=2, every=4, life_loss_penalty=0.0))
    env = make_env(lookup("Boxing"), 2, seed=100)
    action_r, meta_r = make_backends(cfg)
    agent = MCTRAgent(cfg, env, "Boxing", "sports", KnowledgeBase(cfg.memory), action_r, meta_r)
    checked = []
    try:
        tstate = agent.init_policy(jax.random.PRNGKey(0))
        agent.reset(100)
        key = jax.random.PRNGKey(1)
        for _ in range(40):
            key, k = jax.random.split(key)
            sits = agent._situations(agent.p)
            logits = np.zeros((2, len(agent.names)), np.float32)
            tstate, _ = agent._branch(tstate, agent._features(agent.p, sits), logits, sits, k)
            real = np.zeros(2)
            for h in range(cfg.ttrl.every):
                ts = env.step(agent._plan[:, h])
                agent.p, _ = agent._perceive(ts, agent.p, want_objects=False)
                real += np.asarray(ts.reward)
            checked += list(zip(real.tolist(), agent._plan_interval_return.tolist()))
            if sum(planned != 0 for _, planned in checked) >= 3:
                break
    finally:
        env.close()
    assert sum(planned != 0 for _, planned in checked) >= 3, checked
    assert all(real == pytest.approx(planned) for real, planned in checked), checked
