"""Small helpers shared by the agent Trainers: reading the experiment config, building envs, host evaluation."""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import numpy as np

from envs.timestep import episode_over, episode_success


def plain(node: Any) -> Any:
    """An OmegaConf node (or anything) as plain Python containers; ``None`` -> ``{}`` for mappings."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
        if isinstance(node, (DictConfig, ListConfig)):
            return OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return node


def env_settings(cfg: Any) -> tuple[str, int, dict, dict]:
    """``(env_id, num_envs, context, options)`` from the experiment's ``env`` section."""
    env = cfg.env
    context = plain(getattr(env, "context", None)) or {}
    options = plain(getattr(env, "options", None)) or {}
    return str(env.id), int(env.num_envs), dict(context), dict(options)


def eval_env_options(cfg: Any) -> dict:
    """Options of the evaluation envs: ``env.options`` overridden by ``env.eval_options`` (e.g. sticky actions)."""
    options = dict(plain(getattr(cfg.env, "options", None)) or {})
    options.update(plain(getattr(cfg.env, "eval_options", None)) or {})
    return options


def seed_from_key(key: jax.Array) -> int:
    """A host-side integer seed drawn from a JAX key (for seeding host simulators)."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


def mean_metrics(metrics: dict) -> dict[str, float]:
    """Average stacked metric arrays to floats, ignoring NaN entries (e.g. no finished episode).

    An all-NaN metric stays NaN (logged as null) rather than vanishing, so a diverged loss remains visible.
    """
    out = {}
    for name, value in metrics.items():
        value = np.asarray(value, np.float64)
        if value.size:
            out[name] = float(np.nanmean(value)) if not np.all(np.isnan(value)) else float("nan")
    return out


def evaluate_host(env, policy: Callable[[np.ndarray, jax.Array], np.ndarray], num_episodes: int, key: jax.Array,
                  max_steps: int) -> dict[str, float]:
    """Run ``policy(obs, key) -> env actions`` on a host BatchedEnv until ``num_episodes`` episodes finish.

    Each env contributes at most ``ceil(num_episodes / num_envs)`` episodes (no bias towards short episodes).
    Returns ``return_mean``, ``return_std``, ``length_mean``, ``success_rate`` and ``return_mean/<task>``.
    """
    per_env = math.ceil(num_episodes / env.num_envs)
    k_reset, key = jax.random.split(key)
    ts = env.reset(seed=seed_from_key(k_reset))
    counts = np.zeros(env.num_envs, np.int64)
    returns, lengths, successes, tasks = [], [], [], []
    extra_keys = tuple(getattr(env, "episode_metric_keys", ()))  # info keys valid at episode end (e.g. RESCO's)
    extras: dict[str, list] = {k: [] for k in extra_keys}
    for _ in range(max_steps * per_env):
        key, k_act = jax.random.split(key)
        ts = env.step(policy(ts.observation, k_act))
        ended_ok = episode_success(ts)  # [B] success at any step of the episode where the env reports it
        for i in np.flatnonzero(episode_over(ts)):
            if counts[i] < per_env and len(returns) < num_episodes:
                counts[i] += 1
                returns.append(float(ts.info["episode_return"][i]))
                lengths.append(float(ts.info["episode_length"][i]))
                successes.append(float(ended_ok[i]))
                tasks.append(int(ts.task_id[i]))
                for k in extra_keys:
                    extras[k].append(float(np.asarray(ts.info[k][i])))
        if len(returns) >= num_episodes:
            break
    if not returns:
        raise RuntimeError(f"{env.spec.env_id}: no episode finished within {max_steps * per_env} eval steps")
    out = {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
           "length_mean": float(np.mean(lengths)), "success_rate": float(np.mean(successes)),
           "episodes": float(len(returns))}
    out.update({f"{k}_mean": float(np.nanmean(v)) for k, v in extras.items() if v})
    if env.spec.num_tasks > 1:
        tasks = np.asarray(tasks)
        for t, name in enumerate(env.spec.task_names):
            if np.any(tasks == t):
                out[f"return_mean/{name}"] = float(np.mean(np.asarray(returns)[tasks == t]))
    return out


def experiment_envs(cfg: Any) -> tuple[Any, Callable[[int], Any]]:
    """The training env of an experiment (``env.*``, seeded with ``seed``) and a maker of its evaluation env:
    ``make_eval_env(n)`` -> ``min(num_envs, n)`` envs with ``eval_env_options``, seeded ``seed + 1``."""
    import envs

    env_id, num_envs, context, options = env_settings(cfg)
    env = envs.make(env_id, num_envs=num_envs, seed=int(cfg.seed), context=context, **options)

    def make_eval_env(num_episodes: int):
        return envs.make(env_id, num_envs=min(num_envs, int(num_episodes)), seed=int(cfg.seed) + 1, context=context,
                         **eval_env_options(cfg))

    return env, make_eval_env
