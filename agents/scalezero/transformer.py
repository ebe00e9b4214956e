"""nanoGPT-style pre-LN causal transformer over [latent, action] tokens, with MoE or dense FFNs and LoRA adapters.

``Transformer(x [B, T, D], mask [B, T, T] bool, stage ()) -> (y [B, T, D], aux)``; ``aux['load'] [L, E]`` is the
per-layer expert load, ``aux['lb_loss']`` the summed load-balancing loss (zeros for the dense FFN).
No dropout (deterministic training; the reference uses 0.1).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from agents.scalezero.lora import LoRAEinsum
from agents.scalezero.moe import DenseMLP, MoEFFN


class CausalSelfAttention(nn.Module):
    num_heads: int
    num_adapters: int = 0
    rank: int = 8
    alpha: float = 8.0

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, stage: jax.Array) -> jax.Array:
        b, t, d = x.shape
        hd = d // self.num_heads
        kw = dict(use_bias=True, num_adapters=self.num_adapters, rank=self.rank, alpha=self.alpha)
        q = LoRAEinsum(d, name="q", **kw)(x, stage).reshape(b, t, self.num_heads, hd)
        k = LoRAEinsum(d, name="k", **kw)(x, stage).reshape(b, t, self.num_heads, hd)
        v = LoRAEinsum(d, name="v", **kw)(x, stage).reshape(b, t, self.num_heads, hd)
        att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(hd).astype(x.dtype)  # [B, H, T, T]
        att = jnp.where(mask[:, None], att, jnp.finfo(att.dtype).min)
        att = jax.nn.softmax(att, axis=-1)
        y = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
        return LoRAEinsum(d, name="proj", **kw)(y, stage)


class Block(nn.Module):
    num_heads: int
    ffn: str
    num_experts: int
    hidden: int
    shared_expert: bool
    num_adapters: int
    rank: int
    alpha: float

    @nn.compact
    def __call__(self, x, mask, stage):
        lora = dict(num_adapters=self.num_adapters, rank=self.rank, alpha=self.alpha)
        x = x + CausalSelfAttention(self.num_heads, name="attn", **lora)(nn.LayerNorm(name="ln1")(x), mask, stage)
        h = nn.LayerNorm(name="ln2")(x)
        if self.ffn == "moe":
            y, aux = MoEFFN(self.num_experts, self.hidden, self.shared_expert, name="moe", **lora)(h, stage)
        else:
            y = DenseMLP(self.hidden, lora=True, name="mlp", **lora)(h, stage)
            aux = {"load": jnp.zeros((self.num_experts,)), "probs": jnp.zeros((self.num_experts,)),
                   "lb_loss": jnp.zeros(())}
        return x + y, aux


class Transformer(nn.Module):
    num_layers: int
    num_heads: int
    ffn: str = "moe"
    num_experts: int = 8
    hidden: int = 256
    shared_expert: bool = True
    num_adapters: int = 0
    rank: int = 8
    alpha: float = 8.0

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, stage: jax.Array):
        loads, lb = [], jnp.zeros(())
        for i in range(self.num_layers):
            x, aux = Block(self.num_heads, self.ffn, self.num_experts, self.hidden, self.shared_expert,
                           self.num_adapters, self.rank, self.alpha, name=f"block{i}")(x, mask, stage)
            loads.append(aux["load"])
            lb = lb + aux["lb_loss"]
        return nn.LayerNorm(name="ln_f")(x), {"load": jnp.stack(loads), "lb_loss": lb}
