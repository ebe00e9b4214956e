"""Loss terms and n-step value targets (pure functions; ``B`` batch, ``T`` unroll steps, ``L`` window rows)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from agents.scalezero.search import gaussian_policy
from agents.scalezero.transforms import value_to_target


def n_step_targets(reward, terminated, truncated, valid, in_range, boot_value, discount: float, n: int, t: int):
    """n-step returns for the first ``t`` rows of each window.

    reward/terminated/truncated/valid/in_range ``[B, L]`` with ``L >= t + n``; ``valid`` = row in the root's episode;
    boot_value ``[B, L]`` target-network values of every row's observation. A termination at row ``i`` stops the
    sum (no bootstrap); a truncation at row ``i`` bootstraps with ``gamma^(i-s+1) * V(obs_i)`` (final observation not
    stored, one step early). Returns ``(targets [B, t], ok [B, t])``; ``ok`` is False when the window ran past the
    newest stored row before the return was complete.
    """
    targets, oks = [], []
    for s in range(t):
        g = jnp.zeros(reward.shape[0])
        alive = valid[:, s]  # still inside the root's episode and not yet ended
        ok = jnp.ones_like(alive)
        for i in range(n):
            r = s + i
            ok = ok & ~(alive & ~in_range[:, r])
            alive = alive & valid[:, r]
            g = g + jnp.where(alive, discount ** i * reward[:, r], 0.0)
            trunc = alive & truncated[:, r] & ~terminated[:, r]
            g = g + jnp.where(trunc, discount ** (i + 1) * boot_value[:, r], 0.0)
            alive = alive & ~terminated[:, r] & ~truncated[:, r]
        nxt = s + n
        ok = ok & ~(alive & ~in_range[:, nxt])  # episode continues beyond the written data: no target yet
        alive = alive & valid[:, nxt]
        g = g + jnp.where(alive, discount ** n * boot_value[:, nxt], 0.0)
        targets.append(g)
        oks.append(ok)
    return jnp.stack(targets, 1), jnp.stack(oks, 1)


def masked_mean(x, mask, weight=None):
    """Mean of ``x [B, T]`` over ``mask``; ``weight [B]`` optional per-sequence importance weights."""
    m = mask.astype(jnp.float32)
    if weight is not None:
        m = m * weight[:, None]
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(mask), 1.0)


def categorical_ce(logits, target_probs):
    """``[..., N], [..., N] -> [...]``."""
    return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def scalar_ce(logits, values, num_bins: int, support_max: float):
    """CE of categorical ``logits [..., bins]`` against two-hot(h(values [...]))."""
    return categorical_ce(logits, jax.lax.stop_gradient(value_to_target(values, num_bins, support_max)))


def policy_loss_and_entropy(policy_out, target, sampled, continuous: bool):
    """Discrete: CE(logits, visit distribution). Continuous (Sampled MuZero): -sum_k target_k log pi(a_k).

    policy_out ``[B, T, P]``; target ``[B, T, K]``; sampled ``[B, T, K, A]``. Returns ``(loss [B, T], entropy [B, T])``.
    """
    if not continuous:
        logp = jax.nn.log_softmax(policy_out, axis=-1)
        return -jnp.sum(target * logp, -1), -jnp.sum(jnp.exp(logp) * logp, -1)
    mean, log_std = gaussian_policy(policy_out)  # [B, T, A]
    z = (sampled - mean[..., None, :]) / jnp.exp(log_std)[..., None, :]
    logp = jnp.sum(-0.5 * z ** 2 - log_std[..., None, :] - 0.5 * jnp.log(2 * jnp.pi), -1)  # [B, T, K]
    entropy = jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), -1)
    return -jnp.sum(target * logp, -1), entropy
