"""Bad experiment input gets one line naming what is wrong, a non-zero exit, and leaves no run directory behind."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnitask.cli import main
from omnitask.config import ConfigError, build_config, load_config

ROOT = Path(__file__).resolve().parent.parent
BASE = {"agent": "ppo", "env": {"id": "classic/CartPole-v1", "num_envs": 2}}


@pytest.mark.parametrize("key, value, message", [
    ("run.total_env_steps", -5, r"run.total_env_steps must be >= 1, got -5"),
    ("run.total_env_steps", 0, r"run.total_env_steps must be >= 1"),
    ("run.eval_every", -1, r"run.eval_every must be >= 0"),
    ("run.eval_episodes", 0, r"run.eval_episodes must be >= 1"),
    ("run.checkpoint_every", -100, r"run.checkpoint_every must be >= 0"),
    ("run.keep_checkpoints", 0, r"run.keep_checkpoints must be >= 1"),
    ("run.log_every", 0, r"run.log_every must be >= 1"),
    ("run.on_nonfinite", "ignore", r"run.on_nonfinite must be one of stop, warn"),
    ("run.out_dir", "''", r"run.out_dir must be a directory path"),
    ("run.name", "a/b", r"run.name must be a plain directory name"),
    ("run.name", "..", r"run.name must be a plain directory name"),
    ("env.num_envs", 0, r"env.num_envs must be >= 1"),
    ("env.num_envs", 2.7, r"bad value for 'env.num_envs'"),
])
def test_shared_fields_are_validated(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build_config(BASE, [f"{key}={value}"])


def test_empty_and_malformed_yaml(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="is empty; an experiment config needs"):
        load_config(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: ppo\nenv: {id: classic/CartPole-v1\nrun: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line 3, column \d+: not valid YAML") as err:
        load_config(bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override", ["env.id=classic/Nope", "env.context.nope=1", "env.options.nope=1",
                                      "env.context.length=1000"])
def test_bad_env_spec_leaves_no_run_directory(tmp_path, capsys, override):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agent: ppo\nenv: {id: classic/CartPole-v1, num_envs: 2}\n"
                   f"run: {{total_env_steps: 64, out_dir: '{tmp_path / 'runs'}', name: r, progress: false}}\n")
    assert main(["train", str(cfg), "--set", override]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and not (tmp_path / "runs" / "r").exists(), err


def test_user_text_is_not_rich_markup():
    proc = subprocess.run([sys.executable, "-m", "omnitask", "envs", "x[/bold]y"], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: unknown environment id 'x[/bold]y'. Run `omnitask envs` to "
                                                "list all ids."]
