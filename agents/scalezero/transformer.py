"""nanoGPT-style pre-LN causal transformer over [latent, action] tokens, with MoE or dense FFNs and LoRA adapters.

Two modes, same parameters:
  * sequence: ``Transformer(x [B, T, D], mask [B, T, T] bool, stage ()) -> (y [B, T, D], aux)``; with
    ``return_kv=True`` also the per-layer keys/values ``(k, v)`` each ``[B, L, T, H, hd]`` (a search root's prefill).
  * decode: ``cache=(k, v, write)`` with ``k, v [B, L, C, H, hd]`` (batch first: mctx stores it per node) a fixed-size cache of C token slots and
    ``write [B, C]`` bool the slot each row's single new token ``x [B, 1, D]`` goes to; ``mask [B, 1, C]`` says which
    slots (after the write) it attends to. Returns ``(y [B, 1, D], aux, (k, v))`` with the updated cache.
``aux['load'] [L, E]`` is the per-layer expert load, ``aux['lb_loss']`` the summed load-balancing loss and
``aux['dropped']`` the mean fraction of tokens over expert capacity (zeros for the dense FFN).
Attention is ``jax.nn.dot_product_attention``. No dropout (deterministic training; the reference uses 0.1).
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
    def __call__(self, x: jax.Array, mask: jax.Array, stage: jax.Array, cache=None):
        """x ``[B, T, D]``; mask ``[B, T, Tk]``; cache ``None | (k [B, C, H, hd], v, write [B, C])`` (T = 1).
        Returns ``(y [B, T, D], (k, v))``: this call's keys/values, or the updated cache."""
        b, t, d = x.shape
        hd = d // self.num_heads
        kw = dict(use_bias=True, num_adapters=self.num_adapters, rank=self.rank, alpha=self.alpha)
        q = LoRAEinsum(d, name="q", **kw)(x, stage).reshape(b, t, self.num_heads, hd)
        k = LoRAEinsum(d, name="k", **kw)(x, stage).reshape(b, t, self.num_heads, hd)
        v = LoRAEinsum(d, name="v", **kw)(x, stage).reshape(b, t, self.num_heads, hd)
        if cache is not None:
            ck, cv, write = cache
            sel = write[:, :, None, None]  # [B, C, 1, 1]
            k, v = jnp.where(sel, k, ck), jnp.where(sel, v, cv)  # [B, C, H, hd]
        y = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None]).reshape(b, t, d)
        return LoRAEinsum(d, name="proj", **kw)(y, stage), (k, v)


class Block(nn.Module):
    num_heads: int
    ffn: str
    num_experts: int
    hidden: int
    shared_expert: bool
    num_adapters: int
    rank: int
    alpha: float
    capacity_factor: float = 0.0

    @nn.compact
    def __call__(self, x, mask, stage, cache=None):
        lora = dict(num_adapters=self.num_adapters, rank=self.rank, alpha=self.alpha)
        att, kv = CausalSelfAttention(self.num_heads, name="attn", **lora)(nn.LayerNorm(name="ln1")(x), mask, stage,
                                                                          cache)
        x = x + att
        h = nn.LayerNorm(name="ln2")(x)
        if self.ffn == "moe":
            y, aux = MoEFFN(self.num_experts, self.hidden, self.shared_expert, capacity_factor=self.capacity_factor,
                            name="moe", **lora)(h, stage)
        else:
            y = DenseMLP(self.hidden, lora=True, name="mlp", **lora)(h, stage)
            aux = {"load": jnp.zeros((self.num_experts,)), "probs": jnp.zeros((self.num_experts,)),
                   "lb_loss": jnp.zeros(()), "dropped": jnp.zeros(())}
        return x + y, aux, kv


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
    capacity_factor: float = 0.0  # MoE: expert capacity factor for routed-only compute (0 = all-experts oracle)

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, stage: jax.Array, cache=None, return_kv: bool = False):
        loads, lb, dropped, ks, vs = [], jnp.zeros(()), jnp.zeros(()), [], []
        for i in range(self.num_layers):
            layer_cache = None if cache is None else (cache[0][:, i], cache[1][:, i], cache[2])
            x, aux, (k, v) = Block(self.num_heads, self.ffn, self.num_experts, self.hidden, self.shared_expert,
                                   self.num_adapters, self.rank, self.alpha, self.capacity_factor,
                                   name=f"block{i}")(x, mask, stage, layer_cache)
            loads.append(aux["load"])
            lb = lb + aux["lb_loss"]
            dropped = dropped + aux["dropped"] / self.num_layers
            ks.append(k)
            vs.append(v)
        y = nn.LayerNorm(name="ln_f")(x)
        aux = {"load": jnp.stack(loads), "lb_loss": lb, "dropped": dropped}
        if cache is None and not return_kv:
            return y, aux
        return y, aux, (jnp.stack(ks, axis=1), jnp.stack(vs, axis=1))
