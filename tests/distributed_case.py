"""One process of a multi-process run (tests/test_distributed.py starts them): tiny PPO and DQN CartPole runs with
``run.mesh: {data: -1}`` over every process's devices, through the run loop. Process 0 saves the final params.

    python tests/distributed_case.py OUT_DIR NUM_PROCESSES PROCESS_ID PORT RUNS  # NUM_PROCESSES=1: no distributed

RUNS, comma-separated: ``AGENT`` (the whole run -> AGENT-p<N>.npz), ``AGENT:part`` (the first half of the budget,
checkpointed at its end, in run ``AGENT-part``), ``AGENT:resume`` (``--resume`` of run ``AGENT-part`` to the whole
budget -> AGENT-resumed-p<N>.npz). AGENT: ppo or dqn.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = {"ppo": ("configs/ppo/cartpole.yaml", ["ppo.num_steps=32", "ppo.num_minibatches=2", "ppo.num_epochs=2",
                                              "ppo.updates_per_train_step=2", "ppo.hidden_sizes=[32]"], 512),
        "dqn": ("configs/dqn/cartpole.yaml", ["dqn.steps_per_train_step=50", "dqn.learning_starts=100",
                                              "dqn.buffer_size=800", "dqn.batch_size=16", "dqn.hidden_sizes=[32]"],
                400)}


def main(out_dir: str, num_processes: int, process_id: int, port: int, runs: list[str]) -> None:
    import jax

    from omnitask.config import load_config
    from omnitask.runner import train
    from omnitask.run_dir import new_run_dir
    out = Path(out_dir)
    dist = (f"run.distributed={{coordinator: '127.0.0.1:{port}', num_processes: {num_processes}, "
            f"process_id: {process_id}}}") if num_processes > 1 else "run.distributed={}"
    for run in runs:
        agent, _, kind = run.partition(":")
        config, overrides, total = RUNS[agent]
        steps = total // 2 if kind == "part" else total
        name = f"{agent}-part" if kind in ("part", "resume") else agent
        cfg = load_config(ROOT / config, overrides + [
            "env.num_envs=4", f"run.total_env_steps={steps}", "run.eval_every=0", "run.eval_episodes=4",
            f"run.checkpoint_every={steps}", f"run.out_dir={out / f'p{num_processes}'}", f"run.name={name}",
            "run.progress=false", "run.loggers=[jsonl]", "run.mesh={data: -1}", dist])
        from omnitask.distributed import initialize, is_primary
        initialize(cfg.run)
        if kind == "resume":
            run_dir = out / f"p{num_processes}" / name
        else:
            run_dir = new_run_dir(cfg) if is_primary() else out / f"p{num_processes}" / name
        if num_processes > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices(f"run dir {run}")
        result = train(cfg, run_dir, resume=kind == "resume")
        train_state = result.state.train_state if agent == "ppo" else result.state.agent.train_state
        leaves = [np.asarray(jax.device_get(x)) for x in jax.tree.leaves(train_state.params)]  # replicated
        # the whole train state (params, target, optimiser moments, step): replicated, so readable on process 0
        state = {f"ts_{i}": np.asarray(jax.device_get(x)) for i, x in enumerate(jax.tree.leaves(train_state))}
        if is_primary() and kind != "part":
            tag = "-resumed" if kind == "resume" else ""
            np.savez(out / f"{agent}{tag}-p{num_processes}.npz", *leaves, **state,
                     eval=result.final_eval["return_mean"], devices=jax.device_count(),
                     processes=jax.process_count(), env_steps=result.env_steps)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(","))
