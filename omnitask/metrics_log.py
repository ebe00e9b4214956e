"""Metric sinks of a run: JSONL (the source of truth for plots, compare and resume), TensorBoard event files
(tensorboardX) and, optionally, Weights & Biases (``omnitask.wandb_logger``)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _clean(metrics: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        v = float(np.asarray(v))
        out[k] = v if math.isfinite(v) else None
    return out


LOGGERS = ("jsonl", "tensorboard", "wandb")


class MetricsLogger:
    """Appends ``{"env_steps": n, "split": "train"|"eval", **metrics}`` lines to metrics.jsonl and mirrors them to
    the other ``loggers`` (TensorBoard tags ``<split>/<metric>``; W&B the same keys)."""

    def __init__(self, run_dir: Path, loggers: Sequence[str] = ("jsonl", "tensorboard"),
                 run_config: Mapping | None = None):
        unknown = [x for x in loggers if x not in LOGGERS]
        if unknown or "jsonl" not in loggers:
            from omnitask.schema import ConfigError
            what = f"unknown logger {unknown[0]!r}" if unknown else "jsonl is missing (plots, compare, resume read it)"
            raise ConfigError(f"run.loggers: {what}; allowed: {', '.join(LOGGERS)}, and jsonl is always on")
        self.path = Path(run_dir) / "metrics.jsonl"
        self._file = open(self.path, "a", buffering=1)
        self._tb = self._wandb = None
        if "tensorboard" in loggers:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))
        if "wandb" in loggers:
            from omnitask.wandb_logger import WandbSink
            self._wandb = WandbSink(Path(run_dir), run_config)

    def log(self, split: str, env_steps: int, metrics: Mapping[str, float]) -> None:
        clean = _clean(metrics)
        self._file.write(json.dumps({"split": split, "env_steps": int(env_steps), **clean}) + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                if v is not None:
                    self._tb.add_scalar(f"{split}/{k}", v, int(env_steps))
        if self._wandb is not None:
            self._wandb.log(split, env_steps, clean)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash: ignore it
                continue
    return rows


def truncate_metrics(run_dir: Path, max_env_steps: int) -> None:
    """Drop lines logged after a checkpoint so a resumed run does not duplicate them."""
    from omnitask.fileio import atomic_write_text
    rows = [r for r in read_metrics(run_dir) if r.get("env_steps", 0) <= max_env_steps]
    atomic_write_text(Path(run_dir) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
