"""Gymnasium views of any suite env: ``as_gymnasium`` (a ``gymnasium.vector.VectorEnv``) and ``as_gymnasium_env``
(a single ``gymnasium.Env``), so agents written for gymnasium (Stable-Baselines3, CleanRL, ...) run unchanged.

Vector view (``as_gymnasium(env_or_id, num_envs=B)``): the batched env as it is. ``metadata['autoreset_mode']`` is
``AutoresetMode.SAME_STEP`` (the suite's semantics, ``envs.timestep``): on a step where env ``i`` ends, the returned
observation is already the next episode's first one and the last one is in ``info['final_obs'][i]`` (gymnasium's
key; an object array with ``info['_final_obs']`` as mask) and in the suite's ``info['final_observation']`` [B, ...].
Every suite info key is kept (batch-leading arrays), plus ``info['task_id']`` [B] and ``info['context']`` [B, C]
(context variables in ``spec.context_vars`` order).

Single view (``as_gymnasium_env(env_or_id)``, or ``as_gymnasium(..., vector=False)``): one env, plain gymnasium
episodes. The step that ends an episode returns the episode's last observation; the batched env has then already
started the next episode, and the following ``reset()`` (without seed) returns its first observation without
simulating anything more. Multi-signal traffic ids (``traffic/signal-2x2``, ...) have no single view (one signal
cannot step while its neighbours wait): use ``as_pettingzoo`` or the vector view (one sub-env per signal).

Seeding (gymnasium's): ``reset(seed=s)`` re-seeds the batch (env ``i`` gets a stream derived from ``s`` and ``i``);
``reset()`` continues the current stream; the ``seed`` given at construction seeds the first ``reset()``.
Contexts and options go to ``envs.make`` unchanged. Reset ``options`` are accepted and ignored (no family has any).

``register_gymnasium()`` registers every suite id with gymnasium as ``omnitask/<family>.<name>`` (``/`` -> ``.``:
``omnitask/classic.CartPole-v1``, ``omnitask/metaworld.MT1.reach-v3``; gymnasium reserves ``:`` for ``module:id``), so
code that calls ``gymnasium.make`` / ``gymnasium.make_vec`` (whose default for these ids is the vector view above)
takes suite ids too.
"""
from __future__ import annotations

import functools
import numbers
from typing import Any, Mapping

import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec as GymEnvSpec
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs.base import BatchedEnv
from envs.registry import list_ids
from envs.spec import DiscreteActionSpec
from envs.view_common import (agents_per_simulation, build_env, refuse_tracers, row, signals_per_simulation,
                              single_spaces)


def as_gymnasium(env_or_id: str | BatchedEnv, num_envs: int = 1, seed: int = 0,
                 context: Mapping[str, Any] | None = None, *, vector: bool = True, **options: Any):
    """A gymnasium view of ``env_or_id`` (an id for ``envs.make``, or a built ``BatchedEnv``).

    ``vector=True``: a ``gymnasium.vector.VectorEnv`` over ``num_envs`` envs (same-step autoreset).
    ``vector=False``: a ``gymnasium.Env`` (``num_envs`` must be 1). Closing the view closes the batched env.
    """
    if not vector:
        if num_envs != 1:
            raise ValueError(f"as_gymnasium(vector=False) is one env: num_envs must be 1, got {num_envs!r} "
                             "(use vector=True for a batch)")
        return as_gymnasium_env(env_or_id, seed=seed, context=context, **options)
    return GymnasiumVectorView(build_env(env_or_id, num_envs, seed, context, options, "as_gymnasium"))


def as_gymnasium_env(env_or_id: str | BatchedEnv, seed: int = 0, context: Mapping[str, Any] | None = None,
                     **options: Any) -> "GymnasiumEnvView":
    """A single ``gymnasium.Env`` view of one env of ``env_or_id`` (see the module docstring)."""
    if isinstance(env_or_id, str):
        signals = signals_per_simulation(env_or_id)
        if signals > 1:
            raise ValueError(
                f"{env_or_id} steps {signals} traffic signals in one simulation, so it has no single-env gymnasium "
                f"view (one signal cannot act while the others wait): use envs.as_pettingzoo({env_or_id!r}) (one "
                f"agent per signal) or envs.as_gymnasium({env_or_id!r}, num_envs={signals}) (one sub-env per signal)")
        spec = GymEnvSpec(id=gymnasium_id(env_or_id), entry_point=as_gymnasium_env,
                          nondeterministic=False,
                          kwargs={"env_or_id": env_or_id, "seed": seed, "context": context, **options})
        return GymnasiumEnvView(build_env(env_or_id, 1, seed, context, options, "as_gymnasium_env"), spec)
    return GymnasiumEnvView(build_env(env_or_id, 1, seed, context, options, "as_gymnasium_env"))


def gymnasium_id(env_id: str) -> str:
    """The gymnasium id of a suite id: ``classic/CartPole-v1`` -> ``omnitask/classic.CartPole-v1``."""
    return "omnitask/" + env_id.replace("/", ".")


def register_gymnasium() -> list[str]:
    """Register every suite id with gymnasium (``gymnasium.make`` -> single view, ``make_vec`` -> vector view).

    Idempotent; returns the gymnasium ids. Multi-signal traffic ids register too: ``gymnasium.make`` of one raises
    the single view's error, ``gymnasium.make_vec(id, num_envs=<signals>)`` works.
    """
    from gymnasium.envs.registration import register, registry

    ids = []
    for env_id in list_ids():
        gym_id = gymnasium_id(env_id)
        if gym_id not in registry:
            register(gym_id, entry_point=functools.partial(as_gymnasium_env, env_id),
                     vector_entry_point=functools.partial(as_gymnasium, env_id), nondeterministic=False)
        ids.append(gym_id)
    return ids


def _one_seed(seed: Any, view: str) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return int(seed)
    raise ValueError(f"{view}: reset(seed=) must be one int or None (env i's stream is derived from it and i), "
                     f"got {seed!r}")


def _with_task(info: dict, task_id, context) -> dict:
    info["task_id"], info["context"] = task_id, context
    return info


class GymnasiumVectorView(gymnasium.vector.VectorEnv):
    """``gymnasium.vector.VectorEnv`` over a ``BatchedEnv``; see the module docstring for info keys and seeding."""

    def __init__(self, env: BatchedEnv):
        self.env = env
        self.num_envs = int(env.num_envs)
        self.single_observation_space, self.single_action_space = single_spaces(env.spec)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
        self._view = f"as_gymnasium({env.spec.env_id})"

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = _one_seed(seed, self._view)
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        ts = self.env.reset(seed)
        return ts.observation, _with_task(dict(ts.info), ts.task_id, ts.context)

    def step(self, actions):
        refuse_tracers(actions, self._view)
        ts = self.env.step(np.asarray(actions))
        info = _with_task(dict(ts.info), ts.task_id, ts.context)
        done = np.asarray(ts.terminated) | np.asarray(ts.truncated)
        final_obs = np.full(self.num_envs, None, dtype=object)  # gymnasium's SAME_STEP convention
        for i in np.flatnonzero(done):
            final_obs[i] = ts.info["final_observation"][i]
        info["final_obs"], info["_final_obs"] = final_obs, done
        return ts.observation, ts.reward, ts.terminated, ts.truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()

    def __repr__(self) -> str:
        return f"GymnasiumVectorView({self.env.spec.env_id}, num_envs={self.num_envs})"


class GymnasiumEnvView(gymnasium.Env):
    """``gymnasium.Env`` over a ``BatchedEnv`` of one env; see the module docstring for episodes and seeding."""

    metadata = {"render_modes": []}

    def __init__(self, env: BatchedEnv, spec: GymEnvSpec | None = None):
        if env.num_envs != 1:
            many = agents_per_simulation(env)
            hint = (f"its {many} agents share one simulation: use envs.as_pettingzoo or the vector view" if many > 1
                    else "use envs.as_gymnasium(env) for the vector view")
            raise ValueError(f"as_gymnasium_env({env.spec.env_id}): a single-env view needs a batch of one env, got "
                             f"num_envs={env.num_envs}; {hint}")
        self.env = env
        self.spec = spec
        self.observation_space, self.action_space = single_spaces(env.spec)
        self._discrete = isinstance(env.spec.action, DiscreteActionSpec)
        self._view = f"as_gymnasium_env({env.spec.env_id})"
        self._next_episode: tuple[np.ndarray, dict] | None = None  # started by the autoreset at the last episode end
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = _one_seed(seed, self._view)
        super().reset(seed=seed)
        if seed is None and self._next_episode is not None:
            obs, info = self._next_episode
        else:
            ts = self.env.reset(seed)
            obs, info = ts.observation[0], _with_task({}, int(ts.task_id[0]), ts.context[0])
        self._next_episode = None
        return obs, info

    def step(self, action):
        refuse_tracers(action, self._view)
        if self._next_episode is not None:
            raise RuntimeError(f"{self._view}: the episode is over; call reset() before step()")
        action = np.asarray(action)
        want = () if self._discrete else tuple(self.env.spec.action.shape)
        if action.shape != want:
            raise ValueError(f"{self._view}: action must have shape {want} (one env; action space "
                             f"{self.action_space}), got {action.shape}")
        ts = self.env.step(action[None])
        task_id, context = int(ts.task_id[0]), ts.context[0]
        info = _with_task(row(ts.info, 0), task_id, context)
        terminated, truncated = bool(ts.terminated[0]), bool(ts.truncated[0])
        obs = ts.observation[0]
        if terminated or truncated:
            self._next_episode = (obs, _with_task({}, task_id, context))
            obs = info["final_observation"]
        return obs, float(ts.reward[0]), terminated, truncated, info

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.close()

    def __repr__(self) -> str:
        return f"GymnasiumEnvView({self.env.spec.env_id})"
