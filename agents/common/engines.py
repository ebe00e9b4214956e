"""The two ways an agent runs, written once (as Stoix separates its anakin and sebulba systems).

* ``JaxEngine`` -- JAX-native envs: rollout and update in one jitted ``lax.scan`` (the agent's ``chunk``), the
  evaluation one episode per context row inside jit. The whole run state, env states included, is one pytree.
* ``HostEngine`` -- host simulators (Atari, Meta-World, SUMO): a Python loop around jitted ``act``/``update``
  functions. The engine owns the training env and its current observation, the episode bookkeeping (``episode_over``:
  a game over, not a lost life), the lazily made evaluation env and the evaluation loop. Simulator state cannot be
  checkpointed: a resumed run resets the envs from ``seed + env_steps``. Its env part, ``HostLoop``, also serves
  agents that keep their own trainer (ScaleZero's collection, whose policy is a search over per-env histories).

Both implement the run loop's trainer contract (``init / train_step / evaluate / policy / close``, see
``omnitask.runner``), which owns the stop/save rules: it stops only between two ``train_step`` calls and saves the
state the last one returned (never an argument a jitted step donated). An agent supplies pure functions only:
``JaxAgent`` or ``HostAgent`` below.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.common.jax_eval import run_episodes
from agents.common.trainer_utils import evaluate_host, mean_metrics, seed_from_key
from envs.timestep import episode_over
from omnitask.mesh import DataParallel
from omnitask.schema import ConfigError


class JaxAgent(NamedTuple):
    """What an agent gives the JAX-native engine (all pure, all jittable)."""

    init: Callable  # (key, contexts [B, C]) -> run state (learner + env states + keys + counters)
    chunk: Callable  # run state -> (run state, metrics stacked over the chunk's iterations)
    steps_per_chunk: int  # env steps one ``chunk`` consumes (summed over envs)
    act: Callable  # (params, obs [B, ...], key) -> env actions [B, ...] of the evaluation policy
    params_of: Callable  # run state -> the params ``act`` takes
    # prefix tree of the run state: the env-batch axis of each subtree (None: replicated); split over ``run.mesh``
    batch_axes: Any = None


def _check_divisible(num_envs: int, dp: DataParallel) -> None:
    if num_envs % dp.size:
        raise ConfigError(f"env.num_envs={num_envs} cannot be split over run.mesh data={dp.size} devices; use a "
                          f"multiple of {dp.size}")


class JaxEngine:
    """Trainer contract over a ``JaxBatchedEnv``; resuming continues bit-for-bit."""

    jax_native = True

    def __init__(self, env, agent: JaxAgent, mesh: DataParallel | None = None, **parts: Any):
        """``mesh``: the run's ``DataParallel`` (``run.mesh``): env states and batches split over its ``data``
        axis as ``agent.batch_axes`` says, everything else replicated; ``None``: one device."""
        self.env, self.spec, self.agent, self.num_envs = env, env.spec, agent, env.num_envs
        self.dp = mesh or DataParallel(None)
        _check_divisible(self.num_envs, self.dp)
        self.__dict__.update(parts)  # the agent's own pieces (learner, config) for tests and tools
        # Without a mesh ``init`` stays eager (as ever); on a mesh it is jitted so that every process computes the
        # shards of its own devices (multi-process runs).
        self._init = agent.init if self.dp.mesh is None else self.dp.jit(agent.init, out_axes=agent.batch_axes)
        self._chunk = self.dp.jit(agent.chunk, out_axes=(agent.batch_axes, None))
        max_steps = int(self.spec.max_episode_steps or 1000)
        self._evaluate = self.dp.jit(lambda params, contexts, key: run_episodes(
            lambda obs, k: agent.act(params, obs, k), env.fns, contexts, key, max_steps), out_axes=None)

    def init(self, key: jax.Array):
        return self._init(key, self.env.context)

    def state_template(self, key: jax.Array):
        """Shapes, dtypes and (on a mesh) shardings of ``init(key)``, allocating nothing (checkpoint restores)."""
        if self.dp.mesh is None:
            return jax.eval_shape(self.init, key)
        return self._init.eval_shape(key, self.env.context)

    def train_step(self, state):
        state, metrics = self._chunk(state)
        return state, mean_metrics(jax.device_get(metrics)), self.agent.steps_per_chunk

    def evaluate(self, state, num_episodes: int, key: jax.Array) -> dict[str, float]:
        """Mean return (and length, success rate) over ``num_episodes`` episodes, cycling the training contexts."""
        rows = np.asarray(self.env.context)[np.arange(num_episodes) % self.num_envs]  # [E, C]
        out = jax.device_get(self._evaluate(self.agent.params_of(state), jnp.asarray(rows), key))
        return {"return_mean": float(out["return"].mean()), "return_std": float(out["return"].std()),
                "length_mean": float(out["length"].mean()), "success_rate": float(out["success"].mean())}

    def policy(self, state):
        """The evaluation policy as ``(observation [B, ...], key) -> env actions [B, ...]`` (eval videos)."""
        return _host_policy(self.agent.act, self.agent.params_of(state))

    def close(self) -> None:
        self.env.close()


class HostAgent(NamedTuple):
    """What an agent gives the host engine."""

    init: Callable  # key -> (state, key to reset the simulators with); the state holds no simulator state
    chunk: Callable  # (state, engine: HostEngine) -> (state, metrics dict, env steps); steps ``engine``
    act: Callable  # (params, obs [B, ...], key) -> env actions [B, ...] of the evaluation policy (pure)
    params_of: Callable  # state -> the params ``act`` takes
    env_steps_of: Callable  # state -> env steps taken so far (seeds the reset after a resume)
    batch_axes: Any = None  # prefix tree of the state: the env-batch axis of each subtree (None: replicated)


class HostLoop:
    """A host ``BatchedEnv`` with its current observation, its reset rule and the episode bookkeeping (the part of
    the host engine that agents with their own trainer, e.g. ScaleZero's collection, use directly)."""

    def __init__(self, env, seed: int):
        """``env``: the env, or a zero-argument function making it on first use; ``seed``: the run's env seed."""
        self._env, self._make_env = (None, env) if callable(env) else (env, None)
        self.seed = int(seed)
        self.obs = None  # [B, ...] observation to act on next; None until reset
        self._reset_key = None  # set by a fresh init: the first reset draws its seed from this key
        self._returns: list[float] = []
        self._lengths: list[float] = []

    @property
    def env(self):
        if self._env is None:
            self._env = self._make_env()
        return self._env

    def reset(self, seed: int):
        """Reset every env with ``seed``; returns the TimeStep."""
        ts = self.env.reset(seed=int(seed))
        self.obs, self._reset_key = ts.observation, None
        return ts

    def current_observation(self, env_steps: int) -> np.ndarray:
        """The observation to act on; the first call after a fresh init (or a resume) resets the simulators."""
        if self.obs is None:  # resumed from a checkpoint: a seeded reset (simulator state is not checkpointed)
            self.reset(seed_from_key(self._reset_key) if self._reset_key is not None else self.seed + int(env_steps))
        return self.obs

    def step(self, actions: np.ndarray):
        """Step every env, keep the new observation and record the episodes that ended (game over)."""
        ts = self.env.step(actions)
        ended = episode_over(ts)
        self._returns.extend(np.asarray(ts.info["episode_return"])[ended].tolist())
        self._lengths.extend(np.asarray(ts.info["episode_length"])[ended].tolist())
        self.obs = ts.observation
        return ts

    def episode_metrics(self, prefix: str = "train/") -> dict[str, float]:
        """Count, mean return and mean length of the episodes ended since the last call."""
        out = {f"{prefix}episodes": float(len(self._returns))}
        if self._returns:
            out[f"{prefix}episode_return"] = float(np.mean(self._returns))
            out[f"{prefix}episode_length"] = float(np.mean(self._lengths))
        self._returns, self._lengths = [], []
        return out

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
        self._env = None


class HostEngine(HostLoop):
    """Trainer contract over a host ``BatchedEnv``: the agent's ``chunk`` drives ``engine.step``."""

    jax_native = False

    def __init__(self, env, agent: HostAgent, seed: int, make_eval_env: Callable[[int], Any] | None,
                 eval_max_steps: int, mesh: DataParallel | None = None, **parts: Any):
        """``env``: the training env or a zero-argument function making it on first use; ``make_eval_env(n)``:
        an evaluation env of ``n`` envs, made on the first evaluation; ``mesh``: the run's ``DataParallel`` (the
        state is placed on it as ``agent.batch_axes`` says; the jitted updates follow their inputs' shardings)."""
        super().__init__(env, seed)
        self.agent, self.eval_max_steps = agent, int(eval_max_steps)
        self.dp = mesh or DataParallel(None)
        self.__dict__.update(parts)  # the agent's own pieces (learner, config) for tests and tools
        self._make_eval_env, self._eval_env = make_eval_env, None
        self._act = jax.jit(agent.act)

    def init(self, key: jax.Array):
        """Fresh state; the simulators are reset from ``key`` before the first step. Under ``jax.eval_shape``
        (checkpoint templates) only shapes are computed and no simulator is touched."""
        state, k_env = self.agent.init(key)
        if not isinstance(k_env, jax.core.Tracer):
            self._reset_key, self.obs = k_env, None
            if self.dp.mesh is not None:
                _check_divisible(self.env.num_envs, self.dp)
            state = self.dp.put(state, self.agent.batch_axes)
        return state

    def state_template(self, key: jax.Array):
        """Shapes, dtypes and (on a mesh) shardings of ``init(key)`` (checkpoint restores)."""
        shapes = jax.eval_shape(self.init, key)
        if self.dp.mesh is None:
            return shapes
        return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes,
                            self.dp.shardings(shapes, self.agent.batch_axes))

    def train_step(self, state):
        with self.dp.active():  # ``shard_batch`` in the agent's jitted updates sees the mesh while tracing
            return self.agent.chunk(state, self)

    def evaluate(self, state, num_episodes: int, key: jax.Array) -> dict[str, float]:
        """``num_episodes`` episodes of the evaluation policy on the evaluation env (``env.eval_options``)."""
        if self._eval_env is None:
            self._eval_env = self._make_eval_env(int(num_episodes))
        return evaluate_host(self._eval_env, self.policy(state), num_episodes, key, self.eval_max_steps)

    def policy(self, state):
        """The evaluation policy as ``(observation [B, ...], key) -> env actions [B, ...]`` (eval videos)."""
        return _host_policy(self.agent.act, self.agent.params_of(state), self._act)

    def observation(self, state) -> np.ndarray:
        """The observation to act on (resets the simulators first when needed, see ``HostLoop``)."""
        return self.current_observation(self.agent.env_steps_of(state))

    def close(self) -> None:
        super().close()
        if self._eval_env is not None:
            self._eval_env.close()
        self._eval_env = None


def _host_policy(act: Callable, params: Any, jitted: Callable | None = None):
    """``act`` with fixed params as ``(obs, key) -> writable numpy actions`` (some envs clip in place)."""
    jitted = jitted or jax.jit(act)
    return lambda obs, key: np.array(jitted(params, jnp.asarray(obs), key))
