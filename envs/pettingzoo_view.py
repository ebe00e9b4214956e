"""PettingZoo view of the multi-signal traffic ids: ``as_pettingzoo`` -> a ``pettingzoo.ParallelEnv``.

One simulation, one agent per traffic signal, agents named by the signal ids of the SUMO network (``J0_0``, ...).
Every agent has the same spaces (the suite's per-agent spec); a per-agent action mask that an id puts in its info
(heterogeneous phase sets padded to one action space) is in that agent's info.
All signals of a simulation end their episodes together: the step that ends the episode returns each agent's last
observation and empties ``agents``; the batched env has already started the next episode (same-step autoreset), so
the following ``reset()`` (without seed) returns its first observations at no extra simulation cost.
Per-agent info: the suite's info row of that agent (``final_observation``, ``episode_return``, ``queue``, ...), plus
``task_id`` and ``context``. Seeding as in gymnasium: ``reset(seed=s)`` re-seeds, ``reset()`` continues the stream.
Reset ``options`` are accepted and ignored. Single-agent ids (``traffic/signal-1x1``, classic, Atari, ...) have no
PettingZoo view: use ``as_gymnasium``.
"""
from __future__ import annotations

import numbers
from typing import Any, Mapping
from xml.etree import ElementTree

import numpy as np
from pettingzoo.utils.env import ParallelEnv

from envs.base import BatchedEnv
from envs.view_common import agents_per_simulation, build_env, refuse_tracers, row, signals_per_simulation, single_spaces


def as_pettingzoo(env_or_id: str | BatchedEnv, seed: int = 0, context: Mapping[str, Any] | None = None,
                  **options: Any) -> "PettingZooParallelView":
    """A PettingZoo ``ParallelEnv`` over one simulation of a multi-signal traffic id (or a built env of one
    simulation, e.g. ``envs.make('traffic/signal-2x2', num_envs=4)``). Closing the view closes the env."""
    if isinstance(env_or_id, str):
        signals = signals_per_simulation(env_or_id)
        if signals < 2:
            raise ValueError(f"as_pettingzoo: {env_or_id} has one agent per simulation, so a multi-agent view adds "
                             f"nothing: use envs.as_gymnasium({env_or_id!r}); as_pettingzoo serves the multi-signal "
                             "traffic ids (traffic/signal-2x2, traffic/signal-3x3, RESCO networks)")
        return PettingZooParallelView(build_env(env_or_id, signals, seed, context, options, "as_pettingzoo"))
    return PettingZooParallelView(build_env(env_or_id, 1, seed, context, options, "as_pettingzoo"))


def signal_ids(env: BatchedEnv) -> list[str]:
    """Names of the agents of one simulation: ``env.signal_ids`` if the env declares them, else the traffic-light
    ids of its SUMO network sorted (the order ``envs.traffic.signal`` gives its lights), else ``signal_<k>``."""
    count = agents_per_simulation(env)
    ids = getattr(env, "signal_ids", None)
    if ids is None:
        cfgs = getattr(getattr(env, "pool", None), "cfgs", None) or [None]
        net_file = getattr(cfgs[0], "net_file", None)
        if net_file is not None:
            ids = sorted({el.get("id") for _, el in ElementTree.iterparse(net_file) if el.tag == "tlLogic"})
    ids = [str(i) for i in ids] if ids is not None else []
    if len(ids) != count or len(set(ids)) != count:
        ids = [f"signal_{k}" for k in range(count)]
    return ids


class PettingZooParallelView(ParallelEnv):
    """``ParallelEnv`` over a ``BatchedEnv`` holding exactly one multi-agent simulation (see module docstring)."""

    def __init__(self, env: BatchedEnv):
        count = agents_per_simulation(env)
        view = f"as_pettingzoo({env.spec.env_id})"
        if count < 2:
            raise ValueError(f"{view}: the env has one agent per simulation; a multi-agent view needs a "
                             "multi-signal traffic env (use envs.as_gymnasium for this one)")
        if env.num_envs != count:
            raise ValueError(f"{view}: a ParallelEnv is one simulation of {count} agents, but the env has "
                             f"num_envs={env.num_envs} ({env.num_envs // count} simulations); build it with "
                             f"num_envs={count}, or use envs.as_gymnasium(env) for the whole batch")
        self.env = env
        self._view = view
        self.possible_agents = signal_ids(env)
        self.agents: list[str] = []
        self.metadata = {"name": "omnitask_" + env.spec.env_id.replace("/", "_"), "render_modes": [],
                         "is_parallelizable": True}
        self.render_mode = None
        self._spaces = {agent: single_spaces(env.spec) for agent in self.possible_agents}  # one object per agent
        self._next_episode: tuple[np.ndarray, dict] | None = None  # started by the autoreset at the episode end
        self._closed = False

    def observation_space(self, agent: str):
        return self._spaces[agent][0]  # the same object on every call (PettingZoo's API test checks it)

    def action_space(self, agent: str):
        return self._spaces[agent][1]

    def _split(self, obs: np.ndarray, info: dict, task_id, context):
        obs_by_agent = {agent: obs[k] for k, agent in enumerate(self.possible_agents)}
        info_by_agent = {}
        for k, agent in enumerate(self.possible_agents):
            info_by_agent[agent] = row(info, k)
            info_by_agent[agent].update(task_id=int(task_id[k]), context=context[k])
        return obs_by_agent, info_by_agent

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
            raise ValueError(f"{self._view}: reset(seed=) must be one int or None, got {seed!r}")
        if seed is None and self._next_episode is not None:
            obs, infos = self._next_episode
        else:
            ts = self.env.reset(None if seed is None else int(seed))
            obs, infos = self._split(ts.observation, {}, ts.task_id, ts.context)
        self._next_episode = None
        self.agents = list(self.possible_agents)
        return obs, infos

    def step(self, actions: Mapping[str, Any]):
        refuse_tracers(actions, self._view)
        if not self.agents:
            raise RuntimeError(f"{self._view}: no live agents (the episode is over or reset() was not called); "
                               "call reset()")
        if not isinstance(actions, Mapping) or set(actions) != set(self.agents):
            got = sorted(actions) if isinstance(actions, Mapping) else type(actions).__name__
            raise ValueError(f"{self._view}: actions must be a dict with one action per live agent "
                             f"{self.agents}, got {got}")
        ts = self.env.step(np.stack([np.asarray(actions[a]) for a in self.possible_agents]))
        done = bool(np.any(ts.terminated | ts.truncated))  # the agents of one simulation end together
        obs, infos = self._split(ts.info["final_observation"] if done else ts.observation, ts.info, ts.task_id,
                                 ts.context)
        rewards = {a: float(ts.reward[k]) for k, a in enumerate(self.possible_agents)}
        terminated = {a: bool(ts.terminated[k]) for k, a in enumerate(self.possible_agents)}
        truncated = {a: bool(ts.truncated[k]) for k, a in enumerate(self.possible_agents)}
        if done:
            self._next_episode = self._split(ts.observation, {}, ts.task_id, ts.context)
            self.agents = []
        return obs, rewards, terminated, truncated, infos

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.close()

    def __repr__(self) -> str:
        return f"PettingZooParallelView({self.env.spec.env_id}, agents={self.possible_agents})"
