"""ScaleZeroConfig: the one typed config of the ScaleZero agent (the ``scalezero:`` section of an experiment YAML).

Defaults are the CPU-sized values; reference-size values (paper / LightZero) are given in each comment and used in
``configs/scalezero/atari8.yaml`` etc. Derived values (token counts, task lists) are computed, never written back.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional


@dataclasses.dataclass
class ScaleZeroConfig:
    # ---------------- observation encoder ----------------
    encoder: str = "auto"  # auto | mlp | resnet | vit. auto: mlp for vector obs, resnet for images (ref: vit multi-task)
    latent_dim: int = 64  # D, token width (ref 768)
    mlp_encoder_hidden: int = 128  # hidden width of the MLP encoder for vector observations
    resnet_channels: int = 64  # ResNet channels (ref 64); 64x64 -> 8x8 by three stride-2 stages
    resnet_blocks: int = 1  # residual blocks per stage (ref 1)
    vit_patch: int = 8  # ViT patch size (ref 8)
    vit_depth: int = 6  # ViT depth (ref small 6 / base 12)
    vit_heads: int = 6  # ViT heads (ref small 6 / base 12)
    vit_mlp_dim: int = 2048  # ViT MLP hidden (ref small 2048 / base 3072)
    latent_norm: str = "simnorm"  # simnorm | layernorm of the encoder output (ref: LayerNorm in ScaleZero Atari)
    simnorm_group: int = 8  # SimNorm group size
    # ---------------- transformer backbone ----------------
    num_layers: int = 2  # causal transformer blocks (ref 4 or 8 for ScaleZero Atari)
    num_heads: int = 4  # attention heads (ref 24 at D=768)
    ffn: str = "moe"  # moe | dense: FFN of every block (dense = the ablation)
    num_experts: int = 8  # routed SwiGLU experts (ref 8)
    shared_expert: bool = True  # one always-on GELU MLP beside the routed experts (ref True)
    expert_hidden_ratio: int = 4  # expert / dense MLP hidden = ratio * D (ref 4)
    expert_capacity_factor: float = 0.0  # MoE: >0 = routed-only compute with factor * N / E slots per expert (tokens
    # over capacity keep only the shared expert; 2.0 suits balanced routing); 0 = every expert on every token (exact)
    load_balance_coef: float = 0.01  # Switch-style load-balancing loss E*sum_e f_e*P_e weight (ref: none = 0; without
    # it the top-1 router collapses here: one expert took 81% of CartPole tokens). Switch Transformer's 0.01.
    # ---------------- heads / supports ----------------
    head_hidden_ratio: int = 1  # per-task heads: LN -> Linear(D, ratio*D) -> LN -> GELU -> Linear (ref 1)
    num_bins: int = 101  # two-hot bins for value and reward (ref 101)
    support_max: float = 50.0  # support is [-support_max, support_max] in h-space (ref 50)
    # ---------------- Dynamic Parameter Scaling (LoRA curriculum) ----------------
    dps: bool = False  # enable the LoRA-stage curriculum (off = plain ScaleZero)
    num_stages: int = 5  # base stage + (num_stages - 1) LoRA adapters (ref 5)
    lora_rank: int = 8  # LoRA rank r (ref 64)
    lora_alpha: float = 8.0  # LoRA alpha; adapter scale = alpha / r (ref 32)
    min_stage0_iters: int = 200  # learner updates before the first switch is allowed (ref 50k)
    max_stage_iters: int = 200  # a stage switches at the latest after this many updates (ref 20k)
    solve_eval_every: int = 200  # DPS: learner updates between "solved" evaluations (ref eval_freq 1e4)
    solve_eval_episodes: int = 3  # DPS: greedy evaluation games per task; solved = their mean >= target (ref 3)
    train_return_window: int = 10  # train_return/<task> = mean return of the task's last N finished training games
    target_returns: List[float] = dataclasses.field(default_factory=list)  # per task "solved" return; [] = never
    random_returns: List[float] = dataclasses.field(default_factory=list)  # per task random-policy return (norm.)
    human_returns: List[float] = dataclasses.field(default_factory=list)  # per task human return (norm.); []=target
    # ---------------- search ----------------
    search: str = "gumbel_muzero"  # gumbel_muzero | muzero (mctx policies)
    num_simulations: int = 8  # simulations per collection decision (ref 50; 25-50 collect)
    eval_num_simulations: int = 8  # simulations per evaluation decision (ref 50)
    max_considered_actions: int = 16  # gumbel: actions considered at the root
    dirichlet_alpha: float = 0.3  # muzero collection root noise (ref 0.3); never at evaluation
    dirichlet_fraction: float = 0.25  # (ref 0.25)
    pb_c_init: float = 1.25  # PUCT c1 (ref 1.25)
    pb_c_base: float = 19652.0  # PUCT c2 (ref 19652)
    collect_temperature: float = 0.25  # muzero: visit-count temperature at collection (ref 0.25)
    gumbel_scale: float = 1.0  # gumbel: scale of the root Gumbel noise at collection (0 at evaluation)
    gumbel_rescale_q: bool = True  # gumbel: min-max rescale each node's completed Q to [0, 1] before sigma (mctx /
    # paper default). False: sigma reads raw Q (use only where values are O(1), e.g. clipped Atari rewards): a
    # weak model's sub-noise Q spreads (0.3-5% of the value) then stay small instead of becoming one-hot targets
    context_steps: int = 4  # inference context window in steps (ref 4 = 8 tokens)
    num_sampled_actions: int = 8  # continuous actions: K actions sampled per node (Sampled MuZero)
    # ---------------- replay and targets ----------------
    unroll_steps: int = 5  # H, steps per training sequence (ref 10)
    td_steps: int = 5  # n of the n-step value target (ref 5)
    discount: float = 0.997  # (ref 0.997)
    replay_capacity: int = 20000  # transitions kept per task (memory bound; reported as replay/bytes)
    batch_size: int = 64  # total sequences per update, split equally across unsolved tasks (ref 512)
    prioritized: bool = False  # prioritised replay by |v - target| at step 0 (ref off for multi-task)
    priority_alpha: float = 0.6  # (ref 0.6)
    priority_beta: float = 0.4  # (ref 0.4)
    reanalyse_fraction: float = 0.0  # fraction of each batch whose policy target is recomputed by search now
    #                                   (no exploration noise; ref reanalyze_ratio 0 in the ScaleZero configs)
    reanalyse_every: int = 0  # buffer reanalysis every N train steps, 0 = off (ref buffer_reanalyze_freq 1/50 -> 50)
    reanalyse_batch: int = 160  # windows (unroll_steps roots each) whose stored policy targets one reanalysis rewrites
    reanalyse_partition: float = 0.75  # reanalyse only the oldest fraction of each task's rows (ref 0.75)
    reanalyse_noise: bool = True  # root exploration noise in the buffer-reanalysis search (ref: Dirichlet, on)
    # ---------------- learner ----------------
    learning_rate: float = 1e-3  # AdamW lr (ref 1e-4)
    adam_b1: float = 0.9  # (ref 0.9)
    adam_b2: float = 0.95  # (ref 0.95)
    weight_decay: float = 1e-4  # AdamW decay, only on tensors with >= 2 dims
    grad_clip: float = 5.0  # global-norm clip (ref 5)
    target_ema: float = 0.05  # target <- (1-tau) target + tau online, every update (ref 0.05)
    w_latent: float = 10.0  # next-latent MSE weight (ref 10)
    w_reward: float = 1.0  # reward CE weight (ref 1)
    w_value: float = 0.5  # value CE weight (ref 0.5)
    w_policy: float = 1.0  # policy CE weight (ref 1)
    w_entropy: float = 1e-3  # policy entropy bonus (ref 1e-4 .. 5e-3)
    w_inverse: float = 0.0  # inverse-dynamics auxiliary loss (not in the reference; 0 = off, no extra parameters):
    # CE of an MLP head on the online latents (z_t, z_t+1) against the action a_t, discrete actions only. It makes
    # the encoder keep what the agent controls (e.g. the player sprite on Atari), which the latent-consistency loss
    # alone lets collapse: on random Asterix frames the encoder's frame-to-frame change shrank 10x in 100 updates
    # and the dynamics ignored the action (benchmarks/scalezero_atari_pilot.py)
    # ---------------- training loop ----------------
    collect_steps: int = 8  # env steps per env per train_step
    updates_per_iter: int = 4  # learner updates per train_step
    warmup_transitions: int = 256  # stored transitions per task before updates start
    absorbing_terminal: bool = False  # train unroll rows after a termination as absorbing states (value and reward
    # targets 0, MuZero's treatment; LightZero masks them): without it the model never learns that a terminal step
    # (an Atari life loss in training) leads to zero value, and the search, which predicts no termination, does not
    # see death as a loss. On in the CPU Atari config; off elsewhere (earlier results unchanged)
    reward_clip: float = 0.0  # >0: clip training rewards to [-c, c] (Atari protocol uses 1); eval never clips
    # ---------------- tasks ----------------
    context_tasks: List[Dict[str, float]] = dataclasses.field(default_factory=list)
    # ^ for single-task env ids: one context dict per task (envs split evenly); [] = use the env's own task_ids
    task_names: List[str] = dataclasses.field(default_factory=list)  # names for context_tasks ([] = task0..)
    eval_num_envs: int = 0  # eval envs (per task with context_tasks); 0 = training num_envs (reuses the compiled search)
    max_eval_steps: int = 0  # cap on evaluation env steps per episode batch (0 = env's max_episode_steps)


def validate(cfg: ScaleZeroConfig) -> None:
    """Refuse inconsistent settings with a message naming the field and what is allowed."""
    choices = {"encoder": ("auto", "mlp", "resnet", "vit"), "latent_norm": ("simnorm", "layernorm"),
               "ffn": ("moe", "dense"), "search": ("gumbel_muzero", "muzero")}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"scalezero.{name}={getattr(cfg, name)!r}; allowed: {', '.join(allowed)}")
    if cfg.latent_dim % cfg.num_heads:
        raise ValueError(f"scalezero.latent_dim={cfg.latent_dim} must be divisible by num_heads={cfg.num_heads}")
    if cfg.latent_norm == "simnorm" and cfg.latent_dim % cfg.simnorm_group:
        raise ValueError(f"scalezero.latent_dim={cfg.latent_dim} must be divisible by simnorm_group")
    for name in ("unroll_steps", "td_steps", "num_simulations", "eval_num_simulations", "batch_size",
                 "context_steps", "collect_steps", "num_stages", "lora_rank", "num_experts"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"scalezero.{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.expert_capacity_factor < 0:
        raise ValueError(f"scalezero.expert_capacity_factor must be >= 0 (0 = all experts), "
                         f"got {cfg.expert_capacity_factor}")
    for name in ("reanalyse_fraction", "reanalyse_partition"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"scalezero.{name} must be in [0, 1], got {getattr(cfg, name)}")
    for name in ("reanalyse_every", "solve_eval_every"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"scalezero.{name} must be >= 0 (0 = off), got {getattr(cfg, name)}")
    for name in ("reanalyse_batch", "solve_eval_episodes", "train_return_window"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"scalezero.{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.w_inverse < 0:
        raise ValueError(f"scalezero.w_inverse must be >= 0 (0 = off), got {cfg.w_inverse}")
    if cfg.load_balance_coef < 0:
        raise ValueError(f"scalezero.load_balance_coef must be >= 0, got {cfg.load_balance_coef}")
    if cfg.dps and cfg.num_stages < 2:
        raise ValueError("scalezero.dps needs num_stages >= 2 (base + at least one adapter)")


def num_tasks_of(cfg: ScaleZeroConfig, env_num_tasks: int) -> int:
    return len(cfg.context_tasks) if cfg.context_tasks else env_num_tasks


def optional_list(values: List[float], n: int, name: str) -> Optional[List[float]]:
    """Check a per-task list has ``n`` entries (or is empty -> None)."""
    if not values:
        return None
    if len(values) != n:
        raise ValueError(f"scalezero.{name} has {len(values)} entries; the run has {n} tasks (one per task)")
    return [float(v) for v in values]
