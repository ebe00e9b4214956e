"""UniZero-style world model: encoder + causal transformer over [latent, action] tokens + per-task heads.

Tokens per step t: ``[z_t, a_t]``. Value and policy are read at the latent token, reward and the next latent at the
action token. Attention is causal and restricted to tokens of the same episode segment (``seg`` id, -1 = padding).
Positions are learned and counted from each sequence's first valid token.

Per-task heads keep a leading task axis on their weights. Inputs are grouped ``x [G, M, D]`` with one task per
group ``task [G]``: training batches are arranged as G equal per-task micro-batches (cheap weight gather), search
uses G = batch, M = 1 (a single-task model skips the gather). Heads run only on the tokens whose output is used: in
``sequence`` every head's output is returned and XLA drops the ones a jitted caller ignores; the search's
``prefill``/``step_*`` evaluate each head on the one token it reads.

Search inference (``prefill``, ``step_action``, ``step_latent``) keeps a fixed-size key/value cache of
``C = 2 * context_steps`` token slots per node (a ring buffer: token number j goes to slot j % C, so the oldest
token is evicted). Every token therefore attends to the last C tokens at every layer: sliding-window attention
over the root window followed by the tree path. Positions keep counting from the root window's first valid token,
as the reference's cache does, clipped at the last position the online model trains (``2 * unroll_steps - 1``):
deeper tree tokens share that position instead of reading position rows that no loss reaches. The exact recompute of the same function is
``sequence(..., window=C)`` over the whole token history (tested allclose in tests/test_scalezero_kvcache.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from agents.scalezero.config import ScaleZeroConfig
from agents.scalezero.encoders import LatentNorm, MLPEncoder, ResNetEncoder, ViTEncoder
from agents.scalezero.transformer import Transformer
from omnitask.precision import with_precision


@dataclasses.dataclass(frozen=True)
class ModelDims:
    """Static shapes the model is built for (derived from the env spec and the task list)."""

    obs_shape: tuple[int, ...]
    num_tasks: int
    num_actions: int = 0  # discrete action count (0 for continuous)
    action_dim: int = 0  # continuous action dimension (0 for discrete)
    max_steps: int = 16  # positions are learned for 2 * max_steps tokens

    @property
    def continuous(self) -> bool:
        return self.action_dim > 0

    @property
    def policy_dim(self) -> int:
        return 2 * self.action_dim if self.continuous else self.num_actions


class SeqOut(NamedTuple):
    value_logits: jax.Array  # [B, S, bins]   at latent tokens
    policy: jax.Array  # [B, S, policy_dim]  logits (discrete) or [mean, log_std] (continuous)
    reward_logits: jax.Array  # [B, S, bins]  at action tokens
    next_latent: jax.Array  # [B, S, D]       at action tokens (prediction of z_{t+1})
    load: jax.Array  # [L, E] expert load
    lb_loss: jax.Array  # ()


class DecodeCache(NamedTuple):
    """Per-node search state: keys/values of the last ``C`` tokens (ring buffer), ``B`` rows."""

    k: jax.Array  # [B, L, C, H, hd] keys per layer
    v: jax.Array  # [B, L, C, H, hd] values per layer
    valid: jax.Array  # [B, C] bool: slot holds a token of the root's episode
    length: jax.Array  # [B] int32 tokens written so far; the next goes to slot length % C
    pos: jax.Array  # [B] int32 position index of the next token (clipped to the table when used)


class TaskHead(nn.Module):
    """Per-task ``LN -> Linear(D, rD) -> LN -> GELU -> Linear(rD, out)``; x ``[G, M, D]``, task ``[G]``."""

    num_tasks: int
    hidden: int
    out: int
    zero_init: bool = False

    @nn.compact
    def __call__(self, x, task):
        d = x.shape[-1]
        k = self.num_tasks

        def ln(name, y, dim):
            scale = self.param(f"{name}_scale", nn.initializers.ones, (k, dim))[task][:, None]
            bias = self.param(f"{name}_bias", nn.initializers.zeros, (k, dim))[task][:, None]
            mu = jnp.mean(y, -1, keepdims=True)
            var = jnp.var(y, -1, keepdims=True)
            return (y - mu) * jax.lax.rsqrt(var + 1e-6) * scale + bias

        if k == 1:  # single task: no per-group weight copies
            task = jnp.zeros((1,), jnp.int32)
        w1 = self.param("w1", nn.initializers.lecun_normal(batch_axis=(0,)), (k, d, self.hidden))[task]
        b1 = self.param("b1", nn.initializers.zeros, (k, self.hidden))[task]
        init2 = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal(batch_axis=(0,))
        w2 = self.param("w2", init2, (k, self.hidden, self.out))[task]
        b2 = self.param("b2", nn.initializers.zeros, (k, self.out))[task]
        if k == 1:
            h = jnp.einsum("gmd,dh->gmh", ln("ln1", x, d), w1[0]) + b1
            h = nn.gelu(ln("ln2", h, self.hidden))
            return jnp.einsum("gmh,ho->gmo", h, w2[0]) + b2
        h = jnp.einsum("gmd,gdh->gmh", ln("ln1", x, d), w1) + b1[:, None]
        h = nn.gelu(ln("ln2", h, self.hidden))
        return jnp.einsum("gmh,gho->gmo", h, w2) + b2[:, None]


class WorldModel(nn.Module):
    cfg: ScaleZeroConfig
    dims: ModelDims
    dtype: Any = jnp.float32  # compute dtype (run.precision): bfloat16 runs on bf16 copies of float32 parameters

    def setup(self):
        c, d = self.cfg, self.dims
        kind = c.encoder
        if kind == "auto":
            kind = "resnet" if len(d.obs_shape) == 3 else "mlp"
        if kind == "mlp":
            self.encoder = MLPEncoder(c.latent_dim, c.mlp_encoder_hidden, c.latent_norm, c.simnorm_group, self.dtype)
        elif kind == "resnet":
            self.encoder = ResNetEncoder(c.latent_dim, c.resnet_channels, c.resnet_blocks, c.latent_norm,
                                         c.simnorm_group, self.dtype)
        else:
            self.encoder = ViTEncoder(c.latent_dim, c.vit_patch, c.vit_depth, c.vit_heads, c.vit_mlp_dim,
                                      c.latent_norm, c.simnorm_group, self.dtype)
        if d.continuous:
            self.action_embed = nn.Dense(c.latent_dim, name="action_embed")
        else:
            self.action_embed = nn.Embed(d.num_actions, c.latent_dim, name="action_embed")
        self.pos_embed = self.param("pos_embed", nn.initializers.normal(0.02), (2 * d.max_steps, c.latent_dim))
        n_adapt = c.num_stages - 1 if c.dps else 0
        self.transformer = Transformer(c.num_layers, c.num_heads, c.ffn, c.num_experts,
                                       c.expert_hidden_ratio * c.latent_dim, c.shared_expert, n_adapt,
                                       c.lora_rank, c.lora_alpha, c.expert_capacity_factor)
        hid = c.head_hidden_ratio * c.latent_dim
        self.value_head = TaskHead(d.num_tasks, hid, c.num_bins, zero_init=True)
        self.reward_head = TaskHead(d.num_tasks, hid, c.num_bins, zero_init=True)
        self.policy_head = TaskHead(d.num_tasks, hid, d.policy_dim, zero_init=True)
        self.latent_head = TaskHead(d.num_tasks, hid, c.latent_dim)
        self.latent_out_norm = LatentNorm(c.latent_norm, c.simnorm_group)
        if self.has_inverse:  # created only when used: other configs keep their parameter tree
            self.inverse_hidden = nn.Dense(hid, name="inverse_hidden")
            self.inverse_out = nn.Dense(d.num_actions, name="inverse_out")

    @property
    def has_inverse(self) -> bool:
        return self.cfg.w_inverse > 0 and not self.dims.continuous

    def inverse(self, z, z_next):
        """Inverse dynamics: ``z, z_next [..., D] -> action logits [..., A]`` (scalezero.w_inverse > 0 only)."""
        return self.inverse_out(nn.gelu(self.inverse_hidden(jnp.concatenate([z, z_next], -1))))

    def encode(self, obs):
        """``obs [..., *obs_shape] -> z [..., D]``."""
        return self.encoder(obs)

    def sequence(self, latents, actions, seg, task, stage, groups: int, window: int = 0, pos_limit: int = 0) -> SeqOut:
        """Run the transformer over ``[z_t, a_t]`` for t < S.

        latents ``[B, S, D]``; actions ``[B, S]`` int or ``[B, S, A]`` float; seg ``[B, S]`` int episode-segment id
        (-1 = padding); task ``[G]`` int with ``B = G * M`` rows grouped by task; stage ``()`` int curriculum stage;
        window > 0: each token attends only to the last ``window`` tokens (the search cache's function, recomputed);
        pos_limit > 0: positions clipped at ``pos_limit - 1`` (default: the table size).
        """
        b, s, dim = latents.shape
        a = self.action_embed(actions)  # [B, S, D]
        tokens = jnp.stack([latents, a], axis=2).reshape(b, 2 * s, dim)  # [B, 2S, D]
        tseg = jnp.repeat(seg, 2, axis=1)  # [B, 2S]
        valid = tseg >= 0
        first = jnp.argmax(valid, axis=1)  # [B] first valid token
        pos = jnp.clip(jnp.arange(2 * s)[None] - first[:, None], 0, (pos_limit or 2 * self.dims.max_steps) - 1)
        tokens = tokens + self.pos_embed[pos]
        causal = jnp.tril(jnp.ones((2 * s, 2 * s), bool))[None]
        mask = causal & (tseg[:, :, None] == tseg[:, None, :]) & valid[:, None, :]
        if window:
            idx = jnp.arange(2 * s)
            mask = mask & (idx[:, None] - idx[None, :] < window)[None]
        mask = mask | jnp.eye(2 * s, dtype=bool)[None]  # padding queries attend to themselves (no NaN)
        h, aux = self.transformer(tokens, mask, stage)  # [B, 2S, D]
        h = h.reshape(b, s, 2, dim)
        obs_h = h[:, :, 0].reshape(groups, -1, dim)  # [G, M*S, D]
        act_h = h[:, :, 1].reshape(groups, -1, dim)

        def out(head, x):
            y = head(x, task)
            return y.reshape(b, s, y.shape[-1])

        next_latent = self.latent_out_norm(out(self.latent_head, act_h))
        return SeqOut(out(self.value_head, obs_h), out(self.policy_head, obs_h), out(self.reward_head, act_h),
                      next_latent, aux["load"], aux["lb_loss"])

    # ---- search inference with a key/value cache ----
    @property
    def search_pos_limit(self) -> int:
        """Positions the search uses: those the online model trains on (``2 * unroll_steps``), within the table."""
        return min(2 * self.cfg.unroll_steps, 2 * self.dims.max_steps)

    def _head_at(self, head, x, task):
        """One head on one token per row: ``x [B, D]``, task ``[B]`` -> ``[B, out]``."""
        return head(x[:, None], task)[:, 0]

    def prefill(self, latents, actions, valid, task, stage):
        """Search root: cache the window and read value/policy at its newest latent.

        latents ``[B, S, D]``, actions ``[B, S(, A)]`` (last slot ignored: that action is what the search chooses),
        valid ``[B, S]`` bool (False = before the episode start), task ``[B]``. Returns
        ``(DecodeCache with C = 2S slots, value_logits [B, bins], policy [B, P])``.
        """
        b, s, dim = latents.shape
        n = 2 * s - 1  # window tokens without the pending action
        a = self.action_embed(actions)
        tokens = jnp.stack([latents, a], axis=2).reshape(b, 2 * s, dim)[:, :n]  # [B, n, D]
        tvalid = jnp.repeat(valid, 2, axis=1)[:, :n]  # [B, n]
        first = jnp.argmax(tvalid, axis=1)  # [B]
        pos = jnp.clip(jnp.arange(n)[None] - first[:, None], 0, self.search_pos_limit - 1)
        mask = jnp.tril(jnp.ones((n, n), bool))[None] & tvalid[:, None, :]
        mask = mask | jnp.eye(n, dtype=bool)[None]
        h, _, (k, v) = self.transformer(tokens + self.pos_embed[pos], mask, stage, return_kv=True)
        pad = ((0, 0), (0, 0), (0, 1), (0, 0), (0, 0))  # one free slot: C = 2S
        cache = DecodeCache(jnp.pad(k, pad), jnp.pad(v, pad), jnp.pad(tvalid, ((0, 0), (0, 1))),
                            jnp.full((b,), n, jnp.int32), (n - first).astype(jnp.int32))
        last = h[:, n - 1]  # [B, D] newest latent token
        return cache, self._head_at(self.value_head, last, task), self._head_at(self.policy_head, last, task)

    def _extend(self, cache: DecodeCache, token, stage):
        """Append one token ``[B, D]`` (before position embedding); returns its output ``[B, D]`` and the cache."""
        c = cache.valid.shape[1]
        write = jnp.arange(c)[None] == (cache.length % c)[:, None]  # [B, C] slot of the new token
        pos = jnp.minimum(cache.pos, self.search_pos_limit - 1)
        valid = cache.valid | write
        h, _, (k, v) = self.transformer((token + self.pos_embed[pos])[:, None], valid[:, None, :], stage,
                                        cache=(cache.k, cache.v, write))
        return h[:, 0], DecodeCache(k, v, valid, cache.length + 1, cache.pos + 1)

    def step_action(self, cache: DecodeCache, action, task, stage):
        """Append action tokens ``[B]`` int / ``[B, A]``: ``(reward_logits [B, bins], next_latent [B, D], cache)``."""
        h, cache = self._extend(cache, self.action_embed(action), stage)
        next_latent = self.latent_out_norm(self._head_at(self.latent_head, h, task))
        return self._head_at(self.reward_head, h, task), next_latent, cache

    def step_latent(self, cache: DecodeCache, latent, task, stage):
        """Append latent tokens ``[B, D]``: ``(value_logits [B, bins], policy [B, P], cache)``."""
        h, cache = self._extend(cache, latent, stage)
        return self._head_at(self.value_head, h, task), self._head_at(self.policy_head, h, task), cache

    def __call__(self, obs, actions, seg, task, stage):
        """Initialisation entry: encode ``obs [B, S, *obs_shape]`` then ``sequence`` with G = B (and the inverse head
        on consecutive latents when it exists, so that init creates its parameters)."""
        z = self.encode(obs)
        if self.has_inverse:
            self.inverse(z[:, :-1], z[:, 1:])
        return self.sequence(z, actions, seg, task, stage, groups=obs.shape[0])


def apply_fn(model: WorldModel) -> Callable:
    """``apply(params, *inputs, method=..., **kw)`` = ``model.apply({"params": params}, ...)`` in the model's compute
    dtype: under bfloat16 the float32 master parameters and float inputs are cast to bf16 and float outputs come back
    as float32 (omnitask/precision.py); the gradient reaches the float32 parameters through the cast."""
    precision = "bfloat16" if jnp.dtype(model.dtype) == jnp.bfloat16 else "float32"
    return with_precision(lambda params, *a, **k: model.apply({"params": params}, *a, **k), precision)


def init_params(model: WorldModel, key: jax.Array):
    """Initialise parameters with a dummy [1, 2]-step batch (jitted: one compile beats eager op-by-op init)."""
    d = model.dims

    def _init(k):
        obs = jnp.zeros((1, 2) + tuple(d.obs_shape), jnp.float32)
        actions = jnp.zeros((1, 2, d.action_dim), jnp.float32) if d.continuous else jnp.zeros((1, 2), jnp.int32)
        return model.init(k, obs, actions, jnp.zeros((1, 2), jnp.int32), jnp.zeros((1,), jnp.int32),
                          jnp.zeros((), jnp.int32))["params"]

    return jax.jit(_init)(key)


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
