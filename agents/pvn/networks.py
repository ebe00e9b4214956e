"""Encoders (Nature CNN, IMPALA with a width multiplier, a small MinAtar CNN) and heads for PVN.

Every encoder maps uint8 or float pixels ``[B, H, W, C]`` to a ReLU feature vector ``[B, feature_dim]``.
Pixels are scaled by ``1 / pixel_scale`` (255 for Atari, 1 for MinAtar's 0/1 planes) inside the module, so callers
pass raw observations. ``EncoderSpec`` is the small, JSON-serialisable description ``export.py`` saves next to the
parameters so another agent can rebuild the same module.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

ARCHS = ("nature", "impala", "minatar")


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """Architecture of a feature encoder (everything needed to rebuild it; stored in export JSON)."""

    arch: str = "impala"  # one of ARCHS
    width: int = 1  # channel multiplier (IMPALA: 16/32/32 * width; Nature: 32/64/64 * width; MinAtar: 16 * width)
    feature_dim: int = 512  # size of the final ReLU feature layer
    padding: str = "SAME"  # conv padding for Nature/MinAtar ('VALID' is the DQN paper's; small frames need 'SAME')
    pixel_scale: float = 255.0  # observations are divided by this (255 for uint8 Atari frames, 1 for MinAtar)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"encoder arch {self.arch!r} unknown; allowed: {', '.join(ARCHS)}")
        if self.width < 1 or self.feature_dim < 1:
            raise ValueError(f"encoder width ({self.width}) and feature_dim ({self.feature_dim}) must be >= 1")
        if self.padding not in ("SAME", "VALID"):
            raise ValueError(f"encoder padding {self.padding!r} unknown; allowed: SAME, VALID")
        if self.pixel_scale <= 0:
            raise ValueError(f"pixel_scale must be > 0, got {self.pixel_scale}")


@dataclasses.dataclass
class EncoderConfig:
    """YAML form of ``EncoderSpec`` (mutable, for OmegaConf); ``.spec()`` gives the frozen spec."""

    arch: str = "impala"  # 'nature', 'impala' or 'minatar'
    width: int = 1  # channel multiplier (the paper scales it with the number of tasks)
    feature_dim: int = 512  # size of the final ReLU feature layer
    padding: str = "SAME"  # conv padding for nature/minatar ('VALID' = DQN paper; 'SAME' for small frames)
    pixel_scale: float = 255.0  # observations are divided by this (255 Atari uint8, 1 MinAtar 0/1 planes)

    def __post_init__(self):
        self.spec()  # validate early, with EncoderSpec's messages

    def spec(self) -> EncoderSpec:
        return EncoderSpec(self.arch, int(self.width), int(self.feature_dim), self.padding, float(self.pixel_scale))


class NatureCNN(nn.Module):
    """DQN torso (Mnih et al. 2015): conv 8x8/4, 4x4/2, 3x3/1 then a dense ReLU layer."""

    width: int = 1
    feature_dim: int = 512
    padding: str = "VALID"
    final_relu: bool = True

    @nn.compact
    def __call__(self, x):  # x: [B, H, W, C] float
        for ch, k, s in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            x = nn.relu(nn.Conv(ch * self.width, (k, k), (s, s), padding=self.padding)(x))
        x = nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1))
        return nn.relu(x) if self.final_relu else x  # [B, feature_dim]


class _ResidualBlock(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.channels, (3, 3), padding="SAME")(nn.relu(x))
        y = nn.Conv(self.channels, (3, 3), padding="SAME")(nn.relu(y))
        return x + y


class ImpalaCNN(nn.Module):
    """IMPALA torso (Espeholt et al. 2018): 3 stacks of conv + maxpool/2 + 2 residual blocks, width-multiplied."""

    width: int = 1
    feature_dim: int = 512
    channels: Sequence[int] = (16, 32, 32)
    final_relu: bool = True

    @nn.compact
    def __call__(self, x):  # x: [B, H, W, C] float
        for ch in self.channels:
            ch = ch * self.width
            x = nn.Conv(ch, (3, 3), padding="SAME")(x)
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            x = _ResidualBlock(ch)(x)
            x = _ResidualBlock(ch)(x)
        x = nn.Dense(self.feature_dim)(nn.relu(x).reshape(x.shape[0], -1))
        return nn.relu(x) if self.final_relu else x  # [B, feature_dim]


class MinAtarCNN(nn.Module):
    """The MinAtar paper's torso (Young & Tian 2019): one 3x3 conv with 16*width channels, then dense ReLU."""

    width: int = 1
    feature_dim: int = 128
    padding: str = "VALID"
    final_relu: bool = True

    @nn.compact
    def __call__(self, x):  # x: [B, 10, 10, C] float
        x = nn.relu(nn.Conv(16 * self.width, (3, 3), padding=self.padding)(x))
        x = nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1))
        return nn.relu(x) if self.final_relu else x  # [B, feature_dim]


class Encoder(nn.Module):
    """Raw pixels -> features, per ``EncoderSpec`` (``final_relu=False``: the last Dense stays linear)."""

    spec: EncoderSpec
    final_relu: bool = True

    @nn.compact
    def __call__(self, obs):  # obs: [B, H, W, C] uint8/float
        # float inputs keep their dtype (bf16 under run.precision=bfloat16: flax computes in the promoted dtype of
        # input and params, so an f32 cast here would undo the bf16 compute); integer pixels become float32
        dtype = obs.dtype if jnp.issubdtype(obs.dtype, jnp.floating) else jnp.float32
        x = obs.astype(dtype) / jnp.asarray(self.spec.pixel_scale, dtype)
        s = self.spec
        if s.arch == "nature":
            return NatureCNN(s.width, s.feature_dim, s.padding, self.final_relu)(x)
        if s.arch == "impala":
            return ImpalaCNN(s.width, s.feature_dim, final_relu=self.final_relu)(x)
        return MinAtarCNN(s.width, s.feature_dim, s.padding, self.final_relu)(x)


class MultiTaskHeads(nn.Module):
    """One linear Q head per auxiliary task, computed as one matmul: features -> ``[B, num_tasks, num_actions]``."""

    num_tasks: int
    num_actions: int

    @nn.compact
    def __call__(self, features):  # [B, D]
        q = nn.Dense(self.num_tasks * self.num_actions)(features)
        return q.reshape(features.shape[0], self.num_tasks, self.num_actions)  # [B, T, A]


class PVNNetwork(nn.Module):
    """Shared encoder + per-task linear heads: ``Q(x, a; S_i)`` for every task i -> ``[B, T, A]``."""

    encoder: EncoderSpec
    num_tasks: int
    num_actions: int

    def setup(self):
        self.torso = Encoder(self.encoder)
        self.heads = MultiTaskHeads(self.num_tasks, self.num_actions)

    def __call__(self, obs):  # [B, H, W, C]
        return self.heads(self.torso(obs))  # [B, T, A]

    def features(self, obs):
        return self.torso(obs)  # [B, D]


class LinearQ(nn.Module):
    """Linear Q head over encoder features: ``[B, D] -> [B, A]``."""

    num_actions: int

    @nn.compact
    def __call__(self, features):
        return nn.Dense(self.num_actions)(features)


class QNetwork(nn.Module):
    """Encoder + linear Q head (used by evaluation and by the end-to-end DQN baseline): ``[B, A]``."""

    encoder: EncoderSpec
    num_actions: int

    def setup(self):
        self.torso = Encoder(self.encoder)
        self.head = LinearQ(self.num_actions)

    def __call__(self, obs):
        return self.head(self.torso(obs))
