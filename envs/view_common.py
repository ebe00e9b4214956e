"""What the gymnasium and PettingZoo views share: building the batched env, spaces from an EnvSpec, refusals.

The views are host-side adapters over a ``BatchedEnv`` (numpy in, numpy out). They cannot run inside ``jax.jit`` /
``vmap``: a traced action is refused with a one-line error pointing at the pure functions that can.
"""
from __future__ import annotations

import re
import sys
from typing import Any, Mapping

import numpy as np

from envs.base import BatchedEnv
from envs.spec import BoxActionSpec, DiscreteActionSpec, EnvSpec

# Signals per simulation of the multi-signal traffic ids, for views built from an id (the factory needs num_envs =
# a multiple of it). A factory can declare it itself with a ``signals_per_sim`` attribute (checked first).
_GRID_ID = re.compile(r"traffic/signal-(\d+)x(\d+)$")
_RESCO_SIGNALS = {"cologne1": 1, "cologne3": 3, "cologne8": 8, "ingolstadt1": 1, "ingolstadt7": 7,
                  "ingolstadt21": 21, "grid4x4": 16, "arterial4x4": 16}  # RESCO (Ault & Sharon 2021), Table 1


def signals_per_simulation(env_id: str) -> int:
    """Agents (traffic signals) stepped together in one simulation of ``env_id``; 1 for every other id."""
    from envs.registry import entry

    declared = getattr(entry(env_id).factory, "signals_per_sim", None)
    if declared is not None:
        return int(declared)
    grid = _GRID_ID.match(env_id)
    if grid:
        return int(grid.group(1)) * int(grid.group(2))
    if env_id.startswith("traffic/resco/"):
        return _RESCO_SIGNALS.get(env_id.rsplit("/", 1)[-1], 1)
    return 1


def agents_per_simulation(env: BatchedEnv) -> int:
    """Agents of a built env that share one simulation (and so must be stepped together); 1 for independent envs."""
    return int(getattr(env, "agents_per_sim", 1))


def build_env(env_or_id: Any, num_envs: int, seed: int, context: Mapping[str, Any] | None,
              options: Mapping[str, Any], view: str) -> BatchedEnv:
    """``envs.make(env_or_id, ...)`` for an id; a built ``BatchedEnv`` is used as it is (then no make arguments)."""
    from envs.registry import make

    if isinstance(env_or_id, str):
        return make(env_or_id, num_envs=num_envs, seed=seed, context=context, **options)
    if isinstance(env_or_id, BatchedEnv):
        if context is not None or options:
            raise ValueError(f"{view}: context/options are make() arguments; they apply to an env id, not to an "
                             f"already built {type(env_or_id).__name__} (pass the id instead)")
        return env_or_id
    if type(env_or_id).__name__ == "JaxEnvFunctions":
        raise TypeError(f"{view}: got pure JAX env functions (JaxEnvFunctions); a gymnasium/PettingZoo view runs on the "
                        "host: pass the env id (or envs.make(...)), and keep the pure functions for jitted loops")
    raise TypeError(f"{view}: expected an env id (str) or an envs.BatchedEnv, got {type(env_or_id).__name__}")


def refuse_tracers(value: Any, view: str) -> None:
    """Raise a clear TypeError when ``value`` holds JAX tracers (the view was called inside jit/vmap/grad)."""
    jax = sys.modules.get("jax")
    if jax is None:
        return
    leaves = jax.tree_util.tree_leaves(value)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        raise TypeError(f"{view}: called with traced JAX values (inside jax.jit/vmap/scan); gymnasium and PettingZoo "
                        "views step host simulators and cannot be traced: call them outside jit, or use the pure "
                        "JAX functions (envs.classic.classic_functions, envs.jax_env.JaxEnvFunctions) inside it")


def single_spaces(spec: EnvSpec):
    """(observation space, action space) of one env as gymnasium spaces (Box / Discrete) from its EnvSpec."""
    from gymnasium import spaces

    obs = spec.observation
    dtype = np.dtype(obs.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low = info.min if obs.low is None else obs.low
        high = info.max if obs.high is None else obs.high
    else:
        low = -np.inf if obs.low is None else obs.low
        high = np.inf if obs.high is None else obs.high
    observation_space = spaces.Box(low=low, high=high, shape=tuple(obs.shape), dtype=dtype)
    act = spec.action
    if isinstance(act, DiscreteActionSpec):
        action_space = spaces.Discrete(act.num_actions)
    elif isinstance(act, BoxActionSpec):
        action_space = spaces.Box(low=act.low, high=act.high, shape=tuple(act.shape), dtype=np.float32)
    else:  # a new ActionSpec kind must get its space here
        raise TypeError(f"{spec.env_id}: no gymnasium space for action spec {type(act).__name__}")
    return observation_space, action_space


def row(info: Mapping[str, Any], b: int) -> dict[str, Any]:
    """The info of agent/env ``b`` from a batch-leading info dict (numpy scalars become Python numbers)."""
    out = {}
    for key, value in info.items():
        item = np.asarray(value)[b]
        out[key] = item.item() if item.ndim == 0 else item
    return out
