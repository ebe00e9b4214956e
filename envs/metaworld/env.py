"""Meta-World v3 benchmarks (MT1/MT10/MT50, ML1/ML10/ML45 train and test) behind the batched ``BatchedEnv`` API.

Built on Meta-World's own per-env wrapper stack (``metaworld._init_each_env``: time limit, terminate-on-success,
episode statistics, random / pseudo-random task selection) inside a gymnasium ``SyncVectorEnv`` (default) or
``AsyncVectorEnv`` (``vector_strategy='async'``, one subprocess per env), both in same-step autoreset mode, so the
task-sampling protocol is exactly Meta-World's. What this module adds:

* ``TimeStep`` conversion (float32 observations, bool flags, ``final_observation``, episode return/length,
  ``success`` = Meta-World's per-step ``info['success']``, ``episode_success`` = success at any step so far).
* ``task_id`` per env: env ``i`` runs task ``i % num_tasks`` (round-robin); ``one_hot=True`` appends the task one-hot.
* Goal context ``(goal_x, goal_y, goal_z)``: every step reports each env's current target position (the goal of the
  episode that ``observation`` belongs to, i.e. the NEW episode on a final step). An explicit context fixes the goal
  (tasks in ``SETTABLE_GOAL_TASKS`` only); the object placement still comes from the benchmark's task vector, and is
  re-sampled when Meta-World's reset rejects the pair (e.g. goal too close to the object).
* Seeding: ``make(seed=s)`` builds the benchmark's goal set with seed ``s`` (as ``metaworld.MT10(seed=s)`` does) and
  seeds env ``i`` from ``(s, i)``; ``reset(seed=s')`` re-seeds every env and restarts its task sequence.
* Task protocol (Meta-World's): MT envs draw a random goal from their task's goal set at every reset; ML envs keep
  their goal until ``sample_tasks()`` (then switch at the next reset, in Meta-World's pseudo-random order), and the
  envs of one ML task split its goal set between them. ML test splits terminate an episode on success.
* ``vector_strategy='async'`` starts worker processes: scripts that use it need an ``if __name__ == '__main__':``
  guard (as with any multiprocessing start method other than fork).
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import pickle
import threading
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np

from envs.base import BatchedEnv, EpisodeStats
from envs.metaworld import tasks as T
from envs.spec import ArraySpec, BoxActionSpec, ContextVar, EnvSpec
from envs.timestep import TimeStep

OBS_DIM = 39  # Meta-World observation: hand xyz, gripper, 2 objects (pos+quat), previous frame of the same, goal xyz
ACTION_DIM = 4  # dx, dy, dz (scaled by 1/100 m), gripper effort; all in [-1, 1]
_MAX_GOAL_TRIES = 200  # object placements tried for an explicit goal before the goal is declared infeasible


@dataclasses.dataclass(frozen=True)
class MetaWorldOptions:
    """Family options for ``envs.make('metaworld/...', **options)``."""

    one_hot: bool = False
    """Append the task one-hot (``num_tasks`` floats) to every observation."""
    goal_observable: bool | None = None
    """Goal xyz in the last 3 observation dims. None = the benchmark's convention (MT: visible, ML: zeros)."""
    max_episode_steps: int = T.MAX_PATH_LENGTH
    """Episode length before truncation, 1..500 (Meta-World's horizon is 500)."""
    terminate_on_success: bool | None = None
    """End the episode (terminated=True) on success. None = Meta-World's convention (only ML test splits)."""
    vector_strategy: str = "sync"
    """'sync': envs stepped in this process; 'async': one subprocess per env (gymnasium AsyncVectorEnv)."""
    async_context: str = "forkserver"
    """multiprocessing start method for 'async'. 'forkserver' (default): a clean helper process imports
    metaworld once and forks the workers (safe after JAX is imported, ~5x faster to start than 'spawn'); the helper
    lives until this Python process exits. 'spawn': no helper, slow start. 'fork': fastest, unsafe once JAX runs."""
    camera: str = "corner"
    """Camera for ``render()``: one of tasks.CAMERAS."""
    width: int = 480
    """Rendered frame width in pixels."""
    height: int = 480
    """Rendered frame height in pixels."""
    flip_frames: bool | None = None
    """Flip rendered frames upside down. None = flip the fixed 'corner*' cameras, which MuJoCo renders upside
    down for Meta-World's scene, so frames come out upright."""
    reward_function_version: str = "v2"
    """Meta-World reward function version ('v1' or 'v2')."""
    num_goals: int = 50
    """Goals per task in the benchmark's goal set (Meta-World's ``num_goals``; 50 is the standard benchmark).
    Generating them resets each task's simulator ``num_goals`` times, so small values build envs faster."""

    @classmethod
    def from_kwargs(cls, env_id: str, options: Mapping[str, Any]) -> "MetaWorldOptions":
        """Build options, refusing unknown names (with the closest valid one) and bad values."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{env_id}: unknown option {key!r}{hint}; allowed: {', '.join(names)}")
        opts = cls(**options)
        if not 1 <= int(opts.max_episode_steps) <= T.MAX_PATH_LENGTH:
            raise ValueError(f"{env_id}: max_episode_steps={opts.max_episode_steps} must be in "
                             f"[1, {T.MAX_PATH_LENGTH}] (Meta-World's horizon)")
        if opts.vector_strategy not in ("sync", "async"):
            raise ValueError(f"{env_id}: vector_strategy={opts.vector_strategy!r}; allowed: 'sync', 'async'")
        if opts.async_context not in ("spawn", "fork", "forkserver"):
            raise ValueError(f"{env_id}: async_context={opts.async_context!r}; allowed: spawn, fork, forkserver")
        if opts.camera not in T.CAMERAS:
            close = difflib.get_close_matches(opts.camera, T.CAMERAS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{env_id}: unknown camera {opts.camera!r}{hint}; allowed: {', '.join(T.CAMERAS)}")
        if int(opts.width) < 1 or int(opts.height) < 1:
            raise ValueError(f"{env_id}: width/height must be >= 1, got {opts.width}x{opts.height}")
        if not 1 <= int(opts.num_goals) <= 1000:
            raise ValueError(f"{env_id}: num_goals={opts.num_goals} must be in [1, 1000] (standard: 50)")
        if opts.reward_function_version not in ("v1", "v2"):
            raise ValueError(f"{env_id}: reward_function_version={opts.reward_function_version!r}; "
                             "allowed: 'v1', 'v2'")
        return opts


@dataclasses.dataclass(frozen=True)
class BenchmarkDef:
    """One Meta-World benchmark split: which tasks, and which protocol (MT or ML)."""

    env_id: str  # our id, e.g. 'metaworld/ML10-test'
    kind: str  # 'MT' (goal visible, random goal each reset) or 'ML' (goal hidden, goal changes on sample_tasks)
    name: str  # Meta-World benchmark: 'MT1', 'MT10', 'MT50', 'ML1', 'ML10', 'ML45'
    split: str  # 'train' or 'test' (MT benchmarks only have 'train')
    task_names: tuple[str, ...]  # in Meta-World's order; task_id indexes this


def goal_context_vars(task_names: Sequence[str]) -> tuple[ContextVar, ...]:
    """goal_x/y/z with the union of the tasks' goal spaces as range and its centre as default."""
    lows = np.min([T.GOAL_SPACES[t][0] for t in task_names], axis=0)
    highs = np.max([T.GOAL_SPACES[t][1] for t in task_names], axis=0)
    settable = sorted(set(task_names) & T.SETTABLE_GOAL_TASKS)
    note = "settable" if len(settable) == len(set(task_names)) else (
        f"settable for {len(settable)}/{len(set(task_names))} tasks" if settable else "reported only")
    return tuple(ContextVar(f"goal_{ax}", float(lo), float(hi), float((lo + hi) / 2),
                            f"target {ax} (m); {note}")
                 for ax, lo, hi in zip("xyz", lows, highs))


def make_spec(bench: BenchmarkDef, opts: MetaWorldOptions) -> EnvSpec:
    """The EnvSpec of a benchmark (static: no simulator needed)."""
    obs_dim = OBS_DIM + (len(bench.task_names) if opts.one_hot else 0)
    return EnvSpec(env_id=bench.env_id, observation=ArraySpec((obs_dim,), "float32"),
                   action=BoxActionSpec((ACTION_DIM,), -1.0, 1.0), task_names=bench.task_names,
                   context_vars=goal_context_vars(bench.task_names), max_episode_steps=int(opts.max_episode_steps))


def _check_goals(bench: BenchmarkDef, goals: np.ndarray, task_ids: np.ndarray) -> None:
    """Refuse goals for tasks whose goal cannot be set, or outside that task's own goal space."""
    for i, (goal, tid) in enumerate(zip(goals, task_ids)):
        task = bench.task_names[tid]
        if task not in T.SETTABLE_GOAL_TASKS:
            raise ValueError(
                f"{bench.env_id}: env {i} runs {task}, whose goal follows from the object placement and cannot be "
                f"set by a context (it is still reported in TimeStep.context). Tasks with a settable goal: "
                f"{', '.join(sorted(T.SETTABLE_GOAL_TASKS))}")
        low, high = (np.asarray(b, np.float64) for b in T.GOAL_SPACES[task])
        bad = (goal < low - 1e-6) | (goal > high + 1e-6)
        if bad.any():
            ax = "xyz"[int(np.argmax(bad))]
            raise ValueError(
                f"{bench.env_id}: goal_{ax}={goal['xyz'.index(ax)]:g} for env {i} ({task}) is outside the task's "
                f"goal space [{low['xyz'.index(ax)]:g}, {high['xyz'.index(ax)]:g}] "
                f"(full space low={tuple(low)}, high={tuple(high)})")


@functools.lru_cache(maxsize=8)
def _generated_tasks(name: str, split: str, task_names: tuple[str, ...], seed: int, num_goals: int = 50) -> tuple:
    """Meta-World's goal set (``num_goals`` ``Task``s per task name), generated exactly as metaworld does.

    Generation resets every task's simulator 50 times (~1 s per task on 2 busy cores), and its result depends only
    on the arguments, so it is memoised: building a second env of the same benchmark and seed (an evaluation
    copy, a test) is fast. ``Task`` objects are immutable (name + pickled bytes).
    """
    import metaworld

    with _GOALS_LOCK:  # metaworld reads the goal count from a module global (its make_vec sets it the same way)
        previous, metaworld._N_GOALS = metaworld._N_GOALS, int(num_goals)
        try:
            return _generate(metaworld, name, split, task_names, seed)
        finally:
            metaworld._N_GOALS = previous


_GOALS_LOCK = threading.Lock()


def _generate(metaworld, name: str, split: str, task_names: tuple[str, ...], seed: int) -> tuple:
    from metaworld import env_dict as D

    if name == "MT1":
        return tuple(metaworld.MT1(task_names[0], seed=seed).train_tasks)
    if name in ("MT10", "MT50"):
        return tuple(getattr(metaworld, name)(seed=seed).train_tasks)
    # ML: generate only the split we need (metaworld builds both; ML1's test split uses seed + 1)
    if name == "ML1":
        classes = OrderedDict([(task_names[0], D.ALL_V3_ENVIRONMENTS[task_names[0]])])
        args = {task_names[0]: D.ML1_ARGS_KWARGS[task_names[0]]}
        split_seed = seed + 1 if split == "test" else seed
    else:
        classes = getattr(D, f"{name}_V3")[split]
        args = getattr(D, f"{name}_ARGS_KWARGS")[split]
        split_seed = seed
    return tuple(metaworld._make_tasks(classes, args, metaworld._ML_OVERRIDE, seed=split_seed))


def _benchmark_tasks(bench: BenchmarkDef, seed: int, goal_observable: bool, num_goals: int) -> dict[str, list]:
    """The benchmark's ``Task``s grouped by task name, with the goal visibility we want."""
    import metaworld

    by_name: dict[str, list] = {name: [] for name in bench.task_names}
    for task in _generated_tasks(bench.name, bench.split, bench.task_names, seed, num_goals):
        data = pickle.loads(task.data)
        if data["partially_observable"] == goal_observable:  # flip Meta-World's observability convention
            data["partially_observable"] = not goal_observable
            task = metaworld.Task(env_name=task.env_name, data=pickle.dumps(data))
        by_name[task.env_name].append(task)
    return by_name


def _derived_seed(seed: int, index: int) -> int:
    """Independent per-env seed from (batch seed, env index)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index]).generate_state(1)[0])


def _make_one(env_cls: type, tasks: list, seed: int, index: int, task_select: str, opts: MetaWorldOptions,
              terminate_on_success: bool, goal: np.ndarray | None):
    """Build env ``index`` (module-level so it pickles for spawned subprocesses)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import metaworld

    from envs.metaworld.wrapper import OmniWrapper

    env = metaworld._init_each_env(
        env_cls=env_cls, tasks=tasks, seed=seed, max_episode_steps=int(opts.max_episode_steps),
        terminate_on_success=terminate_on_success, task_select=task_select,
        reward_function_version=opts.reward_function_version, render_mode="rgb_array", camera_name=opts.camera,
        width=int(opts.width), height=int(opts.height))
    return OmniWrapper(env, index=index, goal=goal, obs_dim=OBS_DIM, max_goal_tries=_MAX_GOAL_TRIES)


class MetaWorldEnv(BatchedEnv):
    """``num_envs`` Meta-World envs of one benchmark split; env ``i`` runs ``task_names[i % num_tasks]``."""

    def __init__(self, bench: BenchmarkDef, num_envs: int, seed: int,
                 context: Mapping[str, float | Sequence[float]] | None, options: Mapping[str, Any]):
        self._vec = None
        opts = MetaWorldOptions.from_kwargs(bench.env_id, options)
        num_tasks = len(bench.task_names)
        if num_envs < 1 or num_envs % num_tasks:
            raise ValueError(
                f"{bench.env_id} has {num_tasks} tasks: num_envs must be a positive multiple of {num_tasks} "
                f"(envs are assigned to tasks round-robin, env i runs task i % {num_tasks}); got {num_envs}")
        per_task = num_envs // num_tasks
        if bench.kind == "ML" and per_task > opts.num_goals:
            raise ValueError(f"{bench.env_id}: at most num_goals={opts.num_goals} envs per task (an ML task's goals "
                             f"are split between its envs); got {per_task} envs per task")
        self.bench, self.options, self.num_envs, self.seed = bench, opts, int(num_envs), int(seed)
        self.spec = make_spec(bench, opts)
        self._task_ids = (np.arange(num_envs) % num_tasks).astype(np.int32)  # [B]
        self._one_hot = np.eye(num_tasks, dtype=np.float32)[self._task_ids] if opts.one_hot else None  # [B, T]
        goals = self._resolve_goals(context) if context else None  # [B, 3] or None

        os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import to render headless
        import gymnasium as gym
        from metaworld import env_dict as D

        observable = (bench.kind == "MT") if opts.goal_observable is None else bool(opts.goal_observable)
        terminate = (bench.kind == "ML" and bench.split == "test") if opts.terminate_on_success is None \
            else bool(opts.terminate_on_success)
        task_select = "random" if bench.kind == "MT" else "pseudorandom"
        goal_sets = _benchmark_tasks(bench, self.seed, observable, int(opts.num_goals))
        thunks = []
        for i in range(num_envs):
            name = bench.task_names[self._task_ids[i]]
            env_tasks = goal_sets[name]
            if bench.kind == "ML":  # Meta-World's meta-batch split: the envs of one task share out its goals
                env_tasks = env_tasks[i // num_tasks::per_task]
            thunks.append(_Thunk(D.ALL_V3_ENVIRONMENTS[name], list(env_tasks), _derived_seed(self.seed, i), i,
                                 task_select, opts, terminate, None if goals is None else goals[i]))
        mode = gym.vector.AutoresetMode.SAME_STEP
        if opts.vector_strategy == "sync":
            self._vec = gym.vector.SyncVectorEnv(thunks, autoreset_mode=mode)
        else:
            if opts.async_context == "forkserver":  # the server imports these once; workers fork from it
                import multiprocessing

                multiprocessing.get_context("forkserver").set_forkserver_preload(
                    ["envs.metaworld.wrapper", "metaworld"])
            self._vec = gym.vector.AsyncVectorEnv(thunks, autoreset_mode=mode, context=opts.async_context)
        self._stats = EpisodeStats(num_envs)
        self._ep_success = np.zeros(num_envs, bool)  # [B] success at any step of the current episode
        self._goals = np.zeros((num_envs, 3), np.float32)  # [B, 3] current target of each env
        self._needs_reset = True

    # ------------------------------------------------------------------ helpers
    def _resolve_goals(self, context: Mapping[str, Any]) -> np.ndarray:
        goals = self.spec.resolve_context(context, self.num_envs).astype(np.float64)  # [B, 3]
        _check_goals(self.bench, goals, self._task_ids)
        return goals

    def _sync_envs(self) -> list | None:
        return self._vec.envs if self.options.vector_strategy == "sync" else None

    def _read_goals(self, rows: np.ndarray | None = None) -> None:
        """Refresh ``self._goals`` (all rows, or the boolean mask ``rows``) from the simulators."""
        envs = self._sync_envs()
        if envs is not None:  # in-process: direct attribute reads, no copies of the whole state
            idx = range(self.num_envs) if rows is None else np.flatnonzero(rows)
            for i in idx:
                self._goals[i] = envs[i].current_goal()
        else:
            goals = np.stack(self._vec.call("current_goal"))  # one round trip to all workers
            if rows is None:
                self._goals[:] = goals
            else:
                self._goals[rows] = goals[rows]

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32)  # [B, 39]
        if self._one_hot is not None:
            obs = np.concatenate([obs, self._one_hot], axis=1)  # [B, 39 + T]
        return obs

    def _check_open(self) -> None:
        if self._vec is None:
            raise RuntimeError(f"{self.spec.env_id}: the environment is closed")

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None) -> TimeStep:
        """Reset every env (ML envs draw a new task on their first reset and after ``sample_tasks``)."""
        self._check_open()
        if seed is not None:
            self._vec.call("reseed", np.array([_derived_seed(seed, i) for i in range(self.num_envs)]))
        obs, _ = self._vec.reset()
        self._read_goals()
        self._stats.reset()
        self._ep_success[:] = False
        self._needs_reset = False
        obs = self._observe(obs)
        zeros_f = np.zeros(self.num_envs, np.float32)
        zeros_b = np.zeros(self.num_envs, bool)
        return TimeStep(obs, zeros_f, zeros_b, zeros_b.copy(), self._task_ids.copy(), self._goals.copy(),
                        {"final_observation": obs.copy(), "episode_return": zeros_f.copy(),
                         "episode_length": np.zeros(self.num_envs, np.int32), "success": zeros_b.copy(),
                         "episode_success": zeros_b.copy()})

    def step(self, actions: Any) -> TimeStep:
        """Step with ``actions`` [B, 4] in [-1, 1] (clipped); finished envs reset in the same step."""
        self._check_open()
        if self._needs_reset:
            raise RuntimeError(f"{self.spec.env_id}: call reset() before step()")
        actions = np.asarray(actions, np.float32)
        if actions.shape != (self.num_envs, ACTION_DIM):
            raise ValueError(f"{self.spec.env_id}: actions must have shape ({self.num_envs}, {ACTION_DIM}) "
                             f"[num_envs, action_dim], got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError(f"{self.spec.env_id}: actions contain NaN/inf")
        actions = np.clip(actions, -1.0, 1.0)  # a copy: never write into the caller's array

        obs, reward, terminated, truncated, infos = self._vec.step(actions)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool)
        done = terminated | truncated  # [B]
        reward = np.asarray(reward, np.float32)
        success = np.zeros(self.num_envs, bool)  # [B]
        if "success" in infos:  # rows that reset this step carry the reset info here, fixed below
            success[:] = np.asarray(infos["success"]) > 0
        obs = self._observe(obs)
        final_obs = obs
        if done.any():
            final_obs = obs.copy()
            rows = np.flatnonzero(done)
            final_raw = np.stack([infos["final_obs"][i] for i in rows]).astype(np.float32)  # [D, 39]
            if self._one_hot is not None:
                final_raw = np.concatenate([final_raw, self._one_hot[rows]], axis=1)  # [D, 39 + T]
            final_obs[rows] = final_raw
            success[rows] = np.asarray(infos["final_info"]["success"])[rows] > 0
            self._read_goals(done)
        ep_return, ep_length = self._stats.update(reward, done)
        self._ep_success |= success
        ep_success = self._ep_success.copy()
        self._ep_success[done] = False
        return TimeStep(obs, reward, terminated, truncated, self._task_ids.copy(), self._goals.copy(),
                        {"final_observation": final_obs, "episode_return": ep_return, "episode_length": ep_length,
                         "success": success, "episode_success": ep_success})

    def sample_tasks(self) -> None:
        """ML: every env switches to its next goal (Meta-World's pseudo-random order) at its next reset.

        MT envs already draw a random goal on every reset, so this only matters for ML benchmarks.
        """
        self._check_open()
        self._vec.call("request_new_task")

    def set_goals(self, context: Mapping[str, float | Sequence[float]] | None) -> None:
        """Fix (or with None/{} release) the goals; takes effect at each env's next reset."""
        self._check_open()
        goals = self._resolve_goals(context) if context else None
        self._vec.call("set_goal", goals)

    @property
    def render_fps(self) -> float:
        """Real-time env steps per second (Meta-World's metadata: 1 / (frame_skip * MuJoCo timestep) = 80)."""
        self._check_open()
        return float(self._vec.metadata["render_fps"])

    def render(self) -> np.ndarray:
        """RGB frames ``[B, H, W, 3]`` uint8 from ``options.camera`` (software EGL: slow, ~7 fps at 128x128)."""
        self._check_open()
        frames = np.stack([np.asarray(f, np.uint8) for f in self._vec.call("render")])  # [B, H, W, 3]
        flip = self.options.flip_frames
        if flip is None:
            flip = self.options.camera.startswith("corner")
        return np.ascontiguousarray(frames[:, ::-1]) if flip else frames

    def close(self) -> None:
        vec, self._vec = getattr(self, "_vec", None), None
        if vec is not None:
            vec.close()


@dataclasses.dataclass(frozen=True)
class _Thunk:
    """A picklable zero-argument env constructor (gymnasium vector envs take a list of these)."""

    env_cls: type
    tasks: list
    seed: int
    index: int
    task_select: str
    opts: MetaWorldOptions
    terminate_on_success: bool
    goal: np.ndarray | None

    def __call__(self):
        return _make_one(self.env_cls, self.tasks, self.seed, self.index, self.task_select, self.opts,
                         self.terminate_on_success, self.goal)
