"""Mixture-of-Experts FFN: routed SwiGLU experts (top-1 per token) plus one always-on shared GELU MLP.

Routing decision (deliberate, differs from the reference): ``gate = softmax(router_logits)`` over ALL experts, the
token goes to ``argmax`` and its output is scaled by that expert's softmax probability. The reference takes the
softmax over the top-k logits only, which for k=1 is identically 1.0, so its router never receives gradient.
Here d(output)/d(router) is non-zero. An optional Switch-Transformer load-balancing loss
``E * sum_e f_e * P_e`` (f = routed fraction, P = mean probability) is returned with the per-expert load.

Compute (``capacity_factor``): > 0 dispatches each token to its routed expert only (sorted dispatch: a token's slot is
its rank among the tokens routed to the same expert; each expert processes ``capacity = min(N, max(ceil(factor * N /
E), MIN_CAPACITY))`` slots, so the FFN costs ~factor x one dense FFN instead of E x). A token beyond its expert's
capacity is dropped from the routed part (it keeps the shared expert and the residual, as in Switch Transformer);
``aux['dropped']`` reports the fraction. With at most MIN_CAPACITY tokens (a search step over a few roots) nothing can
be dropped. ``capacity_factor = 0`` runs every expert on every token and selects (the exact oracle used in tests).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from agents.scalezero.lora import LoRAEinsum

MIN_CAPACITY = 8  # slots per expert at least: small token counts (search steps) are never dropped


class SwiGLUExperts(nn.Module):
    """``num_experts`` SwiGLU MLPs (no bias): ``w2(silu(w1 x) * w3 x)``; xe ``[..., E, D] -> [..., E, D]`` (expert e
    applied to slice e)."""

    num_experts: int
    hidden: int
    num_adapters: int = 0
    rank: int = 8
    alpha: float = 8.0

    @nn.compact
    def __call__(self, xe: jax.Array, stage: jax.Array) -> jax.Array:
        e, d = self.num_experts, xe.shape[-1]
        kw = dict(prefix=(e,), num_adapters=self.num_adapters, rank=self.rank, alpha=self.alpha)
        h = nn.silu(LoRAEinsum(self.hidden, name="w1", **kw)(xe, stage)) * LoRAEinsum(self.hidden, name="w3", **kw)(
            xe, stage)
        return LoRAEinsum(d, name="w2", **kw)(h, stage)  # [..., E, D]


class DenseMLP(nn.Module):
    """GELU MLP ``D -> hidden -> D`` with bias (the shared expert and the dense-FFN ablation)."""

    hidden: int
    num_adapters: int = 0
    rank: int = 8
    alpha: float = 8.0
    lora: bool = False  # dense ablation: adapters on the FFN like on experts; shared expert: none (as reference)

    @nn.compact
    def __call__(self, x: jax.Array, stage: jax.Array) -> jax.Array:
        n = self.num_adapters if self.lora else 0
        kw = dict(use_bias=True, num_adapters=n, rank=self.rank, alpha=self.alpha)
        h = nn.gelu(LoRAEinsum(self.hidden, name="fc", **kw)(x, stage))
        return LoRAEinsum(x.shape[-1], name="proj", **kw)(h, stage)


class MoEFFN(nn.Module):
    """Top-1 MoE FFN. ``x [..., D] -> (y [..., D], aux)`` with
    ``aux = {'load': [E], 'probs': [E], 'lb_loss': (), 'dropped': ()}``."""

    num_experts: int
    hidden: int
    shared_expert: bool = True
    num_adapters: int = 0
    rank: int = 8
    alpha: float = 8.0
    capacity_factor: float = 0.0  # > 0: routed tokens only, with this capacity factor; 0: all experts (oracle)

    @nn.compact
    def __call__(self, x: jax.Array, stage: jax.Array):
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # [N, D]
        logits = nn.Dense(self.num_experts, use_bias=False, name="router")(flat)  # [N, E]
        probs = jax.nn.softmax(logits, axis=-1)
        choice = jnp.argmax(logits, axis=-1)  # [N]
        onehot = jax.nn.one_hot(choice, self.num_experts)  # [N, E] float32 (exact counts below)
        gate = jnp.sum(probs * onehot, axis=-1).astype(x.dtype)  # [N], differentiable w.r.t. the router
        experts = SwiGLUExperts(self.num_experts, self.hidden, self.num_adapters, self.rank, self.alpha,
                                name="experts")
        n, e = flat.shape[0], self.num_experts
        if self.capacity_factor > 0:
            cap = min(n, max(math.ceil(self.capacity_factor * n / e), MIN_CAPACITY))
            slot = jnp.sum((jnp.cumsum(onehot, axis=0) - 1.0) * onehot, -1).astype(jnp.int32)  # [N] rank in expert
            keep = slot < cap  # [N]
            buf = jnp.zeros((cap, e, flat.shape[-1]), flat.dtype)
            buf = buf.at[jnp.where(keep, slot, cap), choice].set(flat, mode="drop")  # [cap, E, D]
            routed = experts(buf, stage)[jnp.minimum(slot, cap - 1), choice]  # [N, D]
            y = (gate * keep)[:, None] * routed
            dropped = jnp.mean((~keep).astype(jnp.float32))
        else:
            xe = jnp.broadcast_to(flat[:, None, :], (n, e, flat.shape[-1]))  # [N, E, D]
            y = gate[:, None] * jnp.einsum("ne,ned->nd", onehot.astype(x.dtype), experts(xe, stage))
            dropped = jnp.zeros(())
        if self.shared_expert:
            y = y + DenseMLP(self.hidden, name="shared")(flat, stage)
        # per-token routing [..., E] for per-task diagnostics (kept only when applied with mutable=["intermediates"])
        self.sow("intermediates", "routing", onehot.reshape(shape[:-1] + (self.num_experts,)))
        load = jnp.mean(onehot, axis=0)  # [E] fraction of tokens routed to each expert
        mean_probs = jnp.mean(probs, axis=0)  # [E]
        aux = {"load": load, "probs": mean_probs,
               "lb_loss": self.num_experts * jnp.sum(jax.lax.stop_gradient(load) * mean_probs), "dropped": dropped}
        return y.reshape(shape), aux
