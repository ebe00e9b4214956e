"""The shared run loop: exact resume, refusal of foreign checkpoints, CLI end to end on tiny budgets."""
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from omnitask.config import ConfigError, build_config
from omnitask.run_dir import new_run_dir
from omnitask.runner import train

ROOT = Path(__file__).resolve().parent.parent


def _dqn_cfg(out_dir, name, total, **dqn):
    return build_config({
        "agent": "dqn", "seed": 7,
        "env": {"id": "classic/CartPole-v1", "num_envs": 4},
        "run": {"total_env_steps": total, "eval_every": 0, "eval_episodes": 2, "checkpoint_every": 800,
                "out_dir": str(out_dir), "name": name, "progress": False},
        "dqn": {"steps_per_train_step": 100, "learning_starts": 400, "buffer_size": 2000, "batch_size": 32,
                "hidden_sizes": [32], **dqn}})


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state)]


def test_resume_matches_uninterrupted_run(tmp_path):
    """Train 2400 steps straight vs 1200 steps, stop, resume to 2400: every state array is bit-identical."""
    straight = train(_dqn_cfg(tmp_path, "straight", 2400), new_run_dir(_dqn_cfg(tmp_path, "straight", 2400)))
    first = _dqn_cfg(tmp_path, "split", 1200)
    run_dir = new_run_dir(first)
    train(first, run_dir)
    resumed = train(_dqn_cfg(tmp_path, "split", 2400), run_dir, resume=True)
    assert resumed.env_steps == straight.env_steps == 2400
    a, b = _leaves(straight.state), _leaves(resumed.state)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert resumed.final_eval == straight.final_eval
    # The resumed run's metrics hold each env step once (lines after the checkpoint were dropped on resume).
    steps = [json.loads(l)["env_steps"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["split"] == "train"]
    assert steps == sorted(set(steps))


def test_resume_with_other_config_refused(tmp_path):
    cfg = _dqn_cfg(tmp_path, "a", 800)
    run_dir = new_run_dir(cfg)
    train(cfg, run_dir)
    other = _dqn_cfg(tmp_path, "a", 1600, lr=1e-2)
    with pytest.raises(ConfigError, match="differing keys: dqn.lr"):
        train(other, run_dir, resume=True)


def _cli(*args, check=True):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "omnitask", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"omnitask {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_cli_train_eval_plot_end_to_end(tmp_path):
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(
        "agent: ppo\nseed: 1\nenv: {id: classic/CartPole-v1, num_envs: 4}\n"
        f"run: {{total_env_steps: 2048, eval_every: 1024, eval_episodes: 2, checkpoint_every: 1024, "
        f"out_dir: '{tmp_path}', name: e2e}}\n"
        "ppo: {num_steps: 64, hidden_sizes: [16]}\n")
    out = _cli("train", str(cfg), "--set", "ppo.lr=1e-3")
    run_dir = tmp_path / "e2e"
    assert "run directory" in out.stderr
    for name in ("config.yaml", "provenance.json", "metrics.jsonl", "final_eval.json", "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").iterdir()), "no TensorBoard event file"
    assert (run_dir / "checkpoints").is_dir()
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["seed"] == 1 and "jax" in provenance["packages"]
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows if r["split"] == "eval"] == [1024, 2048]
    assert "lr: 0.001" in (run_dir / "config.yaml").read_text()
    ev = _cli("eval", str(run_dir), "--episodes", "2")
    assert "return_mean" in ev.stderr and json.loads((run_dir / "eval.json").read_text())["env_steps"] == 2048
    (run_dir / "learning_curve.png").unlink()
    _cli("plot", str(run_dir))
    assert (run_dir / "learning_curve.png").stat().st_size > 1000


def test_cli_errors_are_one_clear_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("agent: ppo\nenv: {id: classic/CartPole-v1}\nppo: {lrr: 0.1}\n")
    out = _cli("train", str(cfg), check=False)
    assert out.returncode == 2 and "did you mean 'lr'" in out.stderr and "Traceback" not in out.stderr
    out = _cli("envs", "atari/Pongg", check=False)
    assert out.returncode == 2 and "atari/Pong" in out.stderr
    listing = _cli("envs")
    for env_id in ("classic/CartPole-v1", "atari/Pong", "metaworld/MT10", "traffic/signal-1x1"):
        assert env_id in listing.stdout


def test_eval_video_of_an_atari_policy(tmp_path):
    """`omnitask eval RUN_DIR --video` plays the checkpoint's policy and writes a GIF of real ALE frames."""
    import imageio.v2 as imageio

    from omnitask.checkpoint import Checkpoints
    from PIL import Image

    from omnitask.runner import make_trainer
    from omnitask.video import record_video
    cfg = build_config({
        "agent": "ppo", "env": {"id": "atari/Pong", "num_envs": 1, "options": {"protocol": "dqn"}},
        "run": {"total_env_steps": 16, "out_dir": str(tmp_path), "name": "pong", "progress": False},
        "ppo": {"num_steps": 16, "num_minibatches": 1, "num_epochs": 1}})
    run_dir = new_run_dir(cfg)
    # One PPO update and a checkpoint (a full evaluation of Pong games would dominate the test), then the video.
    trainer = make_trainer(cfg, run_dir)
    try:
        state, _, steps = trainer.train_step(trainer.init(jax.random.PRNGKey(0)))
        ckpts = Checkpoints(run_dir)
        ckpts.save(steps, state, {"env_steps": steps, "iteration": 1, "agent": "ppo"})
        ckpts.close()
    finally:
        trainer.close()
    video = record_video(run_dir, max_steps=40)
    out = video.path
    frames = imageio.mimread(out)  # GIF writers merge identical consecutive frames, so count distinct ones
    assert out.name == "eval_16.gif" and len(frames) >= 10 and frames[0].shape == (210, 160, 3)
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])  # the game moves
    # Real time: Pong with frame skip 4 runs 15 agent steps per second -> 70 ms per frame (GIF delays are in cs).
    assert video.steps_per_second == 15 and video.stride == 1 and video.delay_cs == 7
    with Image.open(out) as gif:
        assert gif.info["duration"] == 70
    assert video.episode_length == 40 and not video.finished and np.isfinite(video.episode_return)
