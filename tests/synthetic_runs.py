"""Run directories written by hand (config.yaml, metrics.jsonl, final_eval.json) for ``omnitask compare`` tests:
scores are chosen, so aggregates and differences have known answers."""
from __future__ import annotations

import json
from pathlib import Path

import yaml


def write_run(root: Path, name: str, *, seed: int, env_id: str = "classic/CartPole-v1", agent: str = "ppo",
              evals: dict[int, dict] | None = None, final: dict | None = None, extra_config: dict | None = None
              ) -> Path:
    """``evals``: env_steps -> eval metrics (also the final evaluation's row unless ``final`` is given)."""
    run = Path(root) / name
    run.mkdir(parents=True)
    cfg = {"agent": agent, "seed": seed, "env": {"id": env_id, "num_envs": 4}, "run": {"name": name},
           **(extra_config or {})}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    evals = evals or {}
    lines = [json.dumps({"split": "train", "env_steps": s, "loss": 0.1}) for s in evals]
    lines += [json.dumps({"split": "eval", "env_steps": s, **m}) for s, m in evals.items()]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if final is None and evals:
        last = max(evals)
        final = {"env_steps": last, **evals[last]}
    if final is not None:
        (run / "final_eval.json").write_text(json.dumps(final))
    return run
