"""Pure-JAX access to the PVN experiment's environment: ``(EnvSpec, JaxEnvFunctions, batched params)``.

JAX-native ids (``classic/*``, ``minatar/*`` from ``envs.minatar``) go through ``envs.functional.jax_functions``,
the suite's env API.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from envs.functional import jax_functions
from envs.jax_env import JaxEnvFunctions
from envs.spec import EnvSpec


def jax_env(env_id: str, num_envs: int, context: dict | None = None, options: dict | None = None
            ) -> tuple[EnvSpec, JaxEnvFunctions, Any]:
    """Spec, pure functions and ``[num_envs]``-batched env params for a JAX-native env id.

    Raises ValueError naming the id when it is a host simulator (PVN's online phase runs inside jit).
    """
    out = jax_functions(env_id, **dict(options or {}))  # unknown ids: the registry's error with close matches
    if out is None:
        raise ValueError(f"{env_id} is a host-simulator env; PVN's in-jit online loop needs a JAX-native env "
                         "(PVNTrainer runs host envs on the DQN baseline's host loop: agents.pvn.host)")
    spec, fns = out
    ctx = spec.resolve_context(context, num_envs)  # [E, C]
    params = jax.vmap(fns.params_from_context)(jnp.asarray(ctx))
    return spec, fns, params


def observation_dtype_ok(spec: EnvSpec) -> None:
    """PVN stores and hashes uint8 pixels; float observations that are not pixels are refused early."""
    if np.dtype(spec.observation.dtype) not in (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(bool)):
        raise ValueError(f"{spec.env_id}: observation dtype {spec.observation.dtype} unsupported; PVN needs pixels")
    if len(spec.observation.shape) != 3:
        raise ValueError(f"{spec.env_id}: observation shape {spec.observation.shape} is not [H, W, C] pixels; "
                         "PVN's conv encoders need image observations")
