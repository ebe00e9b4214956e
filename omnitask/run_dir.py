"""Run directories: resolved config, provenance (git commit, package versions, seed, command), paths."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.metadata
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

from omnitask.config import ConfigError, load_config, to_dict, to_yaml
from omnitask.fileio import atomic_write_json, atomic_write_text

CONFIG_FILE = "config.yaml"
PROVENANCE_FILE = "provenance.json"
_PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "mctx", "orbax-checkpoint", "gymnasium", "gymnax", "ale-py",
             "metaworld", "mujoco", "eclipse-sumo", "libsumo", "tinygp", "ray", "numpy", "omnitask")


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        # --no-optional-locks: a status must not refresh the index (index.lock), or a run killed (timeout, file-size
        # limit) mid-write leaves a stale lock that blocks the user's next git command in this checkout.
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def lock_file_hash() -> str | None:
    """sha256 of the requirements.lock this checkout installs from (None when there is none)."""
    path = Path(__file__).resolve().parent.parent / "requirements.lock"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def new_run_dir(cfg: Any) -> Path:
    name = cfg.run.name or "{}-{}-s{}-{}".format(
        cfg.agent, cfg.env.id.replace("/", "_"), cfg.seed, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    run_dir = Path(cfg.run.out_dir) / name
    if (run_dir / CONFIG_FILE).exists():
        raise ConfigError(f"run directory {run_dir} already holds a run; use --resume {run_dir} or another run.name")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, to_yaml(cfg))
    atomic_write_json(run_dir / PROVENANCE_FILE, {
        "git_commit": git_commit(), "packages": package_versions(), "lock_sha256": lock_file_hash(),
        "seed": cfg.seed,
        "python": sys.version.split()[0], "platform": platform.platform(), "argv": sys.argv,
        "created": datetime.datetime.now().isoformat(timespec="seconds")})
    return run_dir


@contextlib.contextmanager
def removed_if_setup_fails(run_dir: Path) -> Iterator[Path]:
    """Delete a just-created run directory when the run fails before training starts.

    "Before training starts" = no metrics.jsonl yet: a bad env id, context, option or ``num_envs`` is found while the
    trainer builds its envs, and must not leave a run directory with only config.yaml and provenance.json.
    """
    try:
        yield run_dir
    except BaseException:
        if not (Path(run_dir) / "metrics.jsonl").exists() and not (Path(run_dir) / "checkpoints").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def load_run_config(run_dir: Path, overrides=()) -> Any:
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    return load_config(path, overrides)


def config_differences(a: Any, b: Any, ignore_prefixes=("run.",)) -> list[str]:
    """Dotted keys whose values differ between two configs (ignoring ``run.*``: budgets/logging may change)."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v and k != "context" and k != "options":
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out
    fa, fb = flat(to_dict(a)), flat(to_dict(b))
    keys = sorted(set(fa) | set(fb))
    return [k for k in keys if not k.startswith(ignore_prefixes) and fa.get(k) != fb.get(k)]
