"""omnitask environments: one batched API (``envs.make``) over Atari, Meta-World, traffic and gymnax families.

See ``envs.timestep`` for the TimeStep pytree and the autoreset semantics, ``envs.spec`` for EnvSpec.
``envs.as_gymnasium`` / ``as_gymnasium_env`` / ``as_pettingzoo`` give gymnasium and PettingZoo views of any id.
"""
from envs.base import BatchedEnv, EpisodeStats
from envs.registry import list_ids, make, register, spec
from envs.spec import ArraySpec, BoxActionSpec, ContextVar, DiscreteActionSpec, EnvSpec
from envs.timestep import TimeStep, check_timestep, episode_over, episode_success

# Family modules register their ids on import; heavy simulator imports happen inside their factories.
from envs import classic as _classic  # noqa: E402,F401
from envs import minatar as _minatar  # noqa: E402,F401

for _optional in ("envs.atari", "envs.metaworld", "envs.traffic"):
    try:
        __import__(_optional)
    except ModuleNotFoundError as _err:  # family not written yet / package absent: its ids are simply not listed
        if _err.name != _optional:
            raise

# The ecosystem views (envs.gymnasium_view, envs.pettingzoo_view) load on first use: PettingZoo is an optional extra.
_VIEWS = {"as_gymnasium": "envs.gymnasium_view", "as_gymnasium_env": "envs.gymnasium_view",
          "as_pettingzoo": "envs.pettingzoo_view", "register_gymnasium": "envs.gymnasium_view"}


def __getattr__(name: str):
    if name not in _VIEWS:
        raise AttributeError(f"module 'envs' has no attribute {name!r}")
    try:
        module = __import__(_VIEWS[name], fromlist=[name])
    except ModuleNotFoundError as err:
        if err.name != "pettingzoo":
            raise
        raise ModuleNotFoundError(f"envs.{name} needs PettingZoo: pip install 'omnitask[pettingzoo]' ({err})",
                                  name=err.name) from err
    return getattr(module, name)


__all__ = ["ArraySpec", "BatchedEnv", "BoxActionSpec", "ContextVar", "DiscreteActionSpec", "EnvSpec",
           "EpisodeStats", "TimeStep", "as_gymnasium", "as_gymnasium_env", "as_pettingzoo", "check_timestep",
           "episode_over", "episode_success", "list_ids", "make", "register", "register_gymnasium", "spec"]
