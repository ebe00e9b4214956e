"""Meta-World v3 family: registers ``metaworld/...`` ids (listing them imports neither mujoco nor metaworld).

Ids (``task`` = one of the 50 v3 task names, e.g. ``reach-v3``):
  ``metaworld/MT1/<task>``, ``metaworld/MT10``, ``metaworld/MT50``            multi-task, goal in the observation
  ``metaworld/ML1-train/<task>``, ``metaworld/ML1-test/<task>``,
  ``metaworld/ML10-train``, ``metaworld/ML10-test``, ``metaworld/ML45-train``, ``metaworld/ML45-test``
                                                                             meta-learning splits, goal hidden
The implementation lives in ``envs.metaworld.env``; options are ``envs.metaworld.env.MetaWorldOptions``.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

from envs.metaworld import tasks
from envs.registry import register

_SPLITS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {  # id suffix -> (kind, benchmark, split, task names)
    "MT10": ("MT", "MT10", "train", tasks.MT10_TASKS),
    "MT50": ("MT", "MT50", "train", tasks.MT50_TASKS),
    "ML10-train": ("ML", "ML10", "train", tasks.ML10_TRAIN_TASKS),
    "ML10-test": ("ML", "ML10", "test", tasks.ML10_TEST_TASKS),
    "ML45-train": ("ML", "ML45", "train", tasks.ML45_TRAIN_TASKS),
    "ML45-test": ("ML", "ML45", "test", tasks.ML45_TEST_TASKS),
}


def make_metaworld(env_id: str, kind: str, benchmark: str, split: str, task_names: tuple[str, ...], *,
                   num_envs: int = 1, seed: int = 0, context: Mapping[str, Any] | None = None, **options: Any):
    """Registry factory: build a ``MetaWorldEnv`` (imports metaworld/mujoco here, lazily)."""
    from envs.metaworld.env import BenchmarkDef, MetaWorldEnv

    return MetaWorldEnv(BenchmarkDef(env_id, kind, benchmark, split, task_names), num_envs=num_envs, seed=seed,
                        context=context, options=options)


def _benchmark(env_id: str):
    """(kind, benchmark, split, task names) of a ``metaworld/...`` id; unknown ids are refused by the registry."""
    from envs.registry import entry

    return entry(env_id).factory.args[1:]


def spec_for(env_id: str, **options: Any):
    """The ``EnvSpec`` of a Meta-World id without building any simulator (``omnitask envs`` can use it)."""
    from envs.metaworld.env import BenchmarkDef, MetaWorldOptions, make_spec

    kind, bench, split, names = _benchmark(env_id)
    return make_spec(BenchmarkDef(env_id, kind, bench, split, names), MetaWorldOptions.from_kwargs(env_id, options))


def _register_all() -> None:
    for task in tasks.ALL_TASKS:
        for suffix, kind, bench, split in (("MT1", "MT", "MT1", "train"), ("ML1-train", "ML", "ML1", "train"),
                                           ("ML1-test", "ML", "ML1", "test")):
            env_id = f"metaworld/{suffix}/{task}"
            register(env_id, functools.partial(make_metaworld, env_id, kind, bench, split, (task,)),
                     family="metaworld", extra="metaworld", spec_fn=functools.partial(spec_for, env_id),
                     description=f"Meta-World {bench}{'' if kind == 'MT' else ' ' + split} {task}")
    for suffix, (kind, bench, split, names) in _SPLITS.items():
        env_id = f"metaworld/{suffix}"
        register(env_id, functools.partial(make_metaworld, env_id, kind, bench, split, names),
                 family="metaworld", extra="metaworld", spec_fn=functools.partial(spec_for, env_id),
                 description=f"Meta-World {bench} {split} split ({len(names)} tasks; num_envs must be a multiple "
                             f"of {len(names)}, env i runs task i % {len(names)})")


_register_all()
