"""What ``--resume`` leaves in a run directory: the config it continued with, and one record per resume.

``config.yaml`` always holds the config of the newest (re)start, so a later plain ``--resume`` continues with the
latest budget; ``provenance.json`` keeps the original creation record and appends under ``"resumes"`` when, from
which env step, with which ``run.*`` changes and from which code each resume ran. A run that already reached its
budget and has its final evaluation is finished: resuming it again changes nothing.
"""
from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from omnitask.config import to_dict, to_yaml
from omnitask.fileio import atomic_write_json, atomic_write_text
from omnitask.metrics_log import read_metrics, truncate_metrics
from omnitask.run_dir import CONFIG_FILE, PROVENANCE_FILE, config_differences, git_commit, load_run_config

FINAL_EVAL_FILE = "final_eval.json"


def changed_keys(old: Any, new: Any) -> dict[str, list]:
    """``{dotted key: [old value, new value]}`` for every value that differs between two configs."""
    a, b = OmegaConf.create(to_dict(old)), OmegaConf.create(to_dict(new))

    def value(node, key):
        v = OmegaConf.select(node, key)
        return OmegaConf.to_container(v) if OmegaConf.is_config(v) else v
    return {k: [value(a, k), value(b, k)] for k in config_differences(old, new, ignore_prefixes=())}


def finished_eval(run_dir: Path, env_steps: int) -> dict | None:
    """The stored final evaluation when the run already ended at ``env_steps``, else None."""
    path = Path(run_dir) / FINAL_EVAL_FILE
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if stored.get("env_steps") != env_steps:
        return None
    return {k: v for k, v in stored.items() if k != "env_steps"}


def record_resume(run_dir: Path, cfg: Any, from_env_steps: int) -> dict:
    """Rewrite config.yaml with ``cfg`` and append a resume record to provenance.json; returns the record."""
    run_dir = Path(run_dir)
    record = {"time": datetime.datetime.now().isoformat(timespec="seconds"), "from_env_steps": int(from_env_steps),
              "total_env_steps": int(cfg.run.total_env_steps),
              "changed": changed_keys(load_run_config(run_dir), cfg), "argv": sys.argv, "git_commit": git_commit()}
    path = run_dir / PROVENANCE_FILE
    provenance = json.loads(path.read_text()) if path.is_file() else {}
    provenance.setdefault("resumes", []).append(record)
    atomic_write_json(path, provenance)
    atomic_write_text(run_dir / CONFIG_FILE, to_yaml(cfg))
    return record


def trim_metrics(run_dir: Path, env_steps: int, total: int) -> None:
    """Drop metric lines logged after the restored checkpoint; when the run resumes at or past its budget, also the
    evaluation at ``env_steps`` (the final evaluation about to run repeats it)."""
    truncate_metrics(run_dir, env_steps)
    rows = read_metrics(run_dir)
    keep = [r for r in rows if not (env_steps >= total and r.get("env_steps") == env_steps and r["split"] == "eval")]
    if len(keep) < len(rows):
        atomic_write_text(Path(run_dir) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in keep))
