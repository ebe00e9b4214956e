"""The leaf of omnitask's layers: config errors, the experiment fields every agent shares, and section parsing.

Imports nothing from ``agents`` or the run loop, so agents may import it (``section_as`` on their own section);
``omnitask.config`` (above the agents) assembles the typed experiment class of each agent from these pieces.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says what is wrong and what is allowed."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the path and the cause."""


@dataclasses.dataclass
class EnvConfig:
    id: str = "classic/CartPole-v1"  # environment id (``omnitask envs`` lists them)
    num_envs: int = 8  # parallel envs used for training
    context: dict[str, Any] = dataclasses.field(default_factory=dict)  # context variables (scalar or per-env list)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # family options, e.g. {protocol: dqn}
    eval_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # options overriding ``options`` at eval


@dataclasses.dataclass
class RunConfig:
    total_env_steps: int = 100_000  # training budget in environment steps (summed over parallel envs)
    eval_every: int = 10_000  # env steps between evaluations (0: only at the end)
    eval_episodes: int = 10  # episodes per evaluation
    checkpoint_every: int = 50_000  # env steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 2  # how many recent checkpoints to keep
    log_every: int = 1  # train iterations between metric log lines
    out_dir: str = "runs"  # parent directory of run directories
    name: Optional[str] = None  # run directory name (default: <agent>-<env>-<seed>-<timestamp>)
    progress: bool = True  # show the progress bar
    # metric sinks: jsonl (always), tensorboard, wandb (offline unless WANDB_MODE=online; the `wandb` extra)
    loggers: list[str] = dataclasses.field(default_factory=lambda: ["jsonl", "tensorboard"])
    on_nonfinite: str = "stop"  # NaN/inf loss or gradient: "stop" (exit non-zero, keep last good checkpoint) | "warn"
    # data-parallel device mesh: {} = one device; {data: -1} = batches split over all devices (every process's in a
    # multi-process run), parameters replicated (omnitask/mesh.py)
    mesh: dict[str, int] = dataclasses.field(default_factory=dict)
    # multi-process run: {coordinator: HOST:PORT, num_processes: N, process_id: i} or {cluster: true}
    # (omnitask/distributed.py); {} = one process
    distributed: dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: str = "float32"  # learner compute: float32 | bfloat16 (float32 master weights; omnitask/precision.py)
    replay: str = "auto"  # replay buffer location: auto | device | host (per agent; omnitask/replay_location.py)


@dataclasses.dataclass
class ExperimentConfig:
    """Fields shared by every experiment; the agent's section is added per agent by ``schema_for``."""

    agent: str = "ppo"  # agent name (a key of omnitask.agents_table.AGENTS)
    seed: int = 0  # master seed: every PRNG stream of the run derives from it
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)


def _nearest_key_hint(node_cls: Any, key: str) -> str:
    if node_cls is None or not dataclasses.is_dataclass(node_cls):
        return ""
    names = [f.name for f in dataclasses.fields(node_cls)]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.4)
    return (f" (did you mean {close[0]!r}?)" if close else "") + f"; valid keys here: {', '.join(names)}"


def section_as(cls: type, section: Any, name: str) -> Any:
    """An instance of the config dataclass ``cls`` from an instance, an OmegaConf node or a plain mapping.

    Agents call this on their own section so they also work when driven directly (tests, MBTL jobs); unknown keys
    are refused with the nearest valid one, like everywhere else.
    """
    if isinstance(section, cls):
        return section
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    section = dict(section or {})
    unknown = [k for k in section if k not in {f.name for f in dataclasses.fields(cls)}]
    if unknown:
        raise ConfigError(f"unknown {name} config key {unknown[0]!r}{_nearest_key_hint(cls, unknown[0])}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), section))
    except ValidationError as err:
        raise ConfigError(f"bad value for {name}.{err.full_key}: {err.msg.splitlines()[0]}") from None


def load_section(path: str | Path, name: str, cls: type) -> Any:
    """The ``name:`` section of an experiment YAML as ``cls`` (tools that need one agent's settings only)."""
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    except (OSError, OmegaConfBaseException) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    return section_as(cls, raw.get(name) if isinstance(raw, dict) else None, f"{path}: {name}")
