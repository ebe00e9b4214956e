"""ScaleZeroTrainer: the run-loop adapter (init / train_step / evaluate / close) over host ``BatchedEnv``s.

Collection steps the envs through the host engine's ``HostLoop`` (``agents.common.engines``: game-over episode
bookkeeping, ``train/episode_return``); the policy is a search over per-env context windows (``ActorState``).

One ``train_step`` = ``collect`` (``collect_steps`` batched search decisions per env, stored per task in replay),
``learn`` (``updates_per_iter`` learner updates on balanced per-task micro-batches, plus the periodic buffer
reanalysis; with ``run.replay: device`` each update samples its batch inside the jitted call) and ``curriculum`` (DPS
: the solved check from evaluation means, then the stage-switch rule).
The resumable state is the typed pytree ``ScaleZeroState``: learner state (params, target, AdamW), replay,
curriculum, the actor (context windows, episode ids and, for JAX-native envs, the envs' own state), return
statistics, counters and the PRNG key. On a JAX-native env a resumed run continues bit-for-bit. Host simulators'
state cannot be checkpointed: after a resume they restart from a reset seeded with ``seed + env_steps`` and the
actor's windows restart with them (new episode ids).
"""
from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.common.engines import HostLoop
from agents.scalezero import curriculum as cur
from agents.scalezero import device_replay as drp
from agents.scalezero import replay as rp
from agents.scalezero.config import ScaleZeroConfig, optional_list, validate
from agents.scalezero.learner import TrainState, init_train_state, make_update_fn, update
from agents.scalezero.search import Planner, make_search_fn, search_unsolved
from agents.scalezero.world_model import ModelDims, WorldModel, count_params, init_params
from envs.spec import BoxActionSpec, DiscreteActionSpec
from omnitask.mesh import PARAMS, DataParallel

from omnitask.nonfinite import FINITE_KEY
from omnitask.precision import compute_dtype, precision_of
from omnitask.replay_location import replay_location
from omnitask.schema import section_as

NO_ENV_STATE = np.zeros((1,), np.uint8)  # actor.env placeholder of host simulators (checkpoints refuse empties)


def as_config(section: Any) -> ScaleZeroConfig:
    """Accept a ScaleZeroConfig, an OmegaConf node or a plain dict (unknown keys are refused)."""
    return section_as(ScaleZeroConfig, section, "scalezero")


def _get(node, name, default=None):
    if node is None:
        return default
    if isinstance(node, dict):
        return node.get(name, default)
    return getattr(node, name, default)


class ActorState(NamedTuple):
    """What collection needs to continue exactly (host numpy, ``E`` envs, ``S = context_steps``)."""

    obs: np.ndarray  # [E, S, *obs] context window of observations (last slot = the current one)
    act: np.ndarray  # [E, S] int32 or [E, S, A] float32 actions taken after each window obs (last slot: 0)
    valid: np.ndarray  # [E, S] bool window slots inside the current episode
    episode: np.ndarray  # [E] int32 per-env episode counter (replay's episode ids)
    env: Any  # JAX-native envs: their snapshot (key, batched env state); host simulators: NO_ENV_STATE


class ScaleZeroState(NamedTuple):
    """The checkpointed run state. ``state["train"]`` also works (string keys read the fields)."""

    train: TrainState
    replay: rp.ReplayState
    curriculum: cur.CurriculumState
    actor: ActorState
    eval_returns: np.ndarray  # [K] float32 latest solved-check evaluation mean per task (NaN before the first)
    game_returns: np.ndarray  # [K, W] float32 returns of the last W finished games per task (NaN = none yet)
    game_count: np.ndarray  # [K] int64 finished games per task
    key: jax.Array
    iteration: np.ndarray  # () int64 train steps done
    env_steps: np.ndarray  # () int64
    active_steps: np.ndarray  # () int64 env steps of unsolved tasks

    def __getitem__(self, item):
        return getattr(self, item) if isinstance(item, str) else tuple.__getitem__(self, item)


def record_games(games: np.ndarray, count: np.ndarray, ts, env_task: np.ndarray, which=None) -> None:
    """Write the returns of the games that ended at ``ts`` into per-task rings ``games [K, W]`` (in place; ``count
    [K]`` finished games). A game ends at ``envs.episode_over`` only: Atari training mode sets ``terminated`` on
    a lost life while the game goes on. Returns are unclipped (``info['episode_return']`` sums raw rewards).
    ``which [E]`` bool: only these envs' games (solved tasks' envs play a random policy; not the agent's games)."""
    over = envs.episode_over(ts)
    for i in np.flatnonzero(over if which is None else over & which):
        k = env_task[i]
        games[k, count[k] % games.shape[1]] = float(ts.info["episode_return"][i])
        count[k] += 1


class ActorWindows:
    """Per-env context windows of the last S steps (host numpy, mutable) for the search root."""

    def __init__(self, num_envs, steps, obs_shape, obs_dtype, action_dim):
        self.obs = np.zeros((num_envs, steps) + tuple(obs_shape), obs_dtype)  # [E, S, *obs]
        self.act = (np.zeros((num_envs, steps, action_dim), np.float32) if action_dim
                    else np.zeros((num_envs, steps), np.int32))  # [E, S(, A)]
        self.valid = np.zeros((num_envs, steps), bool)  # [E, S]

    @classmethod
    def of(cls, actor: ActorState) -> "ActorWindows":
        w = cls.__new__(cls)
        w.obs, w.act, w.valid = np.array(actor.obs), np.array(actor.act), np.array(actor.valid)
        return w

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


def _mean_of_finished(stat, per_task: np.ndarray) -> float:
    """``stat`` (nanmean/nanmedian) over the tasks that finished a game; NaN, without numpy's empty-slice warning,
    when none did within ``max_eval_steps`` (no made-up partial return)."""
    return float(stat(per_task)) if np.isfinite(per_task).any() else float("nan")


class ScaleZeroTrainer:
    """Trainer for the run loop: ``Trainer(cfg, run_dir)`` with ``cfg.env``, ``cfg.run``, ``cfg.seed``,
    ``cfg.scalezero``."""

    def __init__(self, cfg, run_dir=None):
        self.exp = cfg
        self.cfg = c = as_config(_get(cfg, "scalezero"))
        validate(c)
        # run.replay: host (numpy, batches copied per update; auto) or device (sampled inside the jitted update)
        self.replay_on_device = replay_location("scalezero", str(_get(_get(cfg, "run"), "replay", "auto"))) == "device"
        if self.replay_on_device and c.reanalyse_fraction > 0:
            raise ValueError(f"scalezero.reanalyse_fraction={c.reanalyse_fraction} (per-batch reanalysis on the host) "
                             "needs run.replay=host; with run.replay=device use reanalyse_every (buffer reanalysis)")

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
        self.precision = precision_of(_get(cfg, "run", None))  # run.precision: bf16 compute, float32 master weights
        self.model = WorldModel(c, self.dims, compute_dtype(self.precision))
        self.planner = Planner(self.model, c, self.dims)
        self.dp = DataParallel.from_run(_get(cfg, "run", None))
        self._search = make_search_fn(self.planner, self.dp)
        self._update = make_update_fn(self.model, c, self.dp)
        self._device_learn = self._make_device_learn() if self.replay_on_device else None
        self._jax_env = callable(getattr(self.env, "snapshot", None))  # env state can live in the run state
        self._live_actor = None  # the actor state this object's host simulators are in (host envs)
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
    def _new_windows(self, num_envs: int) -> ActorWindows:
        spec = self.spec
        return ActorWindows(num_envs, self.cfg.context_steps, spec.observation.shape,
                            np.dtype(spec.observation.dtype), self.dims.action_dim)

    def _env_snapshot(self):
        return self.env.snapshot() if self._jax_env else NO_ENV_STATE

    def init(self, key) -> ScaleZeroState:
        c = self.cfg
        k_params, k_run = jax.random.split(key)
        params = init_params(self.model, k_params)
        self.num_params = count_params(params)
        ts = self.loop.reset(self.seed)
        self._env_task = self._task_of(ts, self._env_task)
        w = self._new_windows(self.num_envs)
        w.start(np.asarray(ts.observation))
        actor = ActorState(w.obs, w.act, w.valid, np.zeros(self.num_envs, np.int32), self._env_snapshot())
        self._live_actor = actor
        columns = rp.rows_per_env(c.replay_capacity, self.num_envs, self.num_tasks)
        policy_dim = c.num_sampled_actions if self.dims.continuous else self.dims.num_actions
        replay = rp.init(self.num_envs, columns, self.spec.observation.shape, np.dtype(self.spec.observation.dtype),
                         policy_dim, self.dims.action_dim, c.num_sampled_actions, self._env_task)
        if self.replay_on_device:
            replay = drp.to_device(replay, self.dp.put)
        k = self.num_tasks
        zero = lambda: np.zeros((), np.int64)
        return ScaleZeroState(self.dp.put(init_train_state(params, c), PARAMS), replay, cur.init(k), actor,
                              np.full((k,), np.nan, np.float32),
                              np.full((k, c.train_return_window), np.nan, np.float32), np.zeros((k,), np.int64),
                              k_run, zero(), zero(), zero())

    def _resume_actor(self, state: ScaleZeroState) -> ActorState:
        """The actor to collect with. JAX-native envs continue from the snapshot in the state (exact). Host
        simulators cannot: a state they were not stepped to (a restored checkpoint) restarts them from a reset
        seeded with ``seed + env_steps``, with fresh windows and new episode ids."""
        actor = state.actor
        if self._jax_env:
            self.env.restore(actor.env)
            return actor
        if actor is self._live_actor:
            return actor
        ts = self.loop.reset(self.seed + int(state.env_steps))
        w = self._new_windows(self.num_envs)
        w.start(np.asarray(ts.observation))
        return ActorState(w.obs, w.act, w.valid, actor.episode + 1, NO_ENV_STATE)

    # ------------------------------------------------------------------ training
    def _unsolved(self, cs) -> np.ndarray:
        if not self.cfg.dps:
            return np.arange(self.num_tasks)
        return np.flatnonzero(~cs.solved)

    def _binary_obs(self) -> bool:
        ob = self.spec.observation
        return np.dtype(ob.dtype) == np.uint8 and ob.high is not None and ob.high <= 1

    def model_obs(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the encoder takes them: binary uint8 planes (MinAtar, high = 1) become float32 0/1
        (the encoders read uint8 as 0..255 pixels); everything else passes unchanged (replay keeps the spec dtype)."""
        return np.asarray(obs, np.float32) if self._binary_obs() else obs

    def _make_device_learn(self):
        """Jitted ``(train, replay, key, slots [G], stage) -> (train, replay, metrics)``: one update on a batch
        sampled from the device replay inside the call (priorities written back there); both states donated."""
        c, model, binary = self.cfg, self.model, self._binary_obs()
        per_slot, length = c.batch_size // self.num_tasks, c.unroll_steps + c.td_steps

        def learn_step(train, replay, key, slots, stage):
            batch, index = drp.sample(key, replay, slots, per_slot, length, c.prioritized, c.priority_alpha,
                                      c.priority_beta)
            if binary:
                batch = batch._replace(obs=batch.obs.astype(jnp.float32))
            train, metrics, prio = update(train, batch, stage, model=model, cfg=c)
            if c.prioritized:
                replay = drp.update_priorities(replay, index, prio)
            return train, replay, metrics

        return self.dp.jit(learn_step, out_axes=(PARAMS, None, None), donate_argnums=(0, 1))

    def _search_model_obs(self, params, key, obs, *args, **kwargs):
        """``self._search`` on observations converted by ``model_obs`` (host numpy in, device out)."""
        return self._search(params, key, self.model_obs(obs), *args, **kwargs)

    def _search_windows(self, params, key, obs, act, valid, task, stage, explore, sims):

        return jax.device_get(self._search(params, key, self.model_obs(obs), act, valid, task, stage,
                                           jnp.float32(explore), num_simulations=sims))

    def collect(self, state: ScaleZeroState):
        """``collect_steps`` search decisions per env into replay. Returns (state, metrics, env steps)."""
        c = self.cfg
        actor = self._resume_actor(state)
        train, replay, cs, key = state.train, state.replay, state.curriculum, state.key
        stage = jnp.asarray(int(cs.stage), jnp.int32)
        env_task = replay.env_task
        active_env = np.isin(env_task, self._unsolved(cs))  # envs of unsolved tasks (solved: data never sampled)
        rng = np.random.default_rng([self.seed, int(state.iteration), 1])  # solved tasks' envs: random actions
        games, count = state.game_returns.copy(), state.game_count.copy()
        w, episode = ActorWindows.of(actor), actor.episode.copy()
        columns = []  # device replay: the collected columns, written in one call after the loop
        t0 = time.perf_counter()
        for _ in range(c.collect_steps):
            key, k_s = jax.random.split(key)
            if active_env.all():
                out = self._search_windows(train.params, k_s, w.obs, w.act, w.valid, env_task, stage, 1.0,
                                           c.num_simulations)
            else:  # DPS: solved tasks' envs skip the search and step with a uniformly random action
                out = search_unsolved(self._search_model_obs, active_env, rng, train.params, k_s, w.obs, w.act,
                                      w.valid, env_task, stage, jnp.float32(1.0), num_simulations=c.num_simulations,
                                      num_actions=self.dims.num_actions, action_dim=self.dims.action_dim,
                                      num_sampled=c.num_sampled_actions, multiple=self.dp.size)
            ts = self.loop.step(np.asarray(out.action))
            reward = np.asarray(ts.reward, np.float32)
            if c.reward_clip > 0:
                reward = np.clip(reward, -c.reward_clip, c.reward_clip)
            term, trunc = np.asarray(ts.terminated), np.asarray(ts.truncated)
            column = (w.obs[:, -1], out.action, reward, term, trunc, out.policy_target, out.sampled,
                      out.root_value, episode)
            if self.replay_on_device:
                columns.append(column)
            else:
                replay = rp.add(replay, *column)
            record_games(games, count, ts, env_task, active_env)
            done = term | trunc
            episode = episode + done.astype(np.int32)
            w.advance(out.action, np.asarray(ts.observation), done)
        if columns:  # [T, E, ...] per field: one host->device copy per collect step
            replay = drp.add_block(replay, *(np.stack([np.asarray(col[i]) for col in columns])
                                             for i in range(len(columns[0]))))
        actor = ActorState(w.obs, w.act, w.valid, episode, self._env_snapshot())
        self._live_actor = actor
        # a batched env cannot pause single envs: solved tasks' envs still step, without search (a uniformly random
        # action), and count in env_steps (the run.total_env_steps budget: they are real interactions); their data
        # is never sampled and their games are not train returns; "active" counts the interactions of unsolved tasks
        env_steps = int(c.collect_steps * self.num_envs)
        active_steps = int(c.collect_steps * active_env.sum())
        state = state._replace(replay=replay, actor=actor, key=key, game_returns=games, game_count=count,
                               env_steps=np.asarray(int(state.env_steps) + env_steps, np.int64),
                               active_steps=np.asarray(int(state.active_steps) + active_steps, np.int64))
        return state, {"time/collect_s": time.perf_counter() - t0}, env_steps

    def learn(self, state: ScaleZeroState):
        """``updates_per_iter`` learner updates (once every unsolved task has ``warmup_transitions``), and the
        periodic buffer reanalysis. Returns (state, metrics)."""
        c = self.cfg
        t1 = time.perf_counter()
        train, replay, key = state.train, state.replay, state.key
        stage = jnp.asarray(int(state.curriculum.stage), jnp.int32)
        unsolved = self._unsolved(state.curriculum)
        iteration = int(state.iteration)
        rng = np.random.default_rng([self.seed, iteration])
        stored = rp.task_sizes(replay, self.num_tasks)
        metrics: dict[str, float] = {}
        ready = unsolved.size > 0 and stored[unsolved].min() >= c.warmup_transitions
        if ready:
            g = self.num_tasks
            slots = unsolved[np.arange(g) % unsolved.size]  # balanced per-task micro-batches
            length = c.unroll_steps + c.td_steps
            if c.reanalyse_every and iteration % c.reanalyse_every == 0:
                key, k_r = jax.random.split(key)
                replay, metrics["time/reanalyse_s"] = self.reanalyse_buffer(train.target_params, replay, rng, slots,
                                                                            stage, k_r)
            finite_flags = []  # one per update: a divergence in any update of the iteration counts
            if self.replay_on_device:  # sampled inside the jitted update from a key of (seed, iteration)
                keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(self.seed), iteration),
                                        c.updates_per_iter)
                slots_dev = jnp.asarray(slots, jnp.int32)
            for u in range(c.updates_per_iter):
                if self.replay_on_device:
                    train, replay, m = self._device_learn(train, replay, keys[u], slots_dev, stage)
                    finite_flags.append(m[FINITE_KEY])
                    continue
                batch, index = rp.sample(replay, rng, slots, c.batch_size // g, length, c.prioritized,
                                         c.priority_alpha, c.priority_beta)
                if c.reanalyse_fraction > 0:
                    key, k_r = jax.random.split(key)
                    batch = self.reanalyse(train.params, batch, stage, k_r)
                train, m, prio = self._update(train, batch._replace(obs=self.model_obs(batch.obs)), stage)
                finite_flags.append(m[FINITE_KEY])
                if c.prioritized:
                    rp.update_priorities(replay, index, np.asarray(prio))
            m = jax.device_get(m)
            entropies = []
            for name, v in m.items():
                if name == "per_slot_loss":
                    for slot_task, lv in zip(slots, v):
                        metrics[f"loss/task/{self.task_names[slot_task]}"] = float(lv)
                elif name == "per_slot_routing_entropy":
                    if c.ffn == "moe":
                        for slot_task, ev in zip(slots, v):
                            metrics[f"moe/routing_entropy/{self.task_names[slot_task]}"] = float(ev)
                        entropies = [float(x) for x in v]
                elif name == "expert_load":
                    for e, lv in enumerate(v):
                        metrics[f"moe/load_e{e}"] = float(lv)
                    metrics["moe/max_load"] = float(np.max(v))
                else:
                    metrics[name] = float(v)
            if entropies:  # mean over tasks; log(num_experts) = perfectly spread, 0 = one expert per task
                metrics["moe/routing_entropy"] = float(np.mean(entropies))
            metrics[FINITE_KEY] = float(np.mean(jax.device_get(finite_flags)))
        metrics["time/learn_s"] = time.perf_counter() - t1
        return state._replace(train=train, replay=replay, key=key), metrics

    def curriculum(self, state: ScaleZeroState, updates_before: int):
        """DPS: every ``solve_eval_every`` learner updates, evaluate (greedy, ``solve_eval_episodes`` games per
        task) and mark tasks whose evaluation mean reaches the target solved, as LightZero does; then apply the
        stage-switch rule. Returns (state, metrics)."""
        c = self.cfg
        cs, key, eval_returns = state.curriculum, state.key, state.eval_returns
        metrics: dict[str, float] = {}
        updates = int(state.train.step)
        if c.dps:
            every = c.solve_eval_every
            due = every > 0 and updates > 0 and updates // every > updates_before // every
            if due and self.targets is not None and not cs.solved.all():
                key, k_e = jax.random.split(key)
                t0 = time.perf_counter()
                result = self.evaluate(state, c.solve_eval_episodes, k_e)
                eval_returns = np.array([result[f"return_mean/{n}"] for n in self.task_names], np.float32)
                metrics["time/solve_eval_s"] = time.perf_counter() - t0
            cs = cur.step(cs, updates, eval_returns, None if self.targets is None else np.asarray(self.targets),
                          c.num_stages, c.min_stage0_iters, c.max_stage_iters)
        metrics.update({"dps/stage": float(cs.stage), "dps/solved": float(cs.solved.sum())})
        for k, name in enumerate(self.task_names):
            if not np.isnan(eval_returns[k]):
                metrics[f"dps/eval_return/{name}"] = float(eval_returns[k])
        return state._replace(curriculum=cs, key=key, eval_returns=eval_returns), metrics

    def train_step(self, state: ScaleZeroState):
        updates_before = int(state.train.step)
        state, metrics, env_steps = self.collect(state)
        metrics.update(self.loop.episode_metrics())
        state, m = self.learn(state)
        metrics.update(m)
        state, m = self.curriculum(state, updates_before)
        metrics.update(m)
        state = state._replace(iteration=np.asarray(int(state.iteration) + 1, np.int64))
        metrics.update({"replay/bytes": float(rp.nbytes(state.replay)), "replay/size": float(state.replay.size),
                        "learner/updates": float(state.train.step),
                        "env_steps/active": float(state.active_steps)})
        games = state.game_returns
        for k, name in enumerate(self.task_names):
            if not np.isnan(games[k]).all():  # mean of the task's last train_return_window finished games
                metrics[f"train_return/{name}"] = float(np.nanmean(games[k]))
        return state, metrics, env_steps

    def reanalyse_buffer(self, params, replay: rp.ReplayState, rng, slots, stage, key):
        """Rewrite the policy targets of ``reanalyse_batch`` stored windows (``unroll_steps`` roots each), drawn
        from the oldest ``reanalyse_partition`` of each task's rows, by a fresh search of ``params`` (the target
        network, as LightZero) with root noise when ``reanalyse_noise``. Returns ``(replay, seconds)`` (a host
        replay is rewritten in place; a device replay gives up only the drawn windows and gets the targets back)."""
        c = self.cfg
        t0 = time.perf_counter()
        per_slot = max(1, c.reanalyse_batch // len(slots))
        # roots drawn on the host for both replay locations (uniform roots read only the small bookkeeping arrays)
        size, ptr, cols = int(replay.size), int(replay.ptr), replay.obs.shape[1]
        env_idx, off, weight = rp.sample_index(rng, np.asarray(replay.env_task), size, ptr, cols, None, slots,
                                               per_slot, oldest=c.reanalyse_partition)
        if self.replay_on_device:  # only the drawn windows leave the device
            batch, (_, root_col) = jax.device_get(drp.gather_rows(replay, env_idx, off, np.asarray(slots, np.int32),
                                                                  length=c.unroll_steps))
        else:
            batch, (_, root_col) = rp.gather(replay, env_idx, off, slots, weight, c.unroll_steps)
        new = self.reanalyse(params, batch, stage, key, explore=1.0 if c.reanalyse_noise else 0.0, fraction=1.0)
        t = c.unroll_steps
        cols = (root_col[:, None] + np.arange(t)[None]) % cols  # [B, T] physical columns
        keep = batch.seg[:, :t] == 0  # rows inside the root's episode, already written
        e2 = np.broadcast_to(env_idx[:, None], cols.shape)
        if self.replay_on_device:
            replay = drp.write_targets(replay, e2[keep], cols[keep], new.policy[:, :t][keep],
                                       new.sampled[:, :t][keep])
        else:
            replay.policy[e2[keep], cols[keep]] = new.policy[:, :t][keep]
            if self.dims.continuous:
                replay.sampled[e2[keep], cols[keep]] = new.sampled[:, :t][keep]
        return replay, time.perf_counter() - t0

    def reanalyse(self, params, batch: rp.Batch, stage, key, explore: float = 0.0,
                  fraction: float | None = None) -> rp.Batch:
        """Recompute the policy targets of ``fraction`` (default ``reanalyse_fraction``) of the batch's sequences.

        For each unroll step the search root is the step's own context window (the previous ``context_steps`` rows of
        the same episode inside the sampled window), searched with exploration ``explore`` (0 = greedy, 1 = the
        collection noise). Continuous actions get freshly sampled candidates.
        """
        c = self.cfg
        b, t, s = batch.obs.shape[0], min(c.unroll_steps, batch.obs.shape[1]), c.context_steps
        n = max(1, int(round((c.reanalyse_fraction if fraction is None else fraction) * b)))
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
        out = self._search_windows(params, key, flat(obs_hist), flat(act_hist), flat(valid), task, stage, explore,
                                   c.num_simulations)
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

    def evaluate(self, state, num_episodes: int, key, policy: str = "search") -> dict[str, float]:
        """Greedy search, no noise: ``num_episodes`` finished episodes per task (first ones per env).

        ``policy='random'`` plays uniformly random actions (discrete action spaces) through the same loop, envs,
        episode cap and episode accounting: the random-policy baseline a learning claim is compared with.
        Besides the means, ``return_se/<task>`` is the standard error of the task's episode returns."""
        c = self.cfg
        if policy not in ("search", "random"):
            raise ValueError(f"evaluate policy={policy!r}; allowed: 'search', 'random'")
        if policy == "random" and self.dims.continuous:
            raise ValueError("evaluate policy='random' needs a discrete action space")
        # default: as many eval envs as training envs (same shapes -> the compiled search is reused)
        n_envs = (c.eval_num_envs * self.num_tasks if c.context_tasks else c.eval_num_envs) or self.num_envs
        if self._eval_env is None:
            self._eval_env, self._eval_task = self._make_env(n_envs, self.seed + 10_000, self.eval_options)
        env = self._eval_env
        seed = int(jax.random.randint(key, (), 0, 2 ** 30))
        ts = env.reset(seed=seed)
        env_task = self._task_of(ts, self._eval_task)
        spec = self.spec
        w = self._new_windows(env.num_envs)
        w.start(np.asarray(ts.observation))
        params, stage = state.train.params, jnp.asarray(int(state.curriculum.stage), jnp.int32)
        returns = [[] for _ in range(self.num_tasks)]
        successes = [[] for _ in range(self.num_tasks)]
        max_len = c.max_eval_steps or (spec.max_episode_steps or 1000)
        envs_of = np.bincount(env_task, minlength=self.num_tasks)
        rounds = max(math.ceil(num_episodes / max(1, envs_of[envs_of > 0].min())), 1)
        rng = np.random.default_rng(seed)  # policy='random' only
        for _ in range(rounds * max_len + 1):
            key, k_s = jax.random.split(key)
            if policy == "random":
                action = rng.integers(0, self.dims.num_actions, env.num_envs).astype(np.int32)
            else:
                action = np.asarray(self._search_windows(params, k_s, w.obs, w.act, w.valid, env_task, stage, 0.0,
                                                         c.eval_num_simulations).action)
            ts = env.step(action)
            done = np.asarray(ts.terminated) | np.asarray(ts.truncated)
            ended = np.flatnonzero(envs.episode_over(ts))  # whole games (eval mode never ends on a life)
            succeeded = envs.episode_success(ts) if len(ended) else None  # [B] at any step (Meta-World's rule)
            for i in ended:
                k = env_task[i]
                if len(returns[k]) < num_episodes:
                    returns[k].append(float(ts.info["episode_return"][i]))
                    successes[k].append(float(succeeded[i]))
            w.advance(action, np.asarray(ts.observation), done)
            if all(len(returns[k]) >= num_episodes for k in range(self.num_tasks) if envs_of[k] > 0):
                break
        means = np.array([np.mean(r) if r else np.nan for r in returns])
        result = {"return_mean": _mean_of_finished(np.nanmean, means)}
        for k, name in enumerate(self.task_names):
            result[f"return_mean/{name}"] = float(means[k])
            result[f"return_se/{name}"] = (float(np.std(returns[k], ddof=1) / math.sqrt(len(returns[k])))
                                           if len(returns[k]) > 1 else float("nan"))
            result[f"success/{name}"] = float(np.mean(successes[k])) if successes[k] else float("nan")
        norm = self.normalized(means)
        if norm is not None:
            result["normalized_mean"] = _mean_of_finished(np.nanmean, norm)
            result["normalized_median"] = _mean_of_finished(np.nanmedian, norm)
            for k, name in enumerate(self.task_names):
                result[f"normalized/{name}"] = float(norm[k])
        return result

    def close(self) -> None:
        self.loop.close()
        if self._eval_env is not None:
            self._eval_env.close()
