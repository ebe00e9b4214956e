"""Observation encoders: MLP (vector observations), ResNet (64x64 RGB) and ViT (multi-task image model).

Every encoder maps ``obs [..., *obs_shape] -> z [..., D]`` and ends with the latent normalisation
(SimNorm: softmax over groups of ``simnorm_group`` features, or LayerNorm). uint8 images are scaled to [0, 1].
``dtype`` is the compute dtype the observation is cast to (bfloat16 under ``run.precision: bfloat16``).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def simnorm(z: jax.Array, group: int) -> jax.Array:
    """Simplicial normalisation: softmax within consecutive groups of ``group`` features."""
    shape = z.shape
    return jax.nn.softmax(z.reshape(shape[:-1] + (shape[-1] // group, group)), axis=-1).reshape(shape)


class LatentNorm(nn.Module):
    kind: str = "simnorm"
    group: int = 8

    @nn.compact
    def __call__(self, z):
        return simnorm(z, self.group) if self.kind == "simnorm" else nn.LayerNorm()(z)


class MLPEncoder(nn.Module):
    latent_dim: int
    hidden: int
    norm: str
    group: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(obs.shape[:-1] + (-1,)).astype(self.dtype)
        for i in range(2):
            x = nn.gelu(nn.LayerNorm()(nn.Dense(self.hidden, name=f"fc{i}")(x)))
        return LatentNorm(self.norm, self.group)(nn.Dense(self.latent_dim, name="out")(x))


class ResBlock(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.channels, (3, 3))(nn.relu(nn.GroupNorm(num_groups=8)(x)))
        y = nn.Conv(self.channels, (3, 3))(nn.relu(nn.GroupNorm(num_groups=8)(y)))
        return x + y


def _images(obs, dtype):
    x = obs.astype(jnp.float32)
    return (x / 255.0 if obs.dtype == jnp.uint8 else x).astype(dtype)


class ResNetEncoder(nn.Module):
    """64x64xC -> three stride-2 stages (C/2, C, C) with ``blocks`` residual blocks each -> 8x8 -> Linear(D)."""

    latent_dim: int
    channels: int
    blocks: int
    norm: str
    group: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs):
        lead = obs.shape[:-3]
        x = _images(obs, self.dtype).reshape((-1,) + obs.shape[-3:])  # [N, H, W, C]
        for i, ch in enumerate((self.channels // 2, self.channels, self.channels)):
            x = nn.Conv(ch, (3, 3), strides=(2, 2), name=f"down{i}")(x)
            for _ in range(self.blocks):
                x = ResBlock(ch)(x)
        x = nn.relu(x).reshape(x.shape[0], -1)
        z = LatentNorm(self.norm, self.group)(nn.Dense(self.latent_dim, name="out")(x))
        return z.reshape(lead + (self.latent_dim,))


class ViTEncoder(nn.Module):
    """Patchify (``patch`` x ``patch``) -> CLS + learned positions -> ``depth`` pre-LN blocks -> CLS -> Linear(D)."""

    latent_dim: int
    patch: int
    depth: int
    heads: int
    mlp_dim: int
    norm: str
    group: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs):
        lead = obs.shape[:-3]
        x = _images(obs, self.dtype).reshape((-1,) + obs.shape[-3:])
        x = nn.Conv(self.latent_dim, (self.patch, self.patch), strides=(self.patch, self.patch), name="patch")(x)
        x = x.reshape(x.shape[0], -1, self.latent_dim)  # [N, P, D]
        cls = self.param("cls", nn.initializers.normal(0.02), (1, 1, self.latent_dim))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.latent_dim)), x], axis=1)
        x = x + self.param("pos", nn.initializers.normal(0.02), (1, x.shape[1], self.latent_dim))
        for i in range(self.depth):
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(self.heads, name=f"attn{i}")(h, h)
            h = nn.LayerNorm()(x)
            x = x + nn.Dense(self.latent_dim)(nn.gelu(nn.Dense(self.mlp_dim)(h)))
        x = nn.LayerNorm()(x)[:, 0]
        z = LatentNorm(self.norm, self.group)(nn.Dense(self.latent_dim, name="out")(x))
        return z.reshape(lead + (self.latent_dim,))
