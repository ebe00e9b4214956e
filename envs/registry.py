"""Environment ids -> factories. Env ids are the one place string lookup is used (the gymnasium convention).

Each family module registers its ids with a factory that imports the heavy simulator package lazily, so
``import envs`` stays cheap and an id can be listed even when its optional extra is not installed.
"""
from __future__ import annotations

import dataclasses
import difflib
import numbers
from typing import Any, Callable, Mapping

from envs.base import BatchedEnv


@dataclasses.dataclass(frozen=True)
class EnvEntry:
    env_id: str
    factory: Callable[..., BatchedEnv]  # factory(num_envs=, seed=, context=, **options) -> BatchedEnv
    family: str
    extra: str | None = None  # pyproject extra that provides the simulator, for the install hint
    description: str = ""
    spec_fn: Callable[..., Any] | None = None  # spec_fn(**options) -> EnvSpec without building simulators


_REGISTRY: dict[str, EnvEntry] = {}


def register(env_id: str, factory: Callable[..., BatchedEnv], *, family: str, extra: str | None = None,
             description: str = "", spec_fn: Callable[..., Any] | None = None) -> None:
    if env_id in _REGISTRY:
        raise ValueError(f"environment id {env_id!r} registered twice")
    _REGISTRY[env_id] = EnvEntry(env_id, factory, family, extra, description, spec_fn)


def list_ids(family: str | None = None) -> list[str]:
    return sorted(k for k, e in _REGISTRY.items() if family is None or e.family == family)


def entry(env_id: str) -> EnvEntry:
    if env_id not in _REGISTRY:
        prefix = env_id.rsplit("/", 1)[0] + "/" if env_id.count("/") >= 2 else None
        siblings = sorted(k for k in _REGISTRY if prefix and k.startswith(prefix))
        if 0 < len(siblings) <= 12:  # a small namespace such as traffic/resco/<name>: list every allowed name
            raise ValueError(f"unknown environment id {env_id!r}; allowed: {', '.join(siblings)}")
        close = difflib.get_close_matches(env_id, list(_REGISTRY), n=5, cutoff=0.5)
        if not close:  # fall back to ids sharing the family prefix or name
            tail = env_id.split("/")[-1].lower()
            close = [k for k in _REGISTRY if tail and tail in k.lower()][:5]
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(f"unknown environment id {env_id!r}.{hint} Run `omnitask envs` to list all ids.")
    return _REGISTRY[env_id]


def make(env_id: str, num_envs: int = 1, seed: int = 0, context: Mapping[str, Any] | None = None,
         **options: Any) -> BatchedEnv:
    """Build ``num_envs`` copies of ``env_id``.

    ``context`` maps context-variable names to a scalar (all envs) or one value per env; values outside the
    declared ranges are refused. ``options`` are family-specific (e.g. Atari ``protocol='dqn'``).
    """
    e = entry(env_id)
    if isinstance(num_envs, bool) or not isinstance(num_envs, numbers.Integral) or int(num_envs) < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    try:
        return e.factory(num_envs=int(num_envs), seed=int(seed), context=context, **options)
    except ModuleNotFoundError as err:
        if e.extra:
            raise ModuleNotFoundError(
                f"{env_id} needs the '{e.extra}' extra: pip install 'omnitask[{e.extra}]' ({err})") from err
        raise


def spec(env_id: str, **options: Any):
    """The EnvSpec of ``env_id`` (cheaply when the family can tell it without building simulators)."""
    e = entry(env_id)
    if e.spec_fn is not None:
        return e.spec_fn(**options)
    env = make(env_id, num_envs=1, **options)
    try:
        return env.spec
    finally:
        env.close()
