"""Typed experiment configs: YAML -> OmegaConf structured merge -> dataclass instances (above the agents).

An experiment YAML has ``agent``, ``seed``, ``env``, ``run`` and one section named after the agent that holds that
agent's own config dataclass (e.g. ``ppo:``). Unknown keys and wrongly typed values are refused with the full key
path and the nearest valid key. Configs are never mutated at run time; derived values live in the agents.
The shared fields, ``ConfigError`` and ``section_as`` live in the leaf module ``omnitask.schema``.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Sequence

import yaml  # omegaconf parses with PyYAML; its errors carry the line number
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from omnitask.agents_table import AGENTS
from omnitask.schema import (ConfigError, EnvConfig, ExperimentConfig, RunConfig, _nearest_key_hint,  # noqa: F401
                             section_as)

_SCHEMAS: dict[str, type] = {}


def agent_config_class(agent: str) -> type:
    if agent not in AGENTS:
        close = difflib.get_close_matches(agent, list(AGENTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown agent {agent!r}{hint}; available: {', '.join(sorted(AGENTS))}")
    return AGENTS[agent]()[0]


def schema_for(agent: str) -> type:
    """ExperimentConfig extended with a field named ``agent`` of the agent's config dataclass (made once per agent).

    The class is generated at run time, so no other process can look it up by name: its instances pickle as plain
    data (``to_dict``) and are rebuilt with ``build_config`` on unpickling (process pools, Ray workers).
    """
    agent_cls = agent_config_class(agent)
    cls = _SCHEMAS.get(agent)
    if cls is None or cls.__agent_cls__ is not agent_cls:
        cls = dataclasses.make_dataclass(f"{agent.capitalize()}Experiment",
                                         [(agent, agent_cls, dataclasses.field(default_factory=agent_cls))],
                                         bases=(ExperimentConfig,),
                                         namespace={"__reduce__": lambda self: (_rebuild, (to_dict(self),))})
        cls.__module__, cls.__agent_cls__ = __name__, agent_cls
        _SCHEMAS[agent] = cls
    return cls


def _rebuild(raw: dict) -> Any:
    return build_config(raw, source="a config sent to this process")


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
    from omnitask.mesh import check_model_axis
    from omnitask.precision import check_precision
    from omnitask.replay_location import replay_location
    try:
        check_model_axis(cfg.agent, cfg.run.mesh)
        check_precision(cfg.agent, cfg.run.precision)

        replay_location(cfg.agent, cfg.run.replay)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
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


def agent_section(cfg: Any) -> Any:
    """The agent's own typed config (``cfg.<agent>``)."""
    return getattr(cfg, cfg.agent)
