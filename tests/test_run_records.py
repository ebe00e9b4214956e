"""Run-directory records: GIF timing at the env's real rate, resume records, idempotent resume of a finished run."""
import json

import pytest

from omnitask.config import build_config
from omnitask.run_dir import new_run_dir
from omnitask.runner import train
from omnitask.video import gif_timing


@pytest.mark.parametrize("rate, stride, delay_cs", [
    (15.0, 1, 7),    # Atari, frame skip 4: 66.7 ms -> 70 ms (5% off: GIF delays are whole centiseconds)
    (60.0, 3, 5),    # Atari, frame skip 1: 2 steps would be 33.3 ms (3 cs: 10% fast), 3 steps are 50 ms
    (80.0, 4, 5),    # Meta-World: every 4th step, exactly 50 ms
    (50.0, 1, 2),    # gymnax CartPole (tau 0.02 s): exactly 20 ms
    (0.2, 1, 500),   # SUMO at 5 s per step
])
def test_gif_timing_is_real_time_and_at_least_2cs(rate, stride, delay_cs):
    assert gif_timing(rate) == (stride, delay_cs)
    assert abs(delay_cs / 100 - stride / rate) <= 0.05 * stride / rate + 1e-12


def test_gif_timing_refuses_a_missing_rate():
    with pytest.raises(ValueError, match="steps_per_second must be > 0"):
        gif_timing(0.0)


def _cfg(out_dir, total):
    return build_config({
        "agent": "dqn", "seed": 3, "env": {"id": "classic/CartPole-v1", "num_envs": 4},
        "run": {"total_env_steps": total, "eval_every": 400, "eval_episodes": 1, "checkpoint_every": 400,
                "out_dir": str(out_dir), "name": "r", "progress": False},
        "dqn": {"steps_per_train_step": 100, "learning_starts": 200, "buffer_size": 1000, "batch_size": 16,
                "hidden_sizes": [16]}})


def test_resume_is_recorded_and_a_finished_run_resumes_as_a_no_op(tmp_path):
    first = _cfg(tmp_path, 400)
    run_dir = new_run_dir(first)
    train(first, run_dir)
    more = _cfg(tmp_path, 800)
    train(more, run_dir, resume=True)
    provenance = json.loads((run_dir / "provenance.json").read_text())
    (record,) = provenance["resumes"]
    assert record["from_env_steps"] == 400 and record["total_env_steps"] == 800
    assert record["changed"] == {"run.total_env_steps": [400, 800]}
    assert "total_env_steps: 800" in (run_dir / "config.yaml").read_text()  # a plain --resume sees the new budget
    evals = [r["env_steps"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
             if r["split"] == "eval"]
    assert evals == [400, 800]  # the resume re-ran no evaluation
    files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    again = train(more, run_dir, resume=True)  # already finished: nothing changes on disk
    stored = json.loads(files["final_eval.json"])
    assert again.env_steps == stored.pop("env_steps") == 800 and again.final_eval == stored
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == files
