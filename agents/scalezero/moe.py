"""Mixture-of-Experts FFN: routed SwiGLU experts (top-1 per token) plus one always-on shared GELU MLP.

Routing decision (deliberate, differs from the reference): ``gate = softmax(router_logits)`` over ALL experts, the
token goes to ``argmax`` and its output is scaled by that expert's softmax probability. The reference takes the
softmax over the top-k logits only, which for k=1 is identically 1.0, so its router never receives gradient.
Here d(output)/d(router) is non-zero. An optional Switch-Transformer load-balancing loss
``E * sum_e f_e * P_e`` (f = routed fraction, P = mean probability) is returned with the per-expert load.

Compute: every expert runs on every token and the top-1 mask selects (exact top-1 semantics, E x the FFN FLOPs of a
dispatching implementation; fine at CPU sizes, the GPU cost is documented in the README).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from agents.scalezero.lora import LoRAEinsum


class SwiGLUExperts(nn.Module):
    """``num_experts`` SwiGLU MLPs (no bias): ``w2(silu(w1 x) * w3 x)``; x ``[N, D] -> [N, E, D]``."""

    num_experts: int
    hidden: int
    num_adapters: int = 0
    rank: int = 8
    alpha: float = 8.0

    @nn.compact
    def __call__(self, x: jax.Array, stage: jax.Array) -> jax.Array:
        e, d = self.num_experts, x.shape[-1]
        kw = dict(prefix=(e,), num_adapters=self.num_adapters, rank=self.rank, alpha=self.alpha)
        xe = jnp.broadcast_to(x[..., None, :], x.shape[:-1] + (e, d))  # [N, E, D]
        h = nn.silu(LoRAEinsum(self.hidden, name="w1", **kw)(xe, stage)) * LoRAEinsum(self.hidden, name="w3", **kw)(
            xe, stage)
        return LoRAEinsum(d, name="w2", **kw)(h, stage)  # [N, E, D]


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
    """Top-1 MoE FFN. ``x [..., D] -> (y [..., D], aux)`` with ``aux = {'load': [E], 'probs': [E], 'lb_loss': ()}``."""

    num_experts: int
    hidden: int
    shared_expert: bool = True
    num_adapters: int = 0
    rank: int = 8
    alpha: float = 8.0

    @nn.compact
    def __call__(self, x: jax.Array, stage: jax.Array):
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # [N, D]
        logits = nn.Dense(self.num_experts, use_bias=False, name="router")(flat)  # [N, E]
        probs = jax.nn.softmax(logits, axis=-1)
        choice = jnp.argmax(logits, axis=-1)  # [N]
        onehot = jax.nn.one_hot(choice, self.num_experts)  # [N, E]
        gate = jnp.sum(probs * onehot, axis=-1)  # [N], differentiable w.r.t. the router
        experts = SwiGLUExperts(self.num_experts, self.hidden, self.num_adapters, self.rank, self.alpha,
                                name="experts")(flat, stage)  # [N, E, D]
        y = gate[:, None] * jnp.einsum("ne,ned->nd", onehot, experts)
        if self.shared_expert:
            y = y + DenseMLP(self.hidden, name="shared")(flat, stage)
        # per-token routing [..., E] for per-task diagnostics (kept only when applied with mutable=["intermediates"])
        self.sow("intermediates", "routing", onehot.reshape(shape[:-1] + (self.num_experts,)))
        load = jnp.mean(onehot, axis=0)  # [E] fraction of tokens routed to each expert
        mean_probs = jnp.mean(probs, axis=0)  # [E]
        aux = {"load": load, "probs": mean_probs,
               "lb_loss": self.num_experts * jnp.sum(jax.lax.stop_gradient(load) * mean_probs)}
        return y.reshape(shape), aux
