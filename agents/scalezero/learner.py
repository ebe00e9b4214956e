"""The learner: ``update(train_state, batch, stage) -> (train_state, metrics, priorities)`` as a pure function.

Loss (UniZero / ScaleZero, reference weights in ScaleZeroConfig): next-latent MSE to the EMA target encoder's
embedding of the next observation, reward CE, value CE against n-step targets bootstrapped from the EMA target
network's passes over windows of trained positions (``bootstrap_values``), policy CE against the search policy, an
entropy bonus, and the MoE load-balancing loss. Terms are masked means over valid unroll steps (the reference sums
over steps; a mean keeps the scale independent of the unroll length).

Optimizer: AdamW (decay only on tensors with >= 2 dims) after global-norm clipping. Curriculum freezing
(``trainable_mask``) zeroes gradients before clipping/Adam and zeroes updates after AdamW, so frozen parameters do
not move (not even by weight decay) while staying in the optimizer state from the start.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from agents.scalezero.config import ScaleZeroConfig
from agents.scalezero.losses import (masked_mean, n_step_targets, policy_loss_and_entropy, scalar_ce)
from agents.scalezero.lora import LORA_PARAM_NAMES
from agents.scalezero.transforms import logits_to_value
from agents.scalezero.world_model import WorldModel, apply_fn
from omnitask.mesh import PARAMS, DataParallel, shard_batch

from omnitask.nonfinite import FINITE_KEY, finite_flag


class TrainState(NamedTuple):
    params: dict
    target_params: dict
    opt_state: optax.OptState
    step: jax.Array  # () int32 learner updates done


def make_optimizer(cfg: ScaleZeroConfig) -> optax.GradientTransformation:
    wd_mask = lambda params: jax.tree_util.tree_map(lambda x: x.ndim >= 2, params)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                       optax.adamw(cfg.learning_rate, b1=cfg.adam_b1, b2=cfg.adam_b2,
                                   weight_decay=cfg.weight_decay, mask=wd_mask))


def init_train_state(params, cfg: ScaleZeroConfig) -> TrainState:
    return TrainState(params, jax.tree_util.tree_map(jnp.array, params), make_optimizer(cfg).init(params),
                      jnp.zeros((), jnp.int32))


def trainable_mask(params, stage, dps: bool):
    """Per-leaf float multipliers (1 = trains) for curriculum ``stage`` (traced int).

    Stage 0 (or DPS off): everything except the LoRA adapters. Stage s >= 1: transformer backbone frozen except
    adapter s (slice s-1 of ``lora_A``/``lora_B``), the base scale a_0 and the scales a_j of the EARLIER adapters
    (1 <= j < s), as LightZero's ``CurriculumLoRALinear``: frozen adapters can be re-weighted, the new adapter's own
    scale stays at 1 (its B starts at 0, so its magnitude is learned by A/B); encoder, embeddings and heads stay
    trainable.
    """
    def leaf_mask(path, x):
        keys = [getattr(p, "key", str(p)) for p in path]
        name = keys[-1]
        in_backbone = "transformer" in keys
        if name in LORA_PARAM_NAMES:
            if not dps:
                return jnp.zeros(x.shape, jnp.float32)
            if name == "lora_scale":  # [n+1]: a_0 and a_j (j < s) train from stage 1 on
                idx = jnp.arange(x.shape[0])
                on = (idx < stage) & (stage >= 1)
                return on.astype(jnp.float32)
            on = (jnp.arange(x.shape[0]) == stage - 1).astype(jnp.float32)  # adapter index s-1
            return on.reshape((-1,) + (1,) * (x.ndim - 1)) * jnp.ones(x.shape, jnp.float32)
        if in_backbone and dps:
            return jnp.where(stage >= 1, 0.0, 1.0) * jnp.ones(x.shape, jnp.float32)
        return jnp.ones(x.shape, jnp.float32)

    return jax.tree_util.tree_map_with_path(leaf_mask, params)


def bootstrap_windows(length: int, unroll: int, td: int) -> list[tuple[int, int]]:
    """``(start, size)`` of the windows the target network reads to value every row of an ``L``-row batch.

    The n-step bootstraps read rows ``td .. L-1`` (row ``s + td`` for unroll step ``s``): as LightZero, they come
    from a window that starts at row ``td`` (its ``value_obs_list`` / ``bootstrap_action_list``: the batch's rows
    shifted by ``td_steps``), split into ``unroll``-step windows. Rows ``0 .. td-1`` (read only by truncation
    bootstraps) come from windows starting at row 0. Every window has at most ``unroll`` steps, so it reads only
    positions ``0 .. 2*unroll-1``, the ones the online network trains (LightZero's ``max_tokens = 2 *
    num_unroll_steps``). The windows partition the rows. E.g. L=15, unroll=10, td=5: [(5, 10), (0, 5)].
    """
    td = min(td, length)
    chunks = lambda lo, hi: [(a, min(unroll, hi - a)) for a in range(lo, hi, unroll)]
    return chunks(td, length) + chunks(0, td)


def bootstrap_values(target_params, tz, batch, stage, model: WorldModel, cfg: ScaleZeroConfig):
    """Target-network values ``[B, L]`` of every window row, each read from its window (above).

    ``tz [B, L, D]``: the target encoder's latents of ``batch.obs``. One target pass per window size over the
    stacked windows of that size ``[B * W, size]`` (rows stay grouped by task: B = G * M, each row's W windows are
    contiguous).
    """
    b, length = batch.seg.shape
    windows = bootstrap_windows(length, min(cfg.unroll_steps, length), cfg.td_steps)
    cols = [None] * length
    for size in sorted({n for _, n in windows}):
        starts = [a for a, n in windows if n == size]
        w = len(starts)
        take = lambda x: jnp.stack([x[:, a:a + size] for a in starts], 1).reshape((b * w, size) + x.shape[2:])
        out = apply_fn(model)(target_params, take(tz), take(batch.action), take(batch.seg), batch.task, stage,
                              batch.task.shape[0], method=WorldModel.sequence)
        vals = logits_to_value(out.value_logits, cfg.support_max).reshape(b, w, size)  # [B, W, size]
        for i, a in enumerate(starts):
            for r in range(size):
                cols[a + r] = vals[:, i, r]
    return jnp.stack(cols, 1)  # [B, L]


def routing_entropy(intermediates, valid, groups: int):
    """Per task slot: entropy (nats, max log E) of the expert-usage distribution of the slot's valid tokens, averaged
    over MoE layers; ``[G]`` (zeros for the dense FFN). ``valid [B, T]``; the MoE layers sow routing ``[B, 2T, E]``.

    Low entropy = the task's tokens go to few experts (router collapse makes it 0 for every task)."""
    routes = [x for path, x in jax.tree_util.tree_flatten_with_path(intermediates)[0]
              if any(getattr(k, "key", None) == "routing" for k in path)]
    if not routes:
        return jnp.zeros((groups,))
    tok = jnp.repeat(valid, 2, axis=1).astype(jnp.float32).reshape(groups, -1)  # [G, M*2T]
    ents = []
    for r in routes:
        r = r.reshape(groups, -1, r.shape[-1])  # [G, M*2T, E]
        usage = jnp.sum(r * tok[..., None], 1) / jnp.maximum(jnp.sum(tok, 1), 1.0)[:, None]  # [G, E]
        ents.append(-jnp.sum(jnp.where(usage > 0, usage * jnp.log(jnp.maximum(usage, 1e-12)), 0.0), -1))
    return jnp.mean(jnp.stack(ents), 0)


def absorbing_rows(terminated, in_episode, written):
    """``[B, T]`` bool: rows after a termination inside the root's episode (``in_episode``), that exist in the
    replay (``written``: their observations are real frames the unroll can take as input)."""
    ended = jnp.cumsum((terminated & in_episode).astype(jnp.int32), axis=1)  # terminations up to and incl. row
    before = ended - (terminated & in_episode).astype(jnp.int32)  # terminations strictly before the row
    return (before > 0) & written


def loss_fn(params, target_params, batch, stage, model: WorldModel, cfg: ScaleZeroConfig):
    """Scalar loss and aux metrics for one batch (see replay.Batch for shapes, ``T = unroll_steps``)."""
    t, n = cfg.unroll_steps, cfg.td_steps
    g = batch.task.shape[0]
    continuous = model.dims.continuous
    apply = apply_fn(model)  # run.precision: bf16 compute on float32 master weights
    valid = batch.seg == 0  # [B, L] rows in the root's episode
    in_range = batch.seg >= 0
    # --- target network: latent targets, and bootstrap values from windows of trained positions ---
    tz = apply(target_params, batch.obs, method=WorldModel.encode)  # [B, L, D]
    boot = bootstrap_values(target_params, tz, batch, stage, model, cfg)  # [B, L]
    reward = batch.reward
    value_target, value_ok = n_step_targets(reward, batch.terminated, batch.truncated, valid, in_range, boot,
                                            cfg.discount, n, t)  # [B, T]
    value_target, latent_target = jax.lax.stop_gradient(value_target), jax.lax.stop_gradient(tz[:, 1:t + 1])
    m = valid[:, :t]
    # absorbing_terminal: unroll rows after a termination in the root's episode continue its sequence with value
    # and reward targets 0 (MuZero's absorbing states), so the model learns that a terminal transition leads to 0
    absorb = (absorbing_rows(batch.terminated[:, :t], m, in_range[:, :t]) if cfg.absorbing_terminal
              else jnp.zeros_like(m))  # [B, T]
    seg = jnp.where(absorb, 0, batch.seg[:, :t])
    value_target = jnp.where(absorb, 0.0, value_target)
    # --- online network over the first T steps ---
    if model.has_inverse:  # one more frame: the inverse head reads (z_t, z_t+1) of the online encoder
        z_all = apply(params, batch.obs[:, :t + 1], method=WorldModel.encode)  # [B, T+1, D]
        z = z_all[:, :t]
    else:
        z = apply(params, batch.obs[:, :t], method=WorldModel.encode)  # [B, T, D]
    out, inter = apply(params, z, batch.action[:, :t], seg, batch.task, stage, g,
                       method=WorldModel.sequence, mutable=["intermediates"])
    m_next = m & valid[:, 1:t + 1] & ~batch.terminated[:, :t] & ~batch.truncated[:, :t]
    m_value, m_reward = (m & value_ok) | absorb, m | absorb
    w = batch.weight
    l_latent = jnp.mean(jnp.square(out.next_latent - latent_target), -1)  # [B, T]
    l_reward = scalar_ce(out.reward_logits, jnp.where(absorb, 0.0, reward[:, :t]), cfg.num_bins, cfg.support_max)
    l_value = scalar_ce(out.value_logits, value_target, cfg.num_bins, cfg.support_max)
    l_policy, entropy = policy_loss_and_entropy(out.policy, batch.policy[:, :t], batch.sampled[:, :t], continuous)
    per_step = (cfg.w_latent * l_latent * m_next + cfg.w_reward * l_reward * m_reward
                + cfg.w_value * l_value * m_value + cfg.w_policy * l_policy * m
                - cfg.w_entropy * entropy * m)  # [B, T]
    terms = {"latent": masked_mean(l_latent, m_next, w), "reward": masked_mean(l_reward, m_reward, w),
             "value": masked_mean(l_value, m_value, w), "policy": masked_mean(l_policy, m, w),
             "entropy": masked_mean(entropy, m, w)}
    if model.has_inverse:  # a_t from (z_t, z_t+1) on the rows whose next frame is in the same episode
        inv_logits = apply(params, z_all[:, :t], z_all[:, 1:], method=WorldModel.inverse)  # [B, T, A]
        l_inv = -jnp.take_along_axis(jax.nn.log_softmax(inv_logits), batch.action[:, :t, None], -1)[..., 0]
        terms["inverse"] = masked_mean(l_inv, m_next, w)
        terms["inverse_acc"] = masked_mean((jnp.argmax(inv_logits, -1) == batch.action[:, :t]).astype(jnp.float32),
                                           m_next)
        per_step = per_step + cfg.w_inverse * l_inv * m_next
    loss = (cfg.w_latent * terms["latent"] + cfg.w_reward * terms["reward"] + cfg.w_value * terms["value"]
            + cfg.w_policy * terms["policy"] - cfg.w_entropy * terms["entropy"]
            + cfg.load_balance_coef * out.lb_loss + cfg.w_inverse * terms.get("inverse", 0.0))
    per_task = jnp.sum(per_step.reshape(g, -1), 1) / jnp.maximum(jnp.sum(m.reshape(g, -1), 1), 1.0)  # [G]
    pred_v0 = logits_to_value(out.value_logits[:, 0], cfg.support_max)
    aux = {"terms": terms, "per_slot_loss": per_task, "load": out.load, "lb_loss": out.lb_loss,
           "routing_entropy": routing_entropy(inter, batch.seg[:, :t] >= 0, g),
           "priority": jnp.abs(pred_v0 - value_target[:, 0]), "value_target_mean": masked_mean(value_target, m),
           "value_pred_mean": jnp.mean(pred_v0)}
    return loss, aux


def update(state: TrainState, batch, stage, *, model: WorldModel, cfg: ScaleZeroConfig):
    """One AdamW step on ``batch`` at curriculum ``stage`` + EMA target update. Pure; jit with model/cfg bound."""
    batch = shard_batch(batch._replace(task=None))._replace(task=batch.task)  # rows over run.mesh (task is [G])
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.target_params, batch, stage,
                                                                   model, cfg)
    mask = trainable_mask(state.params, stage, cfg.dps)
    grads = jax.tree_util.tree_map(jnp.multiply, grads, mask)
    updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    updates = jax.tree_util.tree_map(jnp.multiply, updates, mask)
    params = optax.apply_updates(state.params, updates)
    tau = cfg.target_ema
    target = jax.tree_util.tree_map(lambda tp, p: (1 - tau) * tp + tau * p, state.target_params, params)
    metrics = {"loss": loss, **{f"loss/{k}": v for k, v in aux["terms"].items()},
               "grad_norm": optax.tree.norm(grads), "lb_loss": aux["lb_loss"],
               "value_target_mean": aux["value_target_mean"], "value_pred_mean": aux["value_pred_mean"],
               "per_slot_loss": aux["per_slot_loss"], "expert_load": jnp.mean(aux["load"], 0),
               "per_slot_routing_entropy": aux["routing_entropy"]}
    metrics[FINITE_KEY] = finite_flag(loss, metrics["grad_norm"])
    return TrainState(params, target, opt_state, state.step + 1), metrics, aux["priority"]


def make_update_fn(model: WorldModel, cfg: ScaleZeroConfig, mesh: DataParallel | None = None):
    """Jitted ``update(state, batch, stage)``; the state buffers are donated. ``mesh`` (``run.mesh``): batch rows
    split over its data axis; the state laid out by ``PARAMS`` (replicated, or FSDP over a ``model`` axis)."""
    return (mesh or DataParallel(None)).jit(functools.partial(update, model=model, cfg=cfg),
                                            out_axes=(PARAMS, None, None), donate_argnums=(0,))
