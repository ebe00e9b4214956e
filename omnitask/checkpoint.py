"""Orbax checkpoints of a trainer state pytree + a JSON of loop counters, ``run_dir/checkpoints/<env_steps>/``.

* Saves are asynchronous: orbax copies the arrays to host memory before ``save`` returns and writes the files in the
  background, so training continues while the disk works (the next save, a restore and ``close`` wait for it).
  The loop only ever hands over the live state returned by the last completed step, never a donated one.
* Restores go into ``jax.eval_shape`` templates (shapes, dtypes, shardings; no arrays allocated twice). An unreadable
  newest checkpoint (a truncated file, a crash mid-write) is skipped with a warning and the next older one is used.
* Disk errors (read-only, full, a file where the run directory should be) become one ``CheckpointError`` line naming
  the path and the cause; orbax's temporary ``*.orbax-checkpoint-tmp*`` directories are removed.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from omnitask.schema import CheckpointError, ConfigError


def _cause(err: BaseException) -> str:
    """The OS's words for what failed (e.g. 'No space left on device'), else the error's first line."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        code = re.search(r"os_error_code='(\d+)'", str(seen))  # tensorstore's wording of an OS error
        if code:
            return os.strerror(int(code.group(1)))
        seen = seen.__cause__ or seen.__context__
    text = re.sub(r"\s*\[tensorstore_spec=.*", "", str(err), flags=re.S).strip()
    files = re.findall(r'local file "[^"]*/checkpoints/\d+/([^"]+)"', text)
    if files:  # tensorstore chains 'Error opening ...: Error reading ...: <reason>'; keep the file and the reason
        return f"{files[-1]}: {text.rsplit(': ', 1)[-1]}"
    lines = text.splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class _DropOrbaxErrors(logging.Filter):
    """Orbax logs a failed background write with tracebacks from each of its threads, and asyncio reports the
    other failed write tasks of the same save ('Task exception was never retrieved', naming orbax's coroutine);
    ``Checkpoints`` re-raises the failure as one ``CheckpointError`` line, so those records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR
                    and ("orbax" in record.pathname or "orbax/checkpoint" in record.getMessage()))


for _logger in ("absl", "asyncio"):
    logging.getLogger(_logger).addFilter(_DropOrbaxErrors())
_unraisable = sys.unraisablehook


def _drop_closed_loop_callbacks(unraisable) -> None:
    """After a failed write, tensorstore completes the other pending writes into orbax's already closed event loop;
    each would print a traceback ('Event loop is closed') although the failure was already reported."""
    if not (unraisable.exc_type is RuntimeError and str(unraisable.exc_value) == "Event loop is closed"):
        _unraisable(unraisable)


sys.unraisablehook = _drop_closed_loop_callbacks


def _key_name(key) -> str:
    """One part of orbax's dotted leaf name (``z.a``) from a JAX key path entry."""
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


class Checkpoints:
    """The newest ``keep`` checkpoints of one run."""

    def __init__(self, run_dir: Path, keep: int = 2):
        self.directory = (Path(run_dir) / "checkpoints").absolute()
        self._write_failed = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._manager = ocp.CheckpointManager(
                self.directory, item_handlers={"state": ocp.StandardCheckpointHandler(),
                                               "meta": ocp.JsonCheckpointHandler()},
                options=ocp.CheckpointManagerOptions(max_to_keep=max(1, keep), create=True,
                                                     cleanup_tmp_directories=True))
        except OSError as err:
            raise CheckpointError(f"cannot write checkpoints to {self.directory}: {_cause(err)}") from None

    def save(self, env_steps: int, state: Any, meta: dict) -> None:
        """Start writing ``state`` (live arrays, not donated) at ``env_steps``; returns once it is on the host."""
        try:
            self._manager.save(int(env_steps), args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        except Exception as err:
            self._failed(f"cannot save checkpoint {int(env_steps)}", err)

    def wait(self) -> None:
        """Block until the pending save is on disk (raises CheckpointError if it failed)."""
        try:
            self._manager.wait_until_finished()
        except Exception as err:
            self._failed("cannot finish writing a checkpoint", err)

    def _failed(self, what: str, err: BaseException):
        self._write_failed = True
        self.remove_temporary_directories()
        raise CheckpointError(f"{what} in {self.directory}: {_cause(err)}") from None

    def remove_temporary_directories(self, quiet_s: float = 0.5, timeout_s: float = 10.0) -> None:
        """Delete orbax's ``*.orbax-checkpoint-tmp*`` directories until none has reappeared for ``quiet_s``.

        When one write of a save fails, tensorstore still completes the save's other writes in its own threads. One
        pass of ``rmtree`` then races them (measured: ``manifest.ocdbt.__lock`` was renamed to ``manifest.ocdbt``
        while ``rmtree`` emptied the directory, so its ``rmdir`` failed) and left ``400.orbax-checkpoint-tmp`` behind
        in 2 of 20 runs on a loaded machine, and once in CI.
        """
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            leftovers = list(self.directory.glob("*.orbax-checkpoint-tmp*"))
            for tmp in leftovers:
                shutil.rmtree(tmp, ignore_errors=True)
            if leftovers:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return
            time.sleep(0.02)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, template: Any, warn: Callable[[str], None] = print) -> tuple[Any, dict]:
        """The newest readable checkpoint, restored into ``template`` (arrays or ``jax.ShapeDtypeStruct``s).

        Falls back newest -> oldest, calling ``warn`` for every unreadable one; raises ConfigError if none fits.
        """
        self.wait()
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        errors = []
        for i, step in enumerate(steps):
            try:
                out = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(self._target(step, template)), meta=ocp.args.JsonRestore()))
                return out["state"], dict(out["meta"])
            except Exception as err:  # truncated/missing files, or a state layout that changed
                errors.append(f"{step}: {_cause(err)}")
                if i + 1 < len(steps):
                    warn(f"checkpoint {step} in {self.directory.parent} is unreadable ({_cause(err)}); "
                         f"resuming from {steps[i + 1]}")
        raise ConfigError(f"no checkpoint in {self.directory} can be restored into this agent's state "
                          f"({'; '.join(errors)})")

    def _target(self, step: int, template: Any) -> Any:
        """What to restore into: the template's structure and shapes; numpy leaves (saved without a sharding) come
        back as numpy with their saved dtype (e.g. float64 host statistics), device leaves as ``jax.Array``s."""
        saved = {m.name: m for m in jax.tree.leaves(self._manager.item_metadata(step)["state"])}
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

        def leaf(path, x):
            m = saved.get(".".join(_key_name(k) for k in path))
            if m is not None and getattr(m, "sharding", None) is None:
                return np.zeros(x.shape, m.dtype)  # zero pages: allocated only when orbax fills them
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None) or device)

        return jax.tree_util.tree_map_with_path(leaf, template)

    def close(self) -> None:
        """Finish pending writes and release orbax's threads (safe to call twice)."""
        try:
            self.wait()
        finally:
            self._manager.close()
            if self._write_failed:  # writes of the failed save may have landed after the first cleanup
                self.remove_temporary_directories()
