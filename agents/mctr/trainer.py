"""``omnitask train`` entry point for MCTR: one Atari game, test-time learning as "training".

State pytree (checkpointed by the run loop): the policy head's parameters and optimizer state, the PRNG key, the
decision counter and the scheduler state. The knowledge base is not in the pytree: it persists itself atomically to
``run_dir/knowledge.jsonl`` after every meta-reasoning run and is reloaded from there on resume (so after a crash it
may be newer than the last checkpoint). Emulator states are not checkpointed: a resumed run starts new episodes.
Logs: ``run_dir/mctr/scheduler.jsonl`` (every scheduler decision).
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from agents.mctr import scheduler as sched_lib
from agents.mctr.agent import MCTRAgent
from agents.mctr.backends import make_backends
from agents.mctr.config import MCTRConfig
from agents.mctr.evaluation import ENV_OPTIONS
from agents.mctr.games import lookup
from agents.mctr.memory import KnowledgeBase
from agents.mctr.ttrl import TTRLState


def _game_and_genre(env_id: str, mcfg: MCTRConfig) -> tuple[str, str]:
    try:
        g = lookup(env_id)
        return g.name, mcfg.genre or g.genre
    except ValueError:
        return env_id.split("/")[-1], mcfg.genre or "unknown"


class MCTRTrainer:
    """Thin adapter between the run loop and ``MCTRAgent``."""

    def __init__(self, cfg: Any, run_dir: str | Path):
        import envs

        self.cfg, self.mcfg = cfg, cfg.mctr
        self.run_dir = Path(run_dir)
        self.game, self.genre = _game_and_genre(cfg.env.id, self.mcfg)
        self.options = {**ENV_OPTIONS, **dict(cfg.env.options)}
        self.env = envs.make(cfg.env.id, num_envs=cfg.env.num_envs, seed=cfg.seed, context=cfg.env.context,
                             **self.options)
        kb_path = self.run_dir / "knowledge.jsonl"
        if kb_path.exists():  # resume: keep every valid entry even if e.g. the last line was cut off
            self.memory = KnowledgeBase.load(kb_path, self.mcfg.memory, recover=True)
            if self.memory.load_errors:
                shutil.copyfile(kb_path, kb_path.with_suffix(".jsonl.corrupt"))  # the original, for inspection
                print(f"warning: {kb_path}: kept {len(self.memory)} entries, skipped {len(self.memory.load_errors)} "
                      f"bad line(s) (original saved as {kb_path.name}.corrupt):\n  " +
                      "\n  ".join(self.memory.load_errors), file=sys.stderr)
                self.memory.save()
        else:
            self.memory = KnowledgeBase(self.mcfg.memory, kb_path)
            if self.mcfg.memory_init:
                self.memory.merge_from(KnowledgeBase.load(self.mcfg.memory_init, self.mcfg.memory, bind=False))
            self.memory.save()
        self.action_reasoner, self.meta_reasoner = make_backends(self.mcfg)
        self.agent = MCTRAgent(self.mcfg, self.env, self.game, self.genre, self.memory, self.action_reasoner,
                               self.meta_reasoner, self.run_dir / "mctr")
        self._eval_env = None
        self._eval_agent: MCTRAgent | None = None

    def init(self, key: jax.Array) -> dict:
        k_head, k_run = jax.random.split(key)
        s = sched_lib.init_state(self.mcfg.scheduler)
        return {"policy": self.agent.init_policy(k_head), "key": k_run, "decisions": np.zeros((), np.int64),
                "scheduler": np.array([s.interval, s.last_run, s.runs, s.reward_mean, s.reward_scale], np.float64)}

    def train_step(self, state: dict) -> tuple[dict, dict, int]:
        a = self.agent
        if a.p is None:
            a.reset(self.cfg.seed)
        sv = np.asarray(state["scheduler"], np.float64)
        a.sched = sched_lib.SchedulerState(float(sv[0]), int(sv[1]), int(sv[2]), float(sv[3]), float(sv[4]))
        a.decisions = int(state["decisions"])
        key, k_run = jax.random.split(state["key"])
        policy = TTRLState(*state["policy"]) if not isinstance(state["policy"], TTRLState) else state["policy"]
        policy, metrics = a.run(policy, k_run, self.mcfg.decisions_per_step)
        metrics.pop("_returns")
        s = a.sched
        new = {"policy": policy, "key": key, "decisions": np.asarray(a.decisions, np.int64),
               "scheduler": np.array([s.interval, s.last_run, s.runs, s.reward_mean, s.reward_scale], np.float64)}
        return new, {k: float(v) for k, v in metrics.items()}, self.mcfg.decisions_per_step * self.env.num_envs

    def evaluate(self, state: dict, num_episodes: int, key: jax.Array) -> dict:
        """Frozen evaluation (no memory writes, no head updates, no branching) on a separate env batch.

        Episodes are capped at ``eval_max_decisions``; unfinished ones count with their partial return.
        """
        import envs

        if self._eval_env is None:
            opts = {**self.options, **dict(self.cfg.env.eval_options)}
            self._eval_env = envs.make(self.cfg.env.id, num_envs=max(1, min(num_episodes, self.cfg.env.num_envs)),
                                       seed=self.cfg.seed + 10_007, context=self.cfg.env.context, **opts)
        if self._eval_agent is None:  # built once: its jitted functions compile once
            self._eval_agent = MCTRAgent(self.mcfg, self._eval_env, self.game, self.genre, self.memory,
                                         self.action_reasoner, None, None, learn=False)
        agent = self._eval_agent
        policy = TTRLState(*state["policy"]) if not isinstance(state["policy"], TTRLState) else state["policy"]
        returns: list[float] = []
        k = key
        while len(returns) < num_episodes:
            k, k_reset, k_run = jax.random.split(k, 3)
            agent.reset(int(jax.random.randint(k_reset, (), 0, 2**31 - 1)))
            _, m = agent.run(policy, k_run, self.mcfg.eval_max_decisions, max_episodes=num_episodes - len(returns))
            finished = m.pop("_returns")
            returns += finished
            if not finished or m["decisions"] == 0:
                returns += [float(r) for r in agent.env_partial_returns()][:num_episodes - len(returns)]
        return {"return_mean": float(np.mean(returns[:num_episodes])), "return_std": float(np.std(returns)),
                "episodes": float(len(returns)), "memory_entries": float(len(self.memory)),
                "fallbacks": float(m["fallbacks"])}

    def close(self) -> None:
        for closer in (self.env, self._eval_env, self.action_reasoner):
            if closer is not None and hasattr(closer, "close"):
                closer.close()
