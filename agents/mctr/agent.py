"""The MCTR agent: a thin host-side shell that wires perception, memory, the two reasoning levels, the scheduler
and test-time RL around one batched Atari environment.

Per real decision (all envs at once):
  1. perceive the newest frames (objects, motion, situation; ``perception.py``);
  2. retrieve the top-k knowledge entries per env (``memory.py`` / ``retrieval.py``);
  3. the action reasoner turns them into logits; a decided reasoner's answer is executed as is, otherwise the policy
     (reasoner + trainable head, ``ttrl.py``) samples -- see ``ttrl.make_act``; obedience is counted;
  4. every ``ttrl.every`` decisions: clone the emulators, run ``group_size`` branched rollouts of ``horizon``
     decisions, restore, and take one group-relative policy-gradient step on the head; branch outcomes also feed
     the meta-reasoner's action-outcome statistics; the acting routines' settings for the next interval are
     assigned from the memory's verdicts (``routine.py``: replay the best branch / hold sampled actions, only where
     the reasoner is undecided) and their A/B trials scored on the real returns;
  5. step the real envs; the scheduler decides whether meta-reasoning runs now; if so the meta-reasoner turns the
     trajectory slice since its last run into proposals, the memory merges/revises/prunes and saves itself.
Branch continuations (decisions 2..H of a branch) use the embedded reasoner over the memory, never the VLM, so a
VLM is called once per real decision per env. Decision budgets count real decisions only; emulator steps spent in
branches are reported separately (``branch_decisions``).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from agents.mctr import routine
from agents.mctr import scheduler as sched_lib
from agents.mctr.backends.base import (ActionReasoner, BranchOutcome, MetaReasoner, Observation, TrajectorySlice,
                                       Transition)
from agents.mctr.backends.embedded import (EmbeddedActionReasoner, knowledge_for, move_table, player_signature,
                                           towardness)
from agents.mctr.config import MCTRConfig
from agents.mctr.memory import KnowledgeBase
from agents.mctr.perception import Obj, Situation, extract_objects, features, match_motion, situation
from agents.mctr.ttrl import (GroupBatch, TTRLConfig, TTRLState, init_state, make_act, make_head, make_sample_groups,
                              make_update)
from omnitask.nonfinite import FINITE_KEY



@functools.lru_cache(maxsize=32)
def _policy_fns(num_actions: int, ttrl_fields: tuple):
    """(head, optimizer, act, update, sample) shared by every agent with the same action count and TTRL config, so
    agents created one after another (games of a protocol, evaluation agents) reuse compiled functions."""
    cfg = TTRLConfig(*ttrl_fields)
    head, opt = make_head(num_actions, cfg)
    return (head, opt, make_act(head, cfg.reasoner_weight, cfg.obey_margin), make_update(head, opt, cfg),
            make_sample_groups(head, cfg.reasoner_weight, cfg.group_size))


@dataclasses.dataclass
class Percept:
    """Host perception state of the batch (copied when branching)."""

    frames: np.ndarray  # [B, K, 210, 160, 3] uint8, oldest first
    objects: list[list[Obj]]  # per env, motion-matched objects of the newest frame
    lives: np.ndarray  # [B] int32 (-1 when the env reports no lives)
    since_start: np.ndarray  # [B] int32 decisions since the episode started
    since_loss: np.ndarray  # [B] int32 decisions since the last life loss (large if none)

    def copy(self) -> "Percept":
        return Percept(self.frames.copy(), [list(o) for o in self.objects], self.lives.copy(),
                       self.since_start.copy(), self.since_loss.copy())


def frames_of(ts) -> np.ndarray:
    """[B, 210, 160, 3] uint8 RGB frames of a TimeStep (``info['rgb']`` from raw_rgb=True, else the observation)."""
    rgb = ts.info.get("rgb", ts.observation)
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"MCTR needs RGB frames [B, H, W, 3] uint8 (Atari option raw_rgb=True), got "
                         f"{rgb.shape} {rgb.dtype}")
    return rgb


class MCTRAgent:
    """Host shell; the learnable policy state (``TTRLState``) is passed in and returned, never hidden."""

    def __init__(self, cfg: MCTRConfig, env: Any, game: str, genre: str, memory: KnowledgeBase | None,
                 action_reasoner: ActionReasoner, meta_reasoner: MetaReasoner | None, log_dir: Path | None = None,
                 learn: bool = True):
        self.cfg, self.env, self.game, self.genre = cfg, env, game, genre
        self.names = tuple(env.spec.action.names)
        if not self.names:
            raise ValueError(f"{env.spec.env_id}: MCTR needs action names (ALE action meanings) in spec.action.names")
        self.memory = memory if cfg.use_memory else None
        self.reasoner, self.meta = action_reasoner, meta_reasoner
        self.branch_reasoner = EmbeddedActionReasoner(cfg.embedded)
        self.learn = learn
        self.head, self.opt, self._act, self._update, self._sample = _policy_fns(
            len(self.names), dataclasses.astuple(cfg.ttrl))
        self.sched = sched_lib.init_state(cfg.scheduler)
        self.transitions: list[Transition] = []
        self.branches: list[BranchOutcome] = []
        self.examples: collections.deque = collections.deque(maxlen=max(cfg.in_context_examples, 1))
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.decisions = 0  # real decisions taken (per env; all envs decide together)
        self.branch_decisions = 0
        self.totals = collections.Counter()
        self.action_counts: collections.Counter = collections.Counter()  # executed real actions by name
        self.p: Percept | None = None
        # acting routines (routine.py): A/B trials of this game per routine, the verdicts carried in at its start,
        # and the current interval's settings
        self.routine_trials: dict[str, list[tuple[int, float]]] = {n: [] for n in routine.ROUTINES}
        self.routine_carried = {(n, s): routine.stored(self.memory, n, s) for n in routine.ROUTINES
                                for s in routine.scopes(game, genre)[1:]}
        self._plan: np.ndarray | None = None  # [B, H] int32 actions of each env's best branch of the last group
        self._plan_start = 0  # real decision at which the plan starts
        self._plan_interval_return = np.zeros(0, np.float32)  # [B] that branch's return over the interval
        self._setting: dict[str, np.ndarray] = {}  # routine -> [B] int32 ON/OFF this interval (-1: not in the test)
        self._eligible: dict[str, np.ndarray] = {}  # routine -> [B] int64 intervals that took part so far
        self._interval_ret = np.zeros(0, np.float64)  # [B] real return of the current interval so far
        self._open_trials: list[list] = []  # [routine, env, setting, first decision, end decision, return so far]
        self._held = np.zeros(0, np.int32)  # [B] action being held (hold_action routine)
        self._held_until = np.zeros(0, np.int64)  # [B] first decision at which it is no longer held

    # ------------------------------------------------------------------------------------------------ setup
    def init_policy(self, key: jax.Array) -> TTRLState:
        from agents.mctr.perception import FEATURE_DIM as dim
        return init_state(key, self.head, self.opt, dim)

    def reset(self, seed: int | None = None) -> None:
        ts = self.env.reset(seed=seed)
        rgb = frames_of(ts)
        b, k = rgb.shape[0], self.cfg.frames
        lives = np.asarray(ts.info.get("lives", np.full(b, -1)), np.int32)
        self.p = Percept(np.repeat(rgb[:, None], k, axis=1), [extract_objects(f) for f in rgb], lives,
                         np.zeros(b, np.int32), np.full(b, 10**6, np.int32))

    def _perceive(self, ts, p: Percept, want_objects: bool = True) -> tuple[Percept, np.ndarray]:
        """Advance the percept by one env step; returns (percept, life_lost [B] bool)."""
        rgb = frames_of(ts)
        done = np.asarray(ts.terminated) | np.asarray(ts.truncated)
        lives = np.asarray(ts.info.get("lives", np.full(len(rgb), -1)), np.int32)
        lost = (lives < p.lives) & (p.lives >= 0) & ~done
        frames = np.concatenate([p.frames[:, 1:], rgb[:, None]], axis=1)
        frames[done] = rgb[done][:, None]  # a new episode starts with a fresh history
        objects = p.objects
        if want_objects:
            objects = [extract_objects(f) if d else match_motion(prev, extract_objects(f))
                       for f, d, prev in zip(rgb, done, p.objects)]
        since_start = np.where(done, 0, p.since_start + 1).astype(np.int32)
        since_loss = np.where(lost, 0, np.where(done, 10**6, p.since_loss + 1)).astype(np.int32)
        return Percept(frames, objects, lives, since_start, since_loss), lost

    def _needs_objects(self) -> bool:
        return self.memory is not None and player_signature(self.memory, self.game) is not None

    def _situations(self, p: Percept) -> list[Situation]:
        sig = player_signature(self.memory, self.game)
        w = self.cfg.phase_window
        out = []
        for i in range(len(p.objects)):
            phase = "start" if p.since_start[i] < w else ("life_lost" if p.since_loss[i] < w else "play")
            out.append(situation(p.objects[i], phase, sig))
        return out

    def _observations(self, p: Percept, sits: Sequence[Situation], with_frames: bool) -> list[Observation]:
        moves = move_table(self.memory, self.game, self.names)
        cache: dict[str, list] = {}
        obs = []
        for i, s in enumerate(sits):
            query = f"In {self.game} ({self.genre} game), {s.text()}: which action works best?"
            if query not in cache:
                cache[query] = knowledge_for(self.memory, self.game, self.genre, query, self.cfg.retrieval_k)
            examples = list(self.examples) if self.cfg.in_context_examples > 0 else []
            obs.append(Observation(self.game, self.genre, p.frames[i] if with_frames else p.frames[i, -1:],
                                   p.objects[i], s, self.names, cache[query], moves, examples))
        return obs

    def _features(self, p: Percept, sits: Sequence[Situation]) -> np.ndarray:
        return np.stack([features(p.frames[i, -1], p.frames[i, -2], s) for i, s in enumerate(sits)])  # [B, F]

    # ------------------------------------------------------------------------------------------------ TTRL
    def _branch(self, tstate: TTRLState, feats0: np.ndarray, logits0: np.ndarray, sits0: list[Situation],
                key: jax.Array) -> tuple[TTRLState, dict]:
        cfg = self.cfg.ttrl
        g_size, horizon = cfg.group_size, cfg.horizon
        k_first, k_rest = jax.random.split(key)
        first = np.asarray(self._sample(tstate.params, feats0, logits0, k_first))  # [B, G]
        keys = np.asarray(jax.random.split(k_rest, horizon))  # [H] common random numbers shared by the G branches
        snap_env, snap_p = self.env.clone_state(), self.p.copy()
        b = feats0.shape[0]
        returns = np.zeros((b, g_size), np.float32)
        taken = np.zeros((b, g_size, horizon), np.int32)  # every branch's actions, for the replay routine
        ret_interval = np.zeros((b, g_size), np.float32)  # return over the first ``every`` decisions
        for g in range(g_size):
            self.env.restore_state(snap_env)
            p = snap_p.copy()
            alive = np.ones(b, bool)
            acts = first[:, g]
            for h in range(horizon):
                if h >= max(cfg.commit, 1):
                    sits = self._situations(p)
                    rl = self.branch_reasoner.propose(self._observations(p, sits, with_frames=False)).logits
                    acts, _ = self._act(tstate.params, self._features(p, sits), rl,
                                        keys[h])
                    acts = np.asarray(acts)
                taken[:, g, h] = acts
                ts = self.env.step(acts)
                self.branch_decisions += 1
                # objects only matter once a player is known (situations); skip them otherwise (cheaper branches)
                p, lost = self._perceive(ts, p, want_objects=h < horizon - 1 and self._needs_objects())
                returns[:, g] += alive * (np.asarray(ts.reward, np.float32) - cfg.life_loss_penalty * lost)
                if h == min(cfg.every, horizon) - 1:
                    ret_interval[:, g] = returns[:, g]
                alive &= ~(np.asarray(ts.terminated) | np.asarray(ts.truncated))
        self.env.restore_state(snap_env)
        self.p = snap_p
        metrics = {}
        if cfg.enabled and self.learn:
            tstate, m = self._update(tstate, GroupBatch(feats0, logits0, first.astype(np.int32), returns))
            metrics = {k: float(v) for k, v in m.items()}
        mean, std = returns.mean(1, keepdims=True), returns.std(1, keepdims=True)
        best = returns.argmax(1)  # [B]
        self._start_intervals(taken[np.arange(b), best], std[:, 0] > cfg.adv_eps)
        self._plan_interval_return = ret_interval[np.arange(b), best]  # what replaying it earns (tests check this)
        adv = np.where(std > cfg.adv_eps, (returns - mean) / np.maximum(std, cfg.adv_eps), 0.0)  # [B, G]
        moves = move_table(self.memory, self.game, self.names)
        for i in range(b):
            if len(set(first[i].tolist())) < 2 or std[i, 0] <= cfg.adv_eps:
                # every branch took the same first action, or every branch returned the same: no comparison
                # between actions to learn from (counting such groups as zero advantages would shrink every
                # estimate toward "no effect" and break the unit-variance significance gate of the statistics)
                continue
            toward = towardness(moves, sits0[i].offset)
            for g in range(g_size):
                a = int(first[i, g])
                out = BranchOutcome(sits0[i], self.names[a], float(toward[a]), float(returns[i, g]),
                                    float(adv[i, g]))
                self.branches.append(out)
                self.examples.append({"situation": sits0[i].key, "action": self.names[a],
                                      "advantage": float(adv[i, g])})
        return tstate, metrics

    # ------------------------------------------------------------------------------------------------ routine
    def _start_intervals(self, plan: np.ndarray, informative: np.ndarray) -> None:
        """At a branching point: assign each routine's setting for the interval that starts now and open its trial.

        plan: [B, H] actions of each env's best branch; informative: [B] bool (the group's returns differed)."""
        b = plan.shape[0]
        if self._interval_ret.shape[0] != b:
            self._interval_ret = np.zeros(b)
            self._held, self._held_until = np.zeros(b, np.int32), np.zeros(b, np.int64)
            self._setting = {n: np.full(b, -1, np.int32) for n in routine.ROUTINES}
            self._eligible = {n: np.zeros(b, np.int64) for n in routine.ROUTINES}
        self._interval_ret[:] = 0.0
        self._plan, self._plan_start = plan, self.decisions
        for setting in self._setting.values():
            setting[:] = -1
        if self.memory is None:  # no memory: no routine knowledge, and nothing to write a measurement to
            return
        every = self.cfg.ttrl.every
        lag = max(0, self.cfg.ttrl.horizon - every)  # see routine.py: rewards land decisions after their actions
        for name in routine.ROUTINES:
            pref = routine.preferred(self.memory, name, self.game, self.genre, self.cfg.embedded.min_z)
            envs_in = np.flatnonzero(informative) if name == "replay_best_branch" else np.arange(b)
            for i in envs_in:
                self._setting[name][i] = routine.assign(pref, int(self._eligible[name][i]))
                self._eligible[name][i] += 1
                self._open_trials.append([name, int(i), int(self._setting[name][i]), self.decisions + lag,
                                          self.decisions + lag + every, 0.0])

    def _score_trials(self, step_return: np.ndarray) -> None:
        """Add the real return [B] of the decision just taken (index ``self.decisions - 1``) to the open trials
        whose window contains it; move finished trials to ``routine_trials``."""
        d = self.decisions - 1
        still = []
        for t in self._open_trials:
            if t[3] <= d < t[4]:
                t[5] += float(step_return[t[1]])
            if d + 1 >= t[4]:
                self.routine_trials[t[0]].append((t[2], t[5]))
            else:
                still.append(t)
        self._open_trials = still

    def _apply_routines(self, actions: np.ndarray, decided: np.ndarray) -> np.ndarray:
        """[B] sampled/decided actions -> executed actions: where the reasoner is undecided, the best branch's
        action (replay on) or the held action (hold on); a decided reasoner's answer is never replaced."""
        if self._plan is None or self._interval_ret.shape[0] != actions.shape[0]:
            return actions
        out = actions.copy()
        pos = self.decisions - self._plan_start
        replay = (self._setting["replay_best_branch"] == routine.ON) & ~decided & (pos < self._plan.shape[1])
        if pos < self._plan.shape[1]:
            out = np.where(replay, self._plan[:, pos], out)
        hold = (self._setting["hold_action"] == routine.ON) & ~decided & ~replay
        keep = hold & (self.decisions < self._held_until)
        out = np.where(keep, self._held, out)
        fresh = hold & ~keep
        self._held = np.where(fresh, out, self._held).astype(np.int32)
        self._held_until = np.where(fresh, self.decisions + max(self.cfg.ttrl.commit, 1),
                                    np.where(hold, self._held_until, 0))
        return out.astype(actions.dtype)

    # ------------------------------------------------------------------------------------------------ meta
    def _in_scope_entries(self) -> int:
        if self.memory is None:
            return 0
        return sum(1 for e in self.memory.entries.values() if e.scope == f"game:{self.game}")

    def _maybe_reflect(self, mean_reward: float) -> None:
        if self.memory is None or self.meta is None or not self.learn:
            return
        self.sched, surprise = sched_lib.observe_reward(self.cfg.scheduler, self.sched, mean_reward)
        decision = sched_lib.decide(self.cfg.scheduler, self.sched, self.decisions, self._in_scope_entries(),
                                    surprise)
        if decision.run:
            traj = TrajectorySlice(self.game, self.genre, self.names, self.transitions, self.branches,
                                   self.p.frames[0], self.routine_trials, self.routine_carried)
            out = self.meta.reflect(traj, self.memory, self.decisions)
            report = self.memory.apply(out.proposals, self.decisions)
            self.sched = sched_lib.after_reflection(self.cfg.scheduler, self.sched, self.decisions,
                                                    report.num_changes)
            self.transitions, self.branches = [], []
            if out.failed:  # the VLM gave no answer: its part of this run is skipped (statistics still apply)
                self._log("meta_failures", {"decision": self.decisions, "errors": out.errors})
            self.totals.update(reflections=1, meta_failed=out.failed, meta_malformed=out.malformed,
                               meta_prompt_tokens=out.prompt_tokens,
                               meta_completion_tokens=out.completion_tokens, entries_added=len(report.added),
                               entries_revised=len(report.revised), entries_pruned=len(report.pruned))
            self._log("scheduler", {**dataclasses.asdict(decision), "added": len(report.added),
                                    "merged": len(report.merged), "revised": len(report.revised),
                                    "pruned": len(report.pruned), "next_interval": self.sched.interval})
        elif self.cfg.log_all_scheduler_decisions:
            self._log("scheduler", dataclasses.asdict(decision))

    def _log(self, name: str, record: dict) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{name}.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def env_partial_returns(self) -> np.ndarray:
        """[B] raw return of each env's unfinished episode so far."""
        return getattr(self, "_running_return", np.zeros(self.env.num_envs))

    # ------------------------------------------------------------------------------------------------ acting
    def run(self, tstate: TTRLState, key: jax.Array, num_decisions: int,
            max_episodes: int | None = None) -> tuple[TTRLState, dict]:
        """Take ``num_decisions`` real decisions (or stop after ``max_episodes`` finished episodes)."""
        if self.p is None:
            self.reset()
        b = self.p.frames.shape[0]
        returns: list[float] = []
        totals = collections.Counter()
        ttrl_metrics: list[dict] = []
        t0 = time.perf_counter()
        reward_sum = 0.0
        for _ in range(num_decisions):
            key, k_act, k_branch = jax.random.split(key, 3)
            sits = self._situations(self.p)
            out = self.reasoner.propose(self._observations(self.p, sits, with_frames=True))
            feats = self._features(self.p, sits)
            totals.update(fallbacks=out.fallbacks, prompt_tokens=out.prompt_tokens,
                          completion_tokens=out.completion_tokens)
            totals.update({f"finish_{r}": n for r, n in out.finish_reasons.items()})
            totals["latency_s"] += out.latency_s
            if self.learn and self.cfg.branching and self.decisions % self.cfg.ttrl.every == 0:
                tstate, m = self._branch(tstate, feats, out.logits, sits, k_branch)
                if m:
                    ttrl_metrics.append(m)
            actions, decided = self._act(tstate.params, feats, out.logits, k_act)
            actions, decided = np.asarray(actions), np.asarray(decided)
            executed = self._apply_routines(actions, decided)
            totals.update(steps=b, decided=int(decided.sum()), routine_changed=int((executed != actions).sum()),
                          obeyed=int((decided & (executed == out.logits.argmax(1))).sum()))
            actions = executed
            self.action_counts.update(self.names[int(a)] for a in actions)
            ts = self.env.step(actions)
            self.decisions += 1
            new_p, lost = self._perceive(ts, self.p, want_objects=self.memory is not None or self.cfg.server.text_only)
            reward = np.asarray(ts.reward, np.float32)
            reward_sum += float(reward.sum())
            if self._interval_ret.shape[0] == b:
                step_return = reward - self.cfg.ttrl.life_loss_penalty * lost
                self._interval_ret += step_return
                self._score_trials(step_return)
            done = np.asarray(ts.terminated) | np.asarray(ts.truncated)
            if self.learn:
                for i in range(b):
                    motion = [] if done[i] else [(o.signature, o.dx, o.dy) for o in new_p.objects[i] if o.matched]
                    self.transitions.append(Transition(sits[i], self.names[int(actions[i])], float(reward[i]),
                                                       bool(lost[i]), motion))
            self._running_return = np.where(done, 0.0, np.asarray(ts.info["episode_return"], np.float64))
            for i in np.flatnonzero(done):
                returns.append(float(ts.info["episode_return"][i]))
            self.p = new_p
            self._maybe_reflect(float(reward.mean()))
            if max_episodes is not None and len(returns) >= max_episodes:
                break
        self.totals.update(totals)
        elapsed = time.perf_counter() - t0
        metrics = {"decisions": float(self.decisions), "reward_sum": reward_sum,
                   "episodes": float(len(returns)), "fallbacks": float(totals["fallbacks"]),
                   "prompt_tokens": float(totals["prompt_tokens"]),
                   "completion_tokens": float(totals["completion_tokens"]),
                   "reasoner_latency_s": float(totals["latency_s"]),
                   "decisions_per_s": num_decisions * b / max(elapsed, 1e-9),
                   "branch_decisions": float(self.branch_decisions),
                   "memory_entries": float(len(self.memory) if self.memory is not None else 0),
                   "reflections": float(self.totals["reflections"]), "scheduler_interval": self.sched.interval,
                   # acting rule (ttrl.make_act): share of steps where the reasoner was decided, and share of those
                   # where the executed action is its answer (1.0 by construction; a regression check)
                   "decided_rate": totals["decided"] / max(totals["steps"], 1),
                   "obedience_rate": totals["obeyed"] / max(totals["decided"], 1),
                   # acting routines (routine.py): share of real steps whose action a routine changed (replayed
                   # branch or held action instead of the sample), and the A/B trials of this game so far
                   "routine_changed_rate": totals["routine_changed"] / max(totals["steps"], 1),
                   "routine_trials": float(sum(len(t) for t in self.routine_trials.values())),
                   "meta_failed": float(self.totals["meta_failed"])}
        # answers by the server's finish_reason ('stop', 'length', ...; 'failed' = no answer, NOOP executed)
        metrics.update({k: float(v) for k, v in totals.items() if k.startswith("finish_")})
        if returns:
            metrics["return_mean"] = float(np.mean(returns))
        for k in ("ttrl_loss", "ttrl_entropy", "ttrl_adv_abs", FINITE_KEY):
            if ttrl_metrics:
                metrics[k] = float(np.mean([m[k] for m in ttrl_metrics]))
        metrics["_returns"] = returns  # raw list for callers (removed before logging)
        return tstate, metrics
