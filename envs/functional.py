"""The functional (pure-JAX) form of an environment id, for training loops that jit the whole rollout.

``jax_functions(env_id) -> (EnvSpec, JaxEnvFunctions)`` for JAX-native ids, ``None`` for host simulators.
"""
from __future__ import annotations

from envs.jax_env import JaxBatchedEnv, JaxEnvFunctions
from envs.registry import entry, make
from envs.spec import EnvSpec


def jax_functions(env_id: str, **options) -> tuple[EnvSpec, JaxEnvFunctions] | None:
    """Spec and single-env pure functions of a JAX-native env id, or ``None`` if ``env_id`` is a host env.

    Classic control is answered without building anything; other families are probed by building one env
    (cheap for JAX-native families, closed again at once for host ones). Unknown ids raise like ``envs.make``.
    """
    from envs.classic import CLASSIC, classic_functions

    entry(env_id)  # unknown ids: the registry's error with close matches
    if env_id in CLASSIC and not options:
        return classic_functions(CLASSIC[env_id])
    env = make(env_id, num_envs=1, seed=0, **options)
    if isinstance(env, JaxBatchedEnv):
        return env.spec, env.fns
    env.close()
    return None
