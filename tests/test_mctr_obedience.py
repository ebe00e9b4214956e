"""MCTR does what its reasoner says: a decided answer is executed as is; the head re-ranks only undecided ones."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.mctr.agent import MCTRAgent
from agents.mctr.backends import make_backends
from agents.mctr.backends.local_server import LocalChatServer
from agents.mctr.config import MCTRConfig, ServerConfig
from agents.mctr.evaluation import make_env
from agents.mctr.games import lookup
from agents.mctr.memory import KnowledgeBase
from agents.mctr.ttrl import TTRLConfig, make_act, make_head


def test_always_fire_backend_is_obeyed_on_18_actions():
    """A VLM that always answers FIRE: the executed action is FIRE in >= 95% of real steps on Seaquest (18
    actions), with test-time-RL branching and head updates running (before the fix: about 50%)."""
    server = LocalChatServer(default=("ok", "<think>shoot</think><answer>FIRE</answer>"))
    cfg = MCTRConfig(server=ServerConfig(base_url=server.url, model="always-fire", timeout_s=10.0),
                     ttrl=TTRLConfig(horizon=3, commit=1, every=4, learning_rate=0.05))
    env = make_env(lookup("Seaquest"), 2, seed=0)
    action_r, meta_r = make_backends(cfg)
    try:
        assert len(env.spec.action.names) == 18
        agent = MCTRAgent(cfg, env, "Seaquest", "free_shooter", KnowledgeBase(cfg.memory), action_r, meta_r)
        tstate = agent.init_policy(jax.random.PRNGKey(0))
        agent.reset(0)
        tstate, m = agent.run(tstate, jax.random.PRNGKey(1), 24)
    finally:
        env.close()
        action_r.close()
        server.close()
    steps = sum(agent.action_counts.values())
    assert steps == 48 and agent.action_counts["FIRE"] / steps >= 0.95, agent.action_counts
    assert m["decided_rate"] == 1.0 and m["obedience_rate"] == 1.0 and m["finish_stop"] == 48
    assert int(tstate.updates) > 0  # the head did learn in the branches; it just does not overrule the answer


def test_head_reranks_only_where_the_reasoner_is_undecided():
    cfg = TTRLConfig(obey_margin=2.0)
    head, _ = make_head(4, cfg)
    params = head.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    params = jax.tree_util.tree_map(lambda p: p, params)
    # a head that strongly prefers action 3 everywhere
    params["params"]["Dense_1"]["bias"] = jnp.array([0.0, 0.0, 0.0, 20.0])
    act = make_act(head, 1.0, cfg.obey_margin)
    reasoner = jnp.array([[0.0, 3.0, 0.0, 0.0],    # decided: FIRE (margin 3)
                          [0.0, 1.0, 0.0, 0.0],    # undecided: margin 1 < 2
                          [0.0, 0.0, 0.0, 0.0]])  # undecided: no preference
    feats = jnp.zeros((3, 3))
    actions, decided = act(params, feats, reasoner, jax.random.PRNGKey(1))
    assert list(np.asarray(decided)) == [True, False, False]
    assert list(np.asarray(actions)) == [1, 3, 3]  # the head re-ranks only the undecided rows


def test_answer_logit_must_clear_the_obey_margin():
    with pytest.raises(ValueError, match="chosen_logit .* must be >= mctr.ttrl.obey_margin"):
        MCTRConfig(server=ServerConfig(chosen_logit=1.0), ttrl=TTRLConfig(obey_margin=2.0))
    with pytest.raises(ValueError, match="obey_margin must be > 0"):
        dataclasses.replace(TTRLConfig(), obey_margin=0.0)
