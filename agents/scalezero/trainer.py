"""ScaleZeroTrainer: the run-loop adapter (init / train_step / evaluate / close) over host ``BatchedEnv``s.

Collection steps the envs through the host engine's ``HostLoop`` (``agents.common.engines``: game-over episode
bookkeeping, ``train/episode_return``); the policy is a search over per-env context windows kept here.

One ``train_step`` = ``collect_steps`` batched search decisions per env (stored per task in replay), then
``updates_per_iter`` learner updates on balanced per-task micro-batches, then the DPS curriculum check.
The resumable state is a pytree of numpy/jax arrays: learner state (params, target, AdamW), replay, curriculum,
recent returns, counters and the PRNG key. The host simulators' internal state cannot be checkpointed: after a
resume the envs start fresh episodes (the actor's context windows are rebuilt from them).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.common.engines import HostLoop
from agents.scalezero import curriculum as cur
from agents.scalezero import replay as rp
from agents.scalezero.config import ScaleZeroConfig, optional_list, validate
from agents.scalezero.learner import init_train_state, make_update_fn
from agents.scalezero.search import Planner, make_search_fn
from agents.scalezero.world_model import ModelDims, WorldModel, count_params, init_params
from envs.spec import BoxActionSpec, DiscreteActionSpec
from omnitask.mesh import DataParallel
from omnitask.nonfinite import FINITE_KEY
from omnitask.schema import section_as


def as_config(section: Any) -> ScaleZeroConfig:
    """Accept a ScaleZeroConfig, an OmegaConf node or a plain dict (unknown keys are refused)."""
    return section_as(ScaleZeroConfig, section, "scalezero")


def _get(node, name, default=None):
    if node is None:
        return default
    if isinstance(node, dict):
        return node.get(name, default)
    return getattr(node, name, default)


class ActorWindows:
    """Per-env context windows of the last S steps (host numpy) for the search root."""

    def __init__(self, num_envs, steps, obs_shape, obs_dtype, action_dim):
        self.obs = np.zeros((num_envs, steps) + tuple(obs_shape), obs_dtype)  # [E, S, *obs]
        self.act = (np.zeros((num_envs, steps, action_dim), np.float32) if action_dim
                    else np.zeros((num_envs, steps), np.int32))  # [E, S(, A)]
        self.valid = np.zeros((num_envs, steps), bool)  # [E, S]

    def start(self, obs, which=None):
        which = np.ones(self.obs.shape[0], bool) if which is None else which
        self.obs[which] = 0
        self.obs[which, -1] = obs[which]
        self.act[which] = 0
        self.valid[which] = False
        self.valid[which, -1] = True

    def advance(self, action, next_obs, done):
        self.act[:, -1] = action
        self.obs = np.concatenate([self.obs[:, 1:], next_obs[:, None]], 1)
        self.act = np.concatenate([self.act[:, 1:], np.zeros_like(self.act[:, :1])], 1)
        self.valid = np.concatenate([self.valid[:, 1:], np.ones_like(self.valid[:, :1])], 1)
        if done.any():
            self.start(next_obs, done)


class ScaleZeroTrainer:
    """Trainer for the run loop: ``Trainer(cfg, run_dir)`` with ``cfg.env``, ``cfg.run``, ``cfg.seed``,
    ``cfg.scalezero``."""

    def __init__(self, cfg, run_dir=None):
        self.exp = cfg
        self.cfg = c = as_config(_get(cfg, "scalezero"))
        validate(c)
        self.run_dir = run_dir
        env_cfg = _get(cfg, "env")
        self.seed = int(_get(cfg, "seed", 0))
        self.env_id = _get(env_cfg, "id")
        self.num_envs = int(_get(env_cfg, "num_envs", 8))
        self.env_context = dict(_get(env_cfg, "context", {}) or {})
        self.env_options = dict(_get(env_cfg, "options", {}) or {})
        self.eval_options = {**self.env_options, **dict(_get(env_cfg, "eval_options", {}) or {})}
        self.env, self._env_task = self._make_env(self.num_envs, self.seed)
        self.loop = HostLoop(self.env, self.seed)  # stepping and game-over bookkeeping of the host engine
        spec = self.env.spec
        self.spec = spec
        if isinstance(spec.action, DiscreteActionSpec):
            num_actions, action_dim = spec.action.num_actions, 0
        elif isinstance(spec.action, BoxActionSpec):
            if len(spec.action.shape) != 1:
                raise ValueError(f"{spec.env_id}: box actions must be 1-D, got {spec.action.shape}")
            num_actions, action_dim = 0, int(spec.action.shape[0])
        else:
            raise ValueError(f"{spec.env_id}: unsupported action spec {spec.action}")
        self.task_names = (list(c.task_names) if c.task_names else
                           ([f"task{i}" for i in range(len(c.context_tasks))] if c.context_tasks
                            else list(spec.task_names)))
        self.num_tasks = len(self.task_names)
        if c.batch_size % self.num_tasks:
            raise ValueError(f"scalezero.batch_size={c.batch_size} must be a multiple of the number of tasks "
                             f"({self.num_tasks}) for balanced per-task micro-batches")
        self.targets = optional_list(c.target_returns, self.num_tasks, "target_returns")
        self.randoms = optional_list(c.random_returns, self.num_tasks, "random_returns")
        self.humans = optional_list(c.human_returns, self.num_tasks, "human_returns") or self.targets
        self.dims = ModelDims(tuple(spec.observation.shape), self.num_tasks, num_actions, action_dim,
                              max_steps=max(c.unroll_steps + c.td_steps, c.context_steps))
        self.model = WorldModel(c, self.dims)
        self.planner = Planner(self.model, c, self.dims)
        self.dp = DataParallel.from_run(_get(cfg, "run", None))
        self._search = make_search_fn(self.planner, self.dp)
        self._update = make_update_fn(self.model, c, self.dp)
        self._ts = None
        self._windows = None
        self._episode = np.zeros(self.num_envs, np.int32)
        self._eval_env = None
        self.num_params = None

    # ------------------------------------------------------------------ environments
    def _make_env(self, num_envs: int, seed: int, options: dict | None = None):
        c = self.cfg
        context = dict(self.env_context)
        env_task = None
        if c.context_tasks:
            k = len(c.context_tasks)
            if num_envs % k:
                raise ValueError(f"env.num_envs={num_envs} must be a multiple of len(scalezero.context_tasks)={k}")
            env_task = np.repeat(np.arange(k), num_envs // k).astype(np.int32)  # contiguous groups per task
            names = sorted({n for t in c.context_tasks for n in t})
            clash = sorted(set(names) & set(context))
            if clash:
                raise ValueError(f"context variable(s) {clash} set both in env.context and scalezero.context_tasks")
            for n in names:
                context[n] = [float(c.context_tasks[t].get(n, np.nan)) for t in env_task]
                if any(np.isnan(context[n])):  # missing in some task: that task uses the default
                    raise ValueError(f"scalezero.context_tasks: every task must set {n!r} (or none may)")
        options = self.env_options if options is None else options
        env = envs.make(self.env_id, num_envs=num_envs, seed=seed, context=context, **options)
        if c.context_tasks and env.spec.num_tasks > 1:
            raise ValueError(f"{self.env_id} already has {env.spec.num_tasks} tasks; do not set context_tasks")
        return env, env_task

    def _task_of(self, ts, env_task):
        return env_task if env_task is not None else np.asarray(ts.task_id, np.int32)

    # ------------------------------------------------------------------ state
    def init(self, key) -> dict:
        c = self.cfg
        k_params, k_run = jax.random.split(key)
        params = init_params(self.model, k_params)
        self.num_params = count_params(params)
        ts = self.loop.reset(self.seed)
        self._ts = ts
        self._env_task = self._task_of(ts, self._env_task)
        spec = self.spec
        self._windows = ActorWindows(self.num_envs, c.context_steps, spec.observation.shape,
                                     np.dtype(spec.observation.dtype), self.dims.action_dim)
        self._windows.start(np.asarray(ts.observation))
        columns = rp.rows_per_env(c.replay_capacity, self.num_envs, self.num_tasks)
        policy_dim = c.num_sampled_actions if self.dims.continuous else self.dims.num_actions
        replay = rp.init(self.num_envs, columns, spec.observation.shape, np.dtype(spec.observation.dtype),
                         policy_dim, self.dims.action_dim, c.num_sampled_actions, self._env_task)
        return {"train": self.dp.put(init_train_state(params, c)), "replay": replay, "curriculum": cur.init(self.num_tasks),
                "recent_returns": np.full((self.num_tasks, c.solved_window), np.nan, np.float32),
                "recent_ptr": np.zeros((self.num_tasks,), np.int64), "key": k_run,
                "iteration": np.zeros((), np.int64), "env_steps": np.zeros((), np.int64),
                "active_steps": np.zeros((), np.int64)}

    def _ensure_env(self):
        if self._ts is None or self._windows is None:  # restored state without init() on this object
            self._ts = self.loop.reset(self.seed)
            self._windows = ActorWindows(self.num_envs, self.cfg.context_steps, self.spec.observation.shape,
                                         np.dtype(self.spec.observation.dtype), self.dims.action_dim)
            self._windows.start(np.asarray(self._ts.observation))

    # ------------------------------------------------------------------ training
    def _unsolved(self, cs) -> np.ndarray:
        if not self.cfg.dps:
            return np.arange(self.num_tasks)
        return np.flatnonzero(~cs.solved)

    def return_estimates(self, state) -> np.ndarray:
        """Per-task mean of the last ``solved_window`` finished collection episodes (NaN until the window is full)."""
        rr = state["recent_returns"]
        full = ~np.isnan(rr).any(axis=1)
        return np.where(full, np.nanmean(np.where(np.isnan(rr), 0, rr), axis=1), np.nan)

    def train_step(self, state):
        c = self.cfg
        self._ensure_env()
        t0 = time.perf_counter()
        train, replay, cs = state["train"], state["replay"], state["curriculum"]
        key = state["key"]
        stage = jnp.asarray(int(cs.stage), jnp.int32)
        env_task = replay.env_task
        unsolved = self._unsolved(cs)
        active_env = np.isin(env_task, unsolved)  # envs of unsolved tasks (solved ones: data never sampled)
        rr, rptr = state["recent_returns"].copy(), state["recent_ptr"].copy()
        w = self._windows
        for _ in range(c.collect_steps):
            key, k_s = jax.random.split(key)
            out = jax.device_get(self._search(train.params, k_s, w.obs, w.act, w.valid, env_task, stage,
                                                    jnp.float32(1.0), num_simulations=c.num_simulations))
            ts = self.loop.step(np.asarray(out.action))
            reward = np.asarray(ts.reward, np.float32)
            if c.reward_clip > 0:
                reward = np.clip(reward, -c.reward_clip, c.reward_clip)
            term, trunc = np.asarray(ts.terminated), np.asarray(ts.truncated)
            replay = rp.add(replay, w.obs[:, -1], out.action, reward, term, trunc, out.policy_target,
                            out.sampled, out.root_value, self._episode)
            done = term | trunc
            for i in np.flatnonzero(done & active_env):
                k = env_task[i]
                rr[k, rptr[k] % c.solved_window] = float(ts.info["episode_return"][i])
                rptr[k] += 1
            self._episode = self._episode + done.astype(np.int32)
            w.advance(out.action, np.asarray(ts.observation), done)
            self._ts = ts
        collect_s = time.perf_counter() - t0
        # a batched env cannot pause single envs: solved tasks' envs still step (counted, as they are real
        # interactions) but their data is never sampled; "active" counts the interactions of unsolved tasks
        env_steps = int(c.collect_steps * self.num_envs)
        active_steps = int(c.collect_steps * active_env.sum())
        # ---- learner ----
        t1 = time.perf_counter()
        iteration = int(state["iteration"])
        rng = np.random.default_rng([self.seed, iteration])
        stored = rp.task_sizes(replay, self.num_tasks)
        metrics: dict[str, float] = self.loop.episode_metrics()
        ready = unsolved.size > 0 and stored[unsolved].min() >= c.warmup_transitions
        if ready:
            g = self.num_tasks
            slots = unsolved[np.arange(g) % unsolved.size]  # balanced per-task micro-batches
            length = c.unroll_steps + c.td_steps
            finite_flags = []  # one per update: a divergence in any update of the iteration counts
            for _ in range(c.updates_per_iter):
                batch, index = rp.sample(replay, rng, slots, c.batch_size // g, length, c.prioritized,
                                         c.priority_alpha, c.priority_beta)
                if c.reanalyse_fraction > 0:
                    key, k_r = jax.random.split(key)
                    batch = self.reanalyse(train.params, batch, stage, k_r)
                train, m, prio = self._update(train, batch, stage)
                finite_flags.append(m[FINITE_KEY])
                if c.prioritized:
                    rp.update_priorities(replay, index, np.asarray(prio))
            m = jax.device_get(m)
            for name, v in m.items():
                if name == "per_slot_loss":
                    for slot_task, lv in zip(slots, v):
                        metrics[f"loss/task/{self.task_names[slot_task]}"] = float(lv)
                elif name == "expert_load":
                    for e, lv in enumerate(v):
                        metrics[f"moe/load_e{e}"] = float(lv)
                    metrics["moe/max_load"] = float(np.max(v))
                else:
                    metrics[name] = float(v)
            metrics[FINITE_KEY] = float(np.mean(jax.device_get(finite_flags)))
        learn_s = time.perf_counter() - t1
        updates = int(train.step)
        # ---- curriculum ----
        new_state = dict(state, train=train, replay=replay, key=key, recent_returns=rr, recent_ptr=rptr,
                         iteration=np.asarray(iteration + 1, np.int64),
                         env_steps=np.asarray(int(state["env_steps"]) + env_steps, np.int64),
                         active_steps=np.asarray(int(state.get("active_steps", 0)) + active_steps, np.int64))
        est = self.return_estimates(new_state)
        if c.dps:
            cs = cur.step(cs, updates, est, None if self.targets is None else np.asarray(self.targets),
                          c.num_stages, c.min_stage0_iters, c.max_stage_iters)
            new_state["curriculum"] = cs
        metrics.update({"dps/stage": float(cs.stage), "dps/solved": float(cs.solved.sum()),
                        "replay/bytes": float(rp.nbytes(replay)), "replay/size": float(replay.size),
                        "learner/updates": float(updates), "time/collect_s": collect_s, "time/learn_s": learn_s,
                        "env_steps/active": float(new_state["active_steps"])})
        for k, name in enumerate(self.task_names):
            if not np.isnan(est[k]):
                metrics[f"train_return/{name}"] = float(est[k])
        return new_state, metrics, env_steps

    def reanalyse(self, params, batch: rp.Batch, stage, key) -> rp.Batch:
        """Recompute the policy targets of ``reanalyse_fraction`` of the batch's sequences with the current model.

        For each unroll step the search root is the step's own context window (the previous ``context_steps`` rows of
        the same episode inside the sampled window), searched without exploration noise (MuZero Reanalyse style,
        applied per batch rather than by rewriting the buffer). Continuous actions get freshly sampled candidates.
        """
        c = self.cfg
        b, t, s = batch.obs.shape[0], c.unroll_steps, c.context_steps
        n = max(1, int(round(c.reanalyse_fraction * b)))
        rows = np.unique(np.linspace(0, b - 1, n).astype(np.int64))  # spread over the task slots
        steps = np.arange(t)
        ctx = steps[:, None] - (s - 1) + np.arange(s)[None]  # [T, S] row of each context slot
        idx = np.clip(ctx, 0, None)
        seg = batch.seg[rows]  # [n, L]
        valid = (ctx[None] >= 0) & (seg[:, idx] == seg[:, steps][:, :, None]) & (seg[:, steps] == 0)[:, :, None]
        obs_hist = batch.obs[rows][:, idx]  # [n, T, S, *obs]
        act_hist = batch.action[rows][:, idx]  # [n, T, S(, A)]
        per_slot = b // batch.task.shape[0]
        task = np.repeat(batch.task[rows // per_slot], t)  # [n*T]
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        out = jax.device_get(self._search(params, key, flat(obs_hist), flat(act_hist), flat(valid), task, stage,
                                          jnp.float32(0.0), num_simulations=c.num_simulations))
        keep = (seg[:, :t] == 0)[..., None]  # [n, T, 1] only steps inside the root's episode
        policy = batch.policy.copy()
        policy[rows, :t] = np.where(keep, out.policy_target.reshape(len(rows), t, -1), policy[rows, :t])
        sampled = batch.sampled
        if self.dims.continuous:
            sampled = sampled.copy()
            new = out.sampled.reshape((len(rows), t) + out.sampled.shape[1:])
            sampled[rows, :t] = np.where(keep[..., None], new, sampled[rows, :t])
        return batch._replace(policy=policy, sampled=sampled)

    # ------------------------------------------------------------------ evaluation
    def normalized(self, returns: np.ndarray) -> np.ndarray | None:
        """Human-normalised scores ``(R - random) / (human - random)``; None without both lists."""
        if self.randoms is None or self.humans is None:
            return None
        lo, hi = np.asarray(self.randoms), np.asarray(self.humans)
        return (returns - lo) / np.where(hi - lo == 0, 1.0, hi - lo)

    def evaluate(self, state, num_episodes: int, key) -> dict[str, float]:
        """Greedy search, no noise: ``num_episodes`` finished episodes per task (first ones per env)."""
        c = self.cfg
        # default: as many eval envs as training envs (same shapes -> the compiled search is reused)
        n_envs = (c.eval_num_envs * self.num_tasks if c.context_tasks else c.eval_num_envs) or self.num_envs
        if self._eval_env is None:
            self._eval_env, self._eval_task = self._make_env(n_envs, self.seed + 10_000, self.eval_options)
        env = self._eval_env
        seed = int(jax.random.randint(key, (), 0, 2 ** 30))
        ts = env.reset(seed=seed)
        env_task = self._task_of(ts, self._eval_task)
        spec = self.spec
        w = ActorWindows(env.num_envs, c.context_steps, spec.observation.shape, np.dtype(spec.observation.dtype),
                         self.dims.action_dim)
        w.start(np.asarray(ts.observation))
        params, stage = state["train"].params, jnp.asarray(int(state["curriculum"].stage), jnp.int32)
        returns = [[] for _ in range(self.num_tasks)]
        successes = [[] for _ in range(self.num_tasks)]
        max_len = c.max_eval_steps or (spec.max_episode_steps or 1000)
        envs_of = np.bincount(env_task, minlength=self.num_tasks)
        rounds = max(math.ceil(num_episodes / max(1, envs_of[envs_of > 0].min())), 1)
        for _ in range(rounds * max_len + 1):
            key, k_s = jax.random.split(key)
            out = jax.device_get(self._search(params, k_s, w.obs, w.act, w.valid, env_task, stage,
                                                    jnp.float32(0.0), num_simulations=c.eval_num_simulations))
            ts = env.step(np.asarray(out.action))
            done = np.asarray(ts.terminated) | np.asarray(ts.truncated)
            for i in np.flatnonzero(done):
                k = env_task[i]
                if len(returns[k]) < num_episodes:
                    returns[k].append(float(ts.info["episode_return"][i]))
                    successes[k].append(float(np.asarray(ts.info["success"])[i]))
            w.advance(out.action, np.asarray(ts.observation), done)
            if all(len(returns[k]) >= num_episodes for k in range(self.num_tasks) if envs_of[k] > 0):
                break
        means = np.array([np.mean(r) if r else np.nan for r in returns])
        result = {"return_mean": float(np.nanmean(means))}
        for k, name in enumerate(self.task_names):
            result[f"return_mean/{name}"] = float(means[k])
            result[f"success/{name}"] = float(np.mean(successes[k])) if successes[k] else float("nan")
        norm = self.normalized(means)
        if norm is not None:
            result["normalized_mean"] = float(np.nanmean(norm))
            result["normalized_median"] = float(np.nanmedian(norm))
            for k, name in enumerate(self.task_names):
                result[f"normalized/{name}"] = float(norm[k])
        return result

    def close(self) -> None:
        self.loop.close()
        if self._eval_env is not None:
            self._eval_env.close()
