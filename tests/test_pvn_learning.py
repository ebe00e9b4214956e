"""PVN learns: on MinAtar Breakout, linear Q on frozen PVN features clearly beats linear Q on a frozen random
encoder with the same online budget (same learner seed: same head init, env seeds and exploration noise).

CI form: 50k random transitions, 1.5k pretraining updates (20 tasks per random net), 16k online env steps,
3 vmapped learner seeds, baseline random_linear only, 32 eval episodes per seed; asserts PVN-linear >=
random-linear + 0.75 return and >= 1.4x it (measured: see README "PVN").
Long form (OMNITASK_FULL=1): the whole CPU config (configs/pvn/minatar_breakout_cpu.yaml) incl. end-to-end DQN.
The comparison plot (pvn_comparison.png) is written in the run directory either way.
"""
from pathlib import Path

import pytest

from omnitask.config import load_config
from omnitask.metrics_log import read_metrics
from omnitask.runner import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pvn" / "minatar_breakout_cpu.yaml"

CI_OVERRIDES = [
    "pvn.data.collect_transitions=50000", "pvn.pretrain.num_updates=1500", "pvn.pretrain.updates_per_call=250",
    "pvn.pretrain.indicators.tasks_per_net=20", "pvn.eval.replay_capacity=16000",
    "pvn.eval.eps_decay_steps=8000", "pvn.eval.iterations_per_call=500", "pvn.baselines=[random_linear]",
    "pvn.eval_seeds=3", "pvn.fire_rate_transitions=5000",
    "run.total_env_steps=16000", "run.eval_every=0", "run.eval_episodes=32",
]


@pytest.mark.slow
def test_pvn_linear_beats_random_linear(tmp_path, full_budget):
    overrides = [] if full_budget else CI_OVERRIDES
    cfg = load_config(CONFIG, overrides + [f"run.out_dir={tmp_path}", "run.name=pvn", "run.progress=false",
                                           "run.checkpoint_every=0"])
    result = train(cfg, Path(tmp_path) / "pvn")
    ev = result.final_eval
    pvn, rand = ev["return_mean/pvn_linear"], ev["return_mean/random_linear"]
    print(f"PVN-linear {pvn:.2f} vs random-linear {rand:.2f}"
          + (f" vs DQN {ev['return_mean/dqn']:.2f}" if "return_mean/dqn" in ev else ""))
    assert pvn >= rand + 0.75 and pvn >= 1.4 * rand, f"PVN-linear {pvn:.2f} does not clearly beat random {rand:.2f}"
    # the indicators fired near their target fraction on the collected data
    rows = [r for r in read_metrics(result.run_dir) if "pretrain/fire_rate_mean" in r]
    assert rows and abs(rows[-1]["pretrain/fire_rate_mean"] - 0.2) < 0.03
    assert (result.run_dir / "pvn_comparison.png").stat().st_size > 5_000
    assert (result.run_dir / "encoder" / "encoder.json").is_file()
