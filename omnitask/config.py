"""Typed experiment configs: YAML -> OmegaConf structured merge -> dataclass instances.

An experiment YAML has ``agent``, ``seed``, ``env``, ``run`` and one section named after the agent that holds that
agent's own config dataclass (e.g. ``ppo:``). Unknown keys and wrongly typed values are refused with the full key
path and the nearest valid key. Configs are never mutated at run time; derived values live in the agents.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from omnitask.agents_table import AGENTS


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says what is wrong and what is allowed."""


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


@dataclasses.dataclass
class ExperimentConfig:
    """Fields shared by every experiment; the agent's section is added per agent by ``schema_for``."""

    agent: str = "ppo"  # agent name (a key of omnitask.agents_table.AGENTS)
    seed: int = 0  # master seed: every PRNG stream of the run derives from it
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)


def agent_config_class(agent: str) -> type:
    if agent not in AGENTS:
        close = difflib.get_close_matches(agent, list(AGENTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown agent {agent!r}{hint}; available: {', '.join(sorted(AGENTS))}")
    return AGENTS[agent]()[0]


def schema_for(agent: str) -> type:
    """ExperimentConfig extended with a field named ``agent`` of the agent's config dataclass.

    The class is created once per agent and published in this module so instances pickle (process pools, Ray).
    """
    agent_cls = agent_config_class(agent)
    name = f"{agent.capitalize()}Experiment"
    cls = globals().get(name)
    if cls is None or getattr(cls, "__agent_cls__", None) is not agent_cls:
        cls = dataclasses.make_dataclass(
            name, [(agent, agent_cls, dataclasses.field(default_factory=agent_cls))], bases=(ExperimentConfig,))
        cls.__module__ = __name__
        cls.__agent_cls__ = agent_cls
        globals()[name] = cls
    return cls


def _nearest_key_hint(node_cls: Any, key: str) -> str:
    if node_cls is None or not dataclasses.is_dataclass(node_cls):
        return ""
    names = [f.name for f in dataclasses.fields(node_cls)]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.4)
    return (f" (did you mean {close[0]!r}?)" if close else "") + f"; valid keys here: {', '.join(names)}"


def _resolve_cls(schema: type, full_key: str) -> Any:
    """The dataclass that owns ``full_key`` (walking dataclass-typed fields)."""
    cls: Any = schema
    for part in full_key.split(".")[:-1]:
        fields = {f.name: f.type for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        typ = fields.get(part)
        if isinstance(typ, str):  # postponed annotations: look the class up on a default instance
            typ = type(getattr(cls(), part, None))
        cls = typ
    return cls


def build_config(raw: dict, overrides: Sequence[str] = (), source: str = "<config>") -> Any:
    """Validate a raw mapping (+ ``key=value`` overrides) into a typed experiment dataclass instance."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: an experiment config must be a mapping, got {type(raw).__name__}")
    dot = OmegaConf.from_dotlist(list(overrides)) if overrides else OmegaConf.create({})
    agent = OmegaConf.select(dot, "agent", default=None) or raw.get("agent", ExperimentConfig.agent)
    schema = schema_for(str(agent))
    merged = _merge_layer(OmegaConf.structured(schema), raw, schema, source)
    # Overrides are merged as their own layer so that a bad `--set` key is blamed on --set, not on the file.
    merged = _merge_layer(merged, dot, schema, "--set") if overrides else merged
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: {err}") from None
    validate_shared(cfg, source)
    return cfg


def _merge_layer(base: Any, layer: Any, schema: type, source: str) -> Any:
    """OmegaConf merge of one config layer; errors name the layer (file path or --set) and the nearest key."""
    try:
        return OmegaConf.merge(base, layer)
    except (ConfigKeyError, ConfigAttributeError) as err:
        key = str(err.full_key or err.key or "")
        hint = _nearest_key_hint(_resolve_cls(schema, key), key.split(".")[-1]) if key else ""
        raise ConfigError(f"{source}: unknown config key {key!r}{hint}") from None
    except ValidationError as err:
        raise ConfigError(f"{source}: bad value for {err.full_key!r}: {err.msg.splitlines()[0]}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: {err}") from None


# Lower bounds of the numeric shared fields (``None`` name: no bound); what each value means is in the dataclasses.
_MINIMUM = {"env.num_envs": 1, "run.total_env_steps": 1, "run.eval_every": 0, "run.eval_episodes": 1,
            "run.checkpoint_every": 0, "run.keep_checkpoints": 1, "run.log_every": 1}


def validate_shared(cfg: Any, source: str = "<config>") -> None:
    """Refuse shared ``env.*`` / ``run.*`` values the run loop cannot use, naming the key and what is allowed."""
    from omnitask.nonfinite import POLICIES
    for key, low in _MINIMUM.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value < low:
            raise ConfigError(f"{source}: {key} must be >= {low}, got {value}")
    if cfg.run.on_nonfinite not in POLICIES:
        raise ConfigError(f"{source}: run.on_nonfinite must be one of {', '.join(POLICIES)}, "
                          f"got {cfg.run.on_nonfinite!r}")
    if not str(cfg.run.out_dir).strip():
        raise ConfigError(f"{source}: run.out_dir must be a directory path, got an empty string")
    name = cfg.run.name
    if name is not None and (not name.strip() or name in (".", "..") or "/" in name or "\\" in name):
        raise ConfigError(f"{source}: run.name must be a plain directory name (no '/', not '.' or '..'), "
                          f"got {name!r}")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """Load an experiment YAML and apply ``key=value`` overrides (OmegaConf dotlist syntax)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}:{where}: not valid YAML: {what}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: cannot parse: {str(err).splitlines()[0]}") from None
    if not raw:
        raise ConfigError(f"{path} is empty; an experiment config needs at least `agent:` and `env:` "
                          "(see configs/quickstart.yaml)")
    return build_config(raw, overrides, source=str(path))


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


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


def agent_section(cfg: Any) -> Any:
    """The agent's own typed config (``cfg.<agent>``)."""
    return getattr(cfg, cfg.agent)
