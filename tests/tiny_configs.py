"""Tiny agent configs shared by the run-loop reliability tests (divergence, resume): seconds per run on a CPU."""
from pathlib import Path

from omegaconf import OmegaConf

from omnitask.config import build_config

ROOT = Path(__file__).resolve().parent.parent
CARTPOLE = {"id": "classic/CartPole-v1", "num_envs": 4}
MINATAR = {"id": "minatar/Breakout", "num_envs": 4}
PPO_TINY = {"num_steps": 32, "updates_per_train_step": 1, "hidden_sizes": [16]}  # 128 env steps per train step
DQN_TINY = {"steps_per_train_step": 50, "learning_starts": 200, "buffer_size": 1000, "batch_size": 16,
            "hidden_sizes": [16]}  # 200 env steps per train step
SCALEZERO_TINY = {"latent_dim": 16, "mlp_encoder_hidden": 16, "num_layers": 1, "num_heads": 2, "num_experts": 2,
                  "num_simulations": 4, "eval_num_simulations": 4, "unroll_steps": 2, "td_steps": 2, "batch_size": 8,
                  "collect_steps": 8, "updates_per_iter": 1, "warmup_transitions": 16}  # 32 env steps per step
PVN_TINY = {"data": {"collect_transitions": 2000, "chunk_size": 1000},
            "pretrain": {"num_tasks": 10, "encoder": {"feature_dim": 16}, "num_updates": 4, "updates_per_call": 2,
                         "warmup_steps": 0, "batch_size": 16},
            "eval": {"replay_capacity": 400, "min_replay": 40, "batch_size": 8, "iterations_per_call": 20},
            "baselines": [], "eval_seeds": 1, "fire_rate_transitions": 200}  # online: 80 env steps per step
MBTL_TINY = {"axes": [{"name": "length", "num": 3}], "source_trainer": "run_loop", "steps_per_task": 256,
             "eval_episodes": 1, "perf_low": 0.0, "perf_high": 500.0, "base_config": PPO_TINY}


def experiment(agent: str, env: dict, section: dict, run: dict, seed: int = 0):
    """A typed experiment config; PVN starts from its CPU config (encoder/indicator architecture) shrunk."""
    raw = {"agent": agent, "seed": seed, "env": env, "run": {"progress": False, **run}, agent: section}
    if agent == "pvn":
        raw = OmegaConf.to_container(OmegaConf.merge(OmegaConf.load(ROOT / "configs/pvn/minatar_breakout_cpu.yaml"),
                                                     raw))
    return build_config(raw)
