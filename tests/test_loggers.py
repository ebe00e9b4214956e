"""Metric sinks read back by their own readers (TensorBoard's EventAccumulator, the W&B offline log) and
``omnitask compare`` on tiny real runs."""
import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from omnitask.config import ConfigError, build_config
from omnitask.metrics_log import MetricsLogger
from omnitask.run_dir import new_run_dir
from omnitask.runner import train

HAS_WANDB = importlib.util.find_spec("wandb") is not None


def _ppo_cfg(out_dir, name, seed, lr, loggers):
    return build_config({
        "agent": "ppo", "seed": seed, "env": {"id": "classic/CartPole-v1", "num_envs": 4},
        "run": {"total_env_steps": 1024, "eval_every": 512, "eval_episodes": 2, "checkpoint_every": 0,
                "out_dir": str(out_dir), "name": name, "progress": False, "loggers": loggers},
        "ppo": {"num_steps": 64, "hidden_sizes": [16], "lr": lr}})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two PPO learning rates x seeds 0, 1 on CartPole, 1024 env steps each; seed 0 of lr-a also logs to W&B."""
    root = tmp_path_factory.mktemp("sweep")
    for group, lr in (("lr-a", 2.5e-3), ("lr-b", 2.5e-4)):
        for seed in (0, 1):
            loggers = ["jsonl", "tensorboard"] + (["wandb"] if HAS_WANDB and (group, seed) == ("lr-a", 0) else [])
            cfg = _ppo_cfg(root, f"{group}-s{seed}", seed, lr, loggers)
            train(cfg, new_run_dir(cfg))
    return root


def _eval_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "eval"]


def test_tensorboard_reader_loads_our_event_files(sweep):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = sweep / "lr-a-s1"
    acc = ea_mod.EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    train_keys = {f"train/{k}" for r in (run / "metrics.jsonl").read_text().splitlines()
                  for k, v in json.loads(r).items() if json.loads(r)["split"] == "train"
                  and k not in ("split", "env_steps") and v is not None}
    assert {"eval/return_mean", "eval/length_mean"} <= tags and train_keys <= tags, (tags, train_keys)
    events = acc.Scalars("eval/return_mean")
    evals = _eval_rows(run)
    assert [e.step for e in events] == [r["env_steps"] for r in evals] == [512, 1024]
    np.testing.assert_allclose([e.value for e in events], [r["return_mean"] for r in evals], rtol=1e-6)


def _wandb_records(path: Path) -> list[bytes]:
    """Records of a W&B ``.wandb`` log: a 7-byte file header, then LevelDB-log framing (32 KiB blocks; each chunk
    has a 7-byte header crc32/length/type; type 1 = whole record, 2/3/4 = first/middle/last piece)."""
    data, block, pos, pieces, out = path.read_bytes(), 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # block padding
            pos += left
            continue
        payload, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            out.append(payload)
        elif kind == 2:
            pieces = payload
        else:
            pieces += payload
            if kind == 4:
                out.append(pieces)
    return out


@pytest.mark.skipif(not HAS_WANDB, reason="wandb (the `wandb` extra) is not installed")
def test_wandb_logger_writes_an_offline_run_with_our_metrics(sweep):
    from wandb.proto import wandb_internal_pb2 as pb
    run = sweep / "lr-a-s0"
    (log,) = run.glob("wandb/offline-run-*/run-*.wandb")  # offline: no account, nothing sent
    assert log.parent.name.endswith((run / "wandb_id.txt").read_text().strip())
    history = []
    for raw in _wandb_records(log):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "history":
            history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    logged = [(h["env_steps"], h["eval/return_mean"]) for h in history if "eval/return_mean" in h]
    assert logged == [(r["env_steps"], pytest.approx(r["return_mean"])) for r in _eval_rows(run)]
    assert any(k.startswith("train/") for h in history for k in h)


def test_logger_names_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="unknown logger 'csv'; allowed: jsonl, tensorboard, wandb"):
        MetricsLogger(tmp_path, loggers=["jsonl", "csv"])
    with pytest.raises(ConfigError, match="jsonl is missing"):
        MetricsLogger(tmp_path, loggers=["tensorboard"])


def test_compare_tiny_real_runs(sweep, tmp_path):
    pytest.importorskip("rliable")
    from omnitask.compare import CompareOptions, compare
    from omnitask.compare.plots import plot_comparison
    from omnitask.compare.report import write_reports
    c = compare([sweep], CompareOptions(normalise="random-max", reps=200, baseline="lr-b"))
    assert c.table.seeds == {"lr-a": [0, 1], "lr-b": [0, 1]} and c.table.labels == ("classic/CartPole-v1",)
    for g in ("lr-a", "lr-b"):
        finals = [json.loads((sweep / f"{g}-s{s}" / "final_eval.json").read_text())["return_mean"] for s in (0, 1)]
        np.testing.assert_allclose(c.table.scores[g][:, 0], (np.array(finals) - 22.5) / (500 - 22.5))
        assert list(c.curves[g][0]) == [512, 1024]
    (p,) = c.paired
    assert p.seeds == (0, 1) and p.mean_difference.point == pytest.approx(
        float(np.mean(c.table.scores["lr-a"] - c.table.scores["lr-b"])))
    md, _ = write_reports(c, tmp_path)
    assert "| lr-a − lr-b | 2 |" in md.read_text()
    assert plot_comparison(c, tmp_path / "compare.png").stat().st_size > 10_000
