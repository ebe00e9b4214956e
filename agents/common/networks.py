"""Shared Flax (linen) networks: observation torsos and the heads PPO and DQN put on top of them.

A *torso* maps a batch of observations ``[B, *obs_shape]`` to features ``[B, F]``. Heads never look at raw
observations, so any torso (e.g. a frozen pretrained encoder) can be plugged into ``QNetwork`` / ``ActorCritic``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def orthogonal(scale: float = np.sqrt(2.0)):
    """Orthogonal initialiser (the PPO/DQN reference initialisation), vmapped as a loop of unbatched QRs.

    Under ``vmap`` (seeds, contexts, MBTL sources) flax's initialiser becomes one *batched* LAPACK QR per layer.
    jaxlib spreads a batched QR over XLA:CPU's intra-op thread pool and blocks a pool thread until it finishes; two
    layers' QRs running at once on a 2-thread pool (a 2-core machine) then wait on each other forever (seen once in
    CI: `tests/test_mbtl_cartpole.py` hung with both pool threads in ``QrFactorization``). ``sequential_vmap`` makes
    the batch a loop of single QRs, which jaxlib runs inline: the same numbers (tested), no fan-out.
    """
    flax_init = nn.initializers.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        @jax.custom_batching.sequential_vmap
        def one(k):
            return flax_init(k, shape, dtype)

        return one(key)

    return init


def input_dtype(obs: jax.Array, dtype: Any) -> Any:
    """A torso's compute dtype: ``dtype`` when set (``run.precision``), else float inputs keep theirs, else float32.
    Casting to float32 unconditionally would silently promote a bfloat16 network back to float32 compute."""
    if dtype is not None:
        return dtype
    return obs.dtype if jnp.issubdtype(obs.dtype, jnp.floating) else jnp.float32


class MLPTorso(nn.Module):
    """Fully connected torso for vector observations: ``[B, *obs_shape] -> [B, hidden_sizes[-1]]``."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"  # "tanh" or "relu"
    dtype: Any = None  # compute dtype (None: see input_dtype)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        act = {"tanh": nn.tanh, "relu": nn.relu}[self.activation]
        x = obs.reshape((obs.shape[0], -1)).astype(input_dtype(obs, self.dtype))  # [B, D]
        for size in self.hidden_sizes:
            x = act(nn.Dense(size, kernel_init=orthogonal(), bias_init=nn.initializers.zeros)(x))
        return x  # [B, hidden_sizes[-1]]


def image_layout(obs_shape: Sequence[int]) -> str:
    """'HWC' or 'CHW' for a rank-3 image observation shape (channels = the small axis, at most 16)."""
    obs_shape = tuple(obs_shape)
    if len(obs_shape) != 3:
        raise ValueError(f"image observations must be rank 3 ([H, W, C] or [C, H, W]), got shape {obs_shape}")
    if obs_shape[-1] <= 16 and obs_shape[0] > 16:
        return "HWC"
    if obs_shape[0] <= 16 and obs_shape[-1] > 16:
        return "CHW"
    raise ValueError(f"cannot tell the channel axis of image shape {obs_shape}: expected [H, W, C] or [C, H, W] "
                     "with C <= 16 and H, W > 16")


class NatureCNN(nn.Module):
    """Mnih et al. (2015) convolutional torso: ``[B, H, W, C]`` or ``[B, C, H, W]`` -> ``[B, 512]``.

    uint8 pixels are scaled to [0, 1]; channel-first inputs (e.g. a ``[4, 84, 84]`` frame stack) are transposed.
    """

    layout: str = "HWC"  # "HWC" or "CHW", see image_layout()
    features: int = 512
    dtype: Any = None  # compute dtype (None: see input_dtype)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(input_dtype(obs, self.dtype))
        if obs.dtype == jnp.uint8:
            x = x / jnp.asarray(255.0, x.dtype)
        if self.layout == "CHW":
            x = jnp.transpose(x, (0, 2, 3, 1))  # [B, H, W, C]
        x = nn.relu(nn.Conv(32, (8, 8), (4, 4), padding="VALID", kernel_init=orthogonal())(x))
        x = nn.relu(nn.Conv(64, (4, 4), (2, 2), padding="VALID", kernel_init=orthogonal())(x))
        x = nn.relu(nn.Conv(64, (3, 3), (1, 1), padding="VALID", kernel_init=orthogonal())(x))
        x = x.reshape((x.shape[0], -1))
        return nn.relu(nn.Dense(self.features, kernel_init=orthogonal())(x))  # [B, features]


def make_torso(obs_shape: Sequence[int], kind: str, hidden_sizes: Sequence[int], activation: str,
               dtype: Any = None) -> nn.Module:
    """Torso for an observation shape. ``kind``: 'auto' (CNN for rank-3 images, else MLP), 'mlp' or 'cnn';
    ``dtype``: the compute dtype (``omnitask.precision.compute_dtype``; None: float32 for pixels)."""
    allowed = ("auto", "mlp", "cnn")
    if kind not in allowed:
        raise ValueError(f"torso must be one of {allowed}, got {kind!r}")
    if kind == "auto":
        kind = "cnn" if len(tuple(obs_shape)) == 3 else "mlp"
    if kind == "cnn":
        return NatureCNN(layout=image_layout(obs_shape), dtype=dtype)
    return MLPTorso(tuple(hidden_sizes), activation, dtype=dtype)


class QNetwork(nn.Module):
    """``Q(s, .)``: any torso followed by a linear head. ``[B, *obs_shape] -> [B, num_actions]``."""

    torso: nn.Module
    num_actions: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        features = self.torso(obs)  # [B, F]
        return nn.Dense(self.num_actions, kernel_init=orthogonal(1.0))(features)  # [B, A]


class ActorCritic(nn.Module):
    """Policy and value heads. Returns ``(policy_params, value [B])``.

    Discrete: ``policy_params`` = logits ``[B, A]``. Continuous: ``(mean [B, D], log_std [B, D])`` with a
    state-independent learned log-std. ``shared_torso=False`` gives the critic its own copy of the torso
    (the classic-control reference); True shares one (the Atari reference).
    """

    make_torso: callable  # () -> nn.Module, called once (shared) or twice (separate actor/critic)
    action_dim: int  # number of discrete actions, or the continuous action dimension
    continuous: bool = False
    shared_torso: bool = False
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array):
        actor_features = self.make_torso()(obs)  # [B, F]
        critic_features = actor_features if self.shared_torso else self.make_torso()(obs)
        value = nn.Dense(1, kernel_init=orthogonal(1.0))(critic_features)[:, 0]  # [B]
        head = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01))(actor_features)  # [B, A or D]
        if not self.continuous:
            return head, value
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,))
        return (head, jnp.broadcast_to(log_std, head.shape)), value
