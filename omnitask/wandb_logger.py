"""Optional Weights & Biases mirror of a run's metrics (``run.loggers: [jsonl, tensorboard, wandb]``).

Offline by default: records go to ``RUN_DIR/wandb/offline-run-*`` and need no account; ``wandb sync RUN_DIR/wandb``
uploads them later. ``WANDB_MODE=online`` (and ``WANDB_PROJECT``/``WANDB_ENTITY``) log live instead. Metrics are
plotted against ``env_steps`` (a logged field, not W&B's own step counter, which must never go back — a resumed run
re-logs steps after its checkpoint). A resumed run continues the same W&B run id (kept in ``wandb_id.txt``).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Mapping

from omnitask.schema import ConfigError
from omnitask.fileio import atomic_write_text

ID_FILE = "wandb_id.txt"


class WandbSink:
    def __init__(self, run_dir: Path, config: Mapping[str, Any] | None = None):
        try:
            import wandb
        except ModuleNotFoundError:
            raise ConfigError("run.loggers includes 'wandb' but the wandb package is not installed: "
                              "pip install 'omnitask[wandb]', or drop wandb from run.loggers") from None
        run_dir = Path(run_dir)
        id_path = run_dir / ID_FILE
        if id_path.is_file():
            run_id = id_path.read_text().strip()
        else:
            run_id = uuid.uuid4().hex[:8]  # W&B ids: 8 lowercase alphanumerics
            atomic_write_text(id_path, run_id + "\n")
        self._run = wandb.init(project=os.environ.get("WANDB_PROJECT", "omnitask"), name=run_dir.name, id=run_id,
                               resume="allow", dir=str(run_dir), mode=os.environ.get("WANDB_MODE", "offline"),
                               config=dict(config or {}), reinit="create_new",
                               settings=wandb.Settings(console="off", silent=True))
        self._run.define_metric("env_steps")
        self._run.define_metric("*", step_metric="env_steps")

    def log(self, split: str, env_steps: int, metrics: Mapping[str, float | None]) -> None:
        row = {f"{split}/{k}": v for k, v in metrics.items() if v is not None}
        self._run.log({"env_steps": int(env_steps), **row})

    def close(self) -> None:
        self._run.finish()
