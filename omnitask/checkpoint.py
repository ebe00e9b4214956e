"""Orbax checkpoints of a trainer state pytree + a JSON of loop counters (saved atomically by orbax)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpoints:
    """``run_dir/checkpoints/<env_steps>/{state,meta}``; keeps the newest ``keep`` steps."""

    def __init__(self, run_dir: Path, keep: int = 2):
        self.directory = (Path(run_dir) / "checkpoints").absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "meta"),
            options=ocp.CheckpointManagerOptions(max_to_keep=max(1, keep), create=True))

    def save(self, env_steps: int, state: Any, meta: dict) -> None:
        state = jax.tree.map(np.asarray, state)  # host copies: no device buffers or donated arrays in the file
        self._manager.save(int(env_steps), args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, like_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure/dtypes of ``like_state`` (e.g. a freshly initialised state)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), like_state)
        out = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return out["state"], dict(out["meta"])

    def close(self) -> None:
        self._manager.close()
