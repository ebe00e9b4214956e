"""MCTR test-time RL: GRPO on a bandit, branched rollouts from cloned states on a tiny game, ALE determinism."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.mctr.agent import MCTRAgent
from agents.mctr.backends.embedded import EmbeddedActionReasoner, EmbeddedMetaReasoner, player_signature
from agents.mctr.config import MCTRConfig
from agents.mctr.memory import KnowledgeBase
from agents.mctr.perception import FEATURE_DIM
from agents.mctr.ttrl import (GroupBatch, TTRLConfig, group_advantages, init_state, make_head, make_update,
                              policy_logits)
from envs.base import BatchedEnv, EpisodeStats
from envs.spec import ArraySpec, DiscreteActionSpec, EnvSpec
from envs.timestep import TimeStep


def test_group_advantages_hand_computed():
    r = jnp.array([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    adv = group_advantages(r, 1e-3)
    np.testing.assert_allclose(adv[0], [1, -1, -1, 1], atol=1e-6)  # mean 0.5, std 0.5
    np.testing.assert_allclose(adv[1], 0.0)  # an all-equal group carries no signal


def test_bandit_update_raises_probability_of_rewarded_action():
    cfg = TTRLConfig(learning_rate=1e-2, group_size=8, entropy_coef=0.0)
    head, opt = make_head(4, cfg)
    feat_dim = 16
    state = init_state(jax.random.PRNGKey(0), head, opt, feat_dim)
    update = make_update(head, opt, cfg)
    feats = jax.random.normal(jax.random.PRNGKey(1), (3, feat_dim))  # [B, F] three bandit "states"
    prior = jnp.array([[2.0, 0.0, 0.0, 0.0]] * 3)  # the reasoner prefers the wrong arm
    probs = jax.jit(lambda params: jax.nn.softmax(policy_logits(head, params, feats, prior, 1.0)))
    sample = jax.jit(lambda params, k: jax.random.categorical(
        k, policy_logits(head, params, feats, prior, 1.0)[:, None], shape=(3, cfg.group_size)))
    p0 = probs(state.params)[:, 2]
    key = jax.random.PRNGKey(2)
    for _ in range(60):
        key, k = jax.random.split(key)
        actions = sample(state.params, k)  # [B, G]
        returns = (actions == 2).astype(jnp.float32)  # only arm 2 pays
        state, metrics = update(state, GroupBatch(feats, prior, actions, returns))
    p1 = probs(state.params)[:, 2]
    assert float(p0.max()) < 0.15 and float(p1.min()) > 0.8, (p0, p1)
    assert int(state.updates) == 60


class Corridor(BatchedEnv):
    """Tiny game with clone/restore: a white block on cells 0..2; reaching cell 2 pays 1 and restarts the episode.

    Actions NOOP, FIRE, RIGHT, LEFT; frames are 210x160 RGB so the real perception pipeline runs on them.
    """

    def __init__(self, num_envs: int, cells: int = 3, max_steps: int = 30):
        self.num_envs, self.cells, self.max_steps = num_envs, cells, max_steps
        self.spec = EnvSpec("test/corridor", ArraySpec((210, 160, 3), "uint8"),
                            DiscreteActionSpec(4, ("NOOP", "FIRE", "RIGHT", "LEFT")))
        self.pos = np.zeros(num_envs, np.int64)
        self.t = np.zeros(num_envs, np.int64)
        self.stats = EpisodeStats(num_envs)

    def _frames(self):
        f = np.zeros((self.num_envs, 210, 160, 3), np.uint8)
        f[:, 8:12, :, :] = 90  # a static bar (an object that never moves)
        for i, p in enumerate(self.pos):
            f[i, 100:108, 20 + 16 * p:28 + 16 * p] = 255
        return f

    def _ts(self, reward, term, trunc, final):
        ret, length = self.stats.update(reward, term | trunc)
        obs = self._frames()
        return TimeStep(obs, reward, term, trunc, np.zeros(self.num_envs, np.int32),
                        np.zeros((self.num_envs, 0), np.float32),
                        {"final_observation": final, "episode_return": ret, "episode_length": length,
                         "success": term.copy(), "rgb": obs})

    def reset(self, seed=None):
        self.pos[:] = 0
        self.t[:] = 0
        self.stats.reset()
        z = np.zeros(self.num_envs, bool)
        return self._ts(np.zeros(self.num_envs, np.float32), z, z.copy(), self._frames())

    def step(self, actions):
        a = np.asarray(actions)
        self.pos = np.clip(self.pos + (a == 2) - (a == 3), 0, self.cells - 1)
        self.t += 1
        term = self.pos == self.cells - 1
        trunc = (self.t >= self.max_steps) & ~term
        final = self._frames()
        reward = term.astype(np.float32)
        done = term | trunc
        self.pos[done] = 0
        self.t[done] = 0
        return self._ts(reward, term, trunc, final)

    def clone_state(self):
        return [(int(p), int(t), float(r), int(n)) for p, t, r, n in
                zip(self.pos, self.t, self.stats.returns, self.stats.lengths)]

    def restore_state(self, states):
        for i, (p, t, r, n) in enumerate(states):
            self.pos[i], self.t[i], self.stats.returns[i], self.stats.lengths[i] = p, t, r, n


def _agent(cfg, env, memory=None):
    return MCTRAgent(cfg, env, "Corridor", "test", memory, EmbeddedActionReasoner(cfg.embedded),
                     EmbeddedMetaReasoner(cfg.embedded) if memory is not None else None)


def _p_right_at_start(agent, tstate):
    env = agent.env
    agent.reset()
    sits = agent._situations(agent.p)
    feats = agent._features(agent.p, sits)
    logits = agent.reasoner.propose(agent._observations(agent.p, sits, with_frames=False)).logits
    env.reset()
    return np.asarray(jax.nn.softmax(policy_logits(agent.head, tstate.params, feats, logits, 1.0)))[:, 2]


def test_branched_test_time_rl_raises_probability_of_rewarded_action():
    """No memory: only the Flax head learns, from groups of branched rollouts off cloned game states."""
    cfg = MCTRConfig(use_memory=False, ttrl=TTRLConfig(group_size=4, horizon=2, every=1, learning_rate=2e-2))
    agent = _agent(cfg, Corridor(num_envs=2))
    tstate = agent.init_policy(jax.random.PRNGKey(0))
    p0 = _p_right_at_start(agent, tstate)
    agent.reset()
    tstate, m = agent.run(tstate, jax.random.PRNGKey(1), 30)
    p1 = _p_right_at_start(agent, tstate)
    assert np.allclose(p0, 0.25, atol=1e-5)  # zero-initialised head: the policy starts as the (empty) reasoner
    assert p1.min() > 0.5, p1
    assert m["branch_decisions"] == 30 * 4 * 2 and m["ttrl_loss"] == m["ttrl_loss"]


def test_branching_restores_the_real_trajectory():
    """Branching must leave env and percept exactly where they were (the real trajectory is not perturbed)."""
    cfg = MCTRConfig(use_memory=False, ttrl=TTRLConfig(group_size=3, horizon=4, every=1))
    env = Corridor(num_envs=2)
    agent = _agent(cfg, env)
    tstate = agent.init_policy(jax.random.PRNGKey(0))
    agent.reset()
    env.step(np.array([2, 0]))  # env 0 at cell 1
    before = (env.clone_state(), agent.p.frames.copy())
    sits = agent._situations(agent.p)
    agent._branch(tstate, agent._features(agent.p, sits), np.zeros((2, 4), np.float32), sits,
                  jax.random.PRNGKey(3))
    assert env.clone_state() == before[0]
    np.testing.assert_array_equal(agent.p.frames, before[1])


def test_memory_learns_player_and_action_outcomes_on_tiny_game(tmp_path):
    cfg = MCTRConfig(ttrl=TTRLConfig(group_size=4, horizon=2, every=1, learning_rate=1e-2))
    memory = KnowledgeBase(cfg.memory, tmp_path / "k.jsonl")
    agent = _agent(cfg, Corridor(num_envs=4), memory)
    tstate = agent.init_policy(jax.random.PRNGKey(0))
    agent.reset()
    tstate, m = agent.run(tstate, jax.random.PRNGKey(1), 40)
    assert player_signature(memory, "Corridor") == "ffffff-2x2"  # the 8x8 white block, not the static bar
    right = [e for e in memory.entries.values() if e.key == "ao|start/-/-|RIGHT" or e.key.endswith("|RIGHT")
             and e.kind == "action_outcome"]
    assert right and max(e.value for e in right) > 0.3
    assert "RIGHT works better than the alternatives" in " ".join(e.text for e in right)
    assert KnowledgeBase.load(tmp_path / "k.jsonl").entries.keys() == memory.entries.keys()
    assert _p_right_at_start(agent, tstate).min() > 0.6


def test_ale_clone_restore_is_deterministic():
    import envs

    env = envs.make("atari/Breakout", num_envs=2, seed=0, protocol="dqn", mode="eval", raw_rgb=True)
    try:
        env.reset()
        rng = np.random.default_rng(0)
        for _ in range(20):
            env.step(rng.integers(0, 4, 2))
        saved = env.clone_state()
        actions = rng.integers(0, 4, (40, 2))
        runs = []
        for _ in range(2):
            env.restore_state(saved)
            trace = [(ts.reward.copy(), ts.info["rgb"].copy(), ts.info["lives"].copy())
                     for ts in (env.step(a) for a in actions)]
            runs.append(trace)
        for (r0, f0, l0), (r1, f1, l1) in zip(*runs):
            np.testing.assert_array_equal(r0, r1)
            np.testing.assert_array_equal(f0, f1)
            np.testing.assert_array_equal(l0, l1)
    finally:
        env.close()
