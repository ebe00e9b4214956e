"""omnitask environments: one batched API (``envs.make``) over Atari, Meta-World, traffic and gymnax families.

See ``envs.timestep`` for the TimeStep pytree and the autoreset semantics, ``envs.spec`` for EnvSpec.
"""
from envs.base import BatchedEnv, EpisodeStats
from envs.registry import list_ids, make, register, spec
from envs.spec import ArraySpec, BoxActionSpec, ContextVar, DiscreteActionSpec, EnvSpec
from envs.timestep import TimeStep, check_timestep, episode_over

# Family modules register their ids on import; heavy simulator imports happen inside their factories.
from envs import classic as _classic  # noqa: E402,F401
from envs import minatar as _minatar  # noqa: E402,F401

for _optional in ("envs.atari", "envs.metaworld", "envs.traffic"):
    try:
        __import__(_optional)
    except ModuleNotFoundError as _err:  # family not written yet / package absent: its ids are simply not listed
        if _err.name != _optional:
            raise

__all__ = ["ArraySpec", "BatchedEnv", "BoxActionSpec", "ContextVar", "DiscreteActionSpec", "EnvSpec",
           "EpisodeStats", "TimeStep", "check_timestep", "episode_over", "list_ids", "make", "register", "spec"]
