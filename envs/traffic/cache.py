"""Content-addressed cache of generated SUMO inputs (networks, routes), written atomically.

Every generated scenario lives in ``<cache_root>/<kind>-<sha1 of its parameters>/``. A directory is built in a
temporary sibling and moved into place with one ``os.replace``/``os.rename``, so concurrent processes that build the
same scenario never see a half-written directory (the loser of the race throws its copy away).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping

# Bump when the generators change what they write: old cache entries are then simply not looked up any more.
GENERATOR_VERSION = 4


def cache_root() -> Path:
    """``$OMNITASK_TRAFFIC_CACHE`` or ``$XDG_CACHE_HOME/omnitask/traffic`` (default ``~/.cache/omnitask/traffic``)."""
    env = os.environ.get("OMNITASK_TRAFFIC_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "omnitask" / "traffic"


def scenario_key(kind: str, params: Mapping[str, object]) -> str:
    """Stable directory name for one scenario: ``kind-<sha1(version, params)[:16]>``."""
    blob = json.dumps({"v": GENERATOR_VERSION, "kind": kind, "params": params}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha1(blob.encode()).hexdigest()[:16]}"


def cached_dir(kind: str, params: Mapping[str, object], build: Callable[[Path], None]) -> Path:
    """Return the scenario directory for ``(kind, params)``, calling ``build(tmp_dir)`` once if it is missing.

    ``build`` writes every file into the (empty) directory it is given; a ``DONE`` marker is added afterwards and
    the directory is renamed into place atomically.
    """
    root = cache_root()
    final = root / scenario_key(kind, params)
    if (final / "DONE").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        build(tmp)
        with open(tmp / "params.json", "w") as f:
            json.dump({"kind": kind, "params": params, "version": GENERATOR_VERSION}, f, indent=1, sort_keys=True,
                      default=str)
        (tmp / "DONE").write_text("ok\n")
        try:
            os.rename(tmp, final)  # atomic; fails if another process won the race
        except OSError:
            if not (final / "DONE").exists():  # a stale, incomplete directory: replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
