"""Finding, reading and grouping run directories for ``omnitask compare``.

A run directory holds ``config.yaml``, ``metrics.jsonl`` (one JSON object per line; non-finite metrics are ``null``)
and ``final_eval.json``. The config is read as plain YAML, not through the typed schema, so runs written by older
code (or by an agent that is not installed here) can still be compared.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from omnitask.config import ConfigError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
FINAL_FILE = "final_eval.json"
_MAX_DEPTH = 4  # how deep below a given directory runs are searched for (sweep/<group>/<run> is depth 2)
# default run names end in "-s<seed>" (sweeps) or "-s<seed>-<YYYYmmdd-HHMMSS>" (single runs)
_SEED_SUFFIX = re.compile(r"-s\d+(-\d{8}-\d{6})?$")


@dataclasses.dataclass(frozen=True)
class Run:
    """One run as ``compare`` sees it."""

    path: Path
    config: dict  # the run's config.yaml as plain data
    evals: tuple[dict, ...]  # eval rows of metrics.jsonl, one per env_steps (the last one logged wins), sorted
    final: dict  # final_eval.json (falls back to the last eval row when the file is missing)
    finished: bool  # final_eval.json exists (the run reached its budget)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def env_id(self) -> str:
        return str((self.config.get("env") or {}).get("id", "?"))


def find_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories given directly or found below the given directories (e.g. a seed sweep's parent dir)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        if (p / CONFIG_FILE).is_file():
            found.append(p)
            continue
        below = _search(p, _MAX_DEPTH)
        if not below:
            raise FileNotFoundError(f"{p} holds no run directory (a folder with {CONFIG_FILE}) within "
                                    f"{_MAX_DEPTH} levels")
        found.extend(below)
    return sorted(dict.fromkeys(found))


def _search(folder: Path, depth: int) -> list[Path]:
    if depth == 0 or not folder.is_dir():
        return []
    out = []
    for child in sorted(folder.iterdir()):
        if child.is_dir():
            out.extend([child] if (child / CONFIG_FILE).is_file() else _search(child, depth - 1))
    return out


def _finite_or_none(row: dict) -> dict:
    """Numbers as floats; NaN/inf (or null, which ``MetricsLogger`` writes for them) become None."""
    def clean(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v) if math.isfinite(v) else None
        return v
    return {k: clean(v) for k, v in row.items()}


def load_run(path: str | Path) -> Run:
    """Read one run directory; a missing or empty metrics file is an error that names the run."""
    path = Path(path)
    cfg_path, metrics_path, final_path = path / CONFIG_FILE, path / METRICS_FILE, path / FINAL_FILE
    if not cfg_path.is_file():
        raise FileNotFoundError(f"run {path}: no {CONFIG_FILE}")
    try:
        config = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"run {path}: cannot parse {CONFIG_FILE}: {err}") from None
    if not metrics_path.is_file():
        raise FileNotFoundError(f"run {path}: no {METRICS_FILE} (did the run start training?)")
    by_step: dict[int, dict] = {}
    for line in metrics_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash
            continue
        if isinstance(row, dict) and row.get("split") == "eval" and "env_steps" in row:
            by_step[int(row["env_steps"])] = _finite_or_none(row)
    evals = tuple(by_step[s] for s in sorted(by_step))
    if final_path.is_file():
        final = _finite_or_none(json.loads(final_path.read_text()))
    elif evals:
        final = evals[-1]
    else:
        raise FileNotFoundError(f"run {path}: no {FINAL_FILE} and no eval rows in {METRICS_FILE} "
                                "(unfinished run without an evaluation)")
    return Run(path, config, evals, final, final_path.is_file())


def config_value(config: dict, dotted: str) -> Any:
    """``config['scalezero']['ffn']`` for ``'scalezero.ffn'``; KeyError names the missing part."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(part)
        node = node[part]
    return node


def group_label(run: Run, group_by: str) -> str:
    """The group a run belongs to.

    ``agent``: the config's agent; ``config.KEY``: a config value (``config.scalezero.ffn``); ``name``: the run
    directory's name without its seed suffix (``cpu_multitask-s0`` -> ``cpu_multitask``); ``name:REGEX``: the
    first capture group (or the whole match) of REGEX searched in the run directory's name.
    """
    if group_by == "agent":
        return str(run.config.get("agent", "?"))
    if group_by == "name":
        return _SEED_SUFFIX.sub("", run.name)
    if group_by.startswith("config."):
        key = group_by[len("config."):]
        try:
            value = config_value(run.config, key)
        except KeyError as err:
            raise ConfigError(f"--group-by {group_by}: run {run.path} has no config key {key!r} "
                              f"(missing part {err.args[0]!r})") from None
        return f"{key}={value}"
    if group_by.startswith("name:"):
        try:
            match = re.search(group_by[len("name:"):], run.name)
        except re.error as err:
            raise ConfigError(f"--group-by {group_by}: bad regular expression: {err}") from None
        if match is None:
            raise ConfigError(f"--group-by {group_by}: run name {run.name!r} does not match")
        return match.group(1) if match.groups() else match.group(0)
    raise ConfigError(f"--group-by {group_by!r} is not understood; allowed: agent, name, name:REGEX, config.KEY "
                      "(e.g. config.scalezero.ffn)")


def group_runs(runs: Sequence[Run], group_by: str) -> dict[str, list[Run]]:
    """Runs by group label (groups in sorted order, runs by seed then name)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_label(run, group_by), []).append(run)
    return {g: sorted(rs, key=lambda r: (r.seed, r.name)) for g, rs in sorted(groups.items())}
