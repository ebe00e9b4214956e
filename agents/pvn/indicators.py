"""Indicator functions ``r_i(x) = 1{x in S_i}`` that define PVN's auxiliary tasks.

Two families (Farebrother et al. 2023, section 4):

* ``rnd``: ``ceil(T / tasks_per_net)`` frozen, randomly initialised conv nets, each the reference's structure
  (google-research ``pvn/indicator_functions.py``, ``StackedNatureDqnIndicator``): the ``net`` conv stack, then
  ``Dense(tasks_per_net)`` (``net.feature_dim`` is not used: there is no wide hidden layer). The reference ends
  in a ReLU; here it is off by default (``final_relu``) because an output that is 0 on almost every state
  cannot fire on 1% of them at any threshold (dead tasks). The nets' parameters are stacked (leading axis = net,
  the reference's ``nn.vmap`` with its own parameters per net: no shared torso). ``net_batching`` chooses how the
  stack runs: ``grouped`` = ``vmap``, which XLA lowers to ONE grouped convolution per layer (the first layer shares
  its input: one conv with ``nets * channels`` outputs); ``per_net`` = the nets one after another, unrolled in the
  same jitted program (the same FLOPs; on XLA:CPU 1.4x less CPU time than the grouped convolutions at batch 32, but
  1.15x more at batch 256); ``auto`` = ``per_net`` on CPU for batches up to ``PER_NET_MAX_BATCH``, else ``grouped``.
  Task ``i`` fires when ``f_i(x) > q_i``; the
  per-task threshold ``q_i`` (the paper's learnable bias, with the sign flipped) is trained by the
  quantile-regression (pinball) loss at level ``1 - fire_fraction`` so each indicator fires on ``fire_fraction`` of
  the data, with the network's Adam settings (reference: lr ~1.1e-4, eps 1.5e-4). The quantile loss runs alone for
  a warm-up (reference: 62,500 updates) before TD learning starts (``pretrain.py``).
* ``hash``: Carter-Wegman multiply-shift universal hash of the raw uint8 pixels,
  ``h_i(x) = ((sum_j a_ij x_j + b_i) mod P) mod M`` with ``P = 2^13 - 1`` and ``M = 100`` bins; fires when
  ``h_i(x) == 0`` (about ``1/M`` of states). Deterministic, nothing to train.

All functions are pure: ``IndicatorState`` is data, ``make_indicators`` returns closures.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from agents.pvn.networks import Encoder, EncoderConfig, EncoderSpec

FAMILIES = ("rnd", "hash")
NET_BATCHING = ("auto", "grouped", "per_net")
SCORE_CACHE_MODES = ("auto", "always", "never")  # agents.pvn.score_cache (not on/off: YAML reads those as bools)
# 'auto' runs the nets one by one on CPU up to this batch: XLA:CPU, 10 Nature nets, 84x84x4 (2-core shared machine,
# load ~20, 2026-12-01, CPU time per scoring): batch 32 per_net 100 ms vs grouped 142 ms; batch 256 1460 vs 1267 ms
PER_NET_MAX_BATCH = 64
HASH_PRIME = 2 ** 13 - 1
_HASH_BLOCK = 256  # pixels per exact float32 partial sum: 256 * 127 * 255 < 2^24


@dataclasses.dataclass
class IndicatorConfig:
    """Auxiliary-task indicator family and its settings."""

    family: str = "rnd"  # 'rnd' (random nets + quantile-trained thresholds) or 'hash' (multiply-shift hash)
    fire_fraction: float = 0.01  # rnd: target fraction of states on which each indicator fires
    tasks_per_net: int = 10  # rnd: indicator outputs per frozen random network
    net: EncoderConfig = dataclasses.field(  # rnd: architecture of each frozen random network
        default_factory=lambda: EncoderConfig(arch="nature", width=1, feature_dim=512, padding="VALID"))
    threshold_lr: Optional[float] = None  # rnd: Adam step size of the thresholds; None = pretrain.learning_rate
    # (the reference trains the bias with the network's Adam). Small data/short runs may need a larger one.
    final_relu: bool = False  # rnd: ReLU on the outputs, as the reference. Off by default: a ReLU'd output that is 0
    # on (nearly) every state cannot be thresholded to fire on 1% (measured: dead tasks on real Pong frames)
    hash_bins: int = 100  # hash: M, the number of bins (fires on ~1/M of states)
    net_batching: str = "auto"  # rnd: how the stacked random nets run: 'grouped' (vmap -> grouped convs), 'per_net'
    # (unrolled, one conv per net: faster on XLA:CPU at small batches), 'auto' (per_net on CPU for batches <= 64,
    # else grouped). Same scores.
    score_cache: str = "auto"  # rnd: 'always' = score each stored transition once (its chunk / checkpoint, when first
    # loaded; float32 sidecar files under run_dir/indicator_scores keyed by the nets) and apply the moving thresholds
    # to the cached scores in every update (the nets are frozen: same rewards, same quantile step); 'never' = score
    # every sampled batch in the update; 'auto' = on when pretraining samples each transition >= once on average
    # (num_updates x batch_size >= dataset size; DQN Replay: always). hash: computed in the update ('always' refused).

    def __post_init__(self):
        if self.score_cache not in SCORE_CACHE_MODES:
            raise ValueError(f"indicators.score_cache {self.score_cache!r} unknown; allowed: "
                             f"{', '.join(SCORE_CACHE_MODES)}")
        if self.family not in FAMILIES:
            raise ValueError(f"indicator family {self.family!r} unknown; allowed: {', '.join(FAMILIES)}")
        if self.net_batching not in NET_BATCHING:
            raise ValueError(f"indicators.net_batching {self.net_batching!r} unknown; allowed: "
                             f"{', '.join(NET_BATCHING)}")
        if not 0.0 < self.fire_fraction < 1.0:
            raise ValueError(f"fire_fraction must be in (0, 1), got {self.fire_fraction}")
        if self.threshold_lr is not None and not self.threshold_lr > 0:
            raise ValueError(f"threshold_lr must be > 0 or null (= pretrain.learning_rate), got {self.threshold_lr}")
        if self.tasks_per_net < 1 or self.hash_bins < 2:
            raise ValueError(f"tasks_per_net must be >= 1 ({self.tasks_per_net}) and hash_bins >= 2 "
                             f"({self.hash_bins})")


class IndicatorState(NamedTuple):
    """Indicator parameters. Only ``threshold`` is ever trained (rnd family)."""

    frozen: dict  # rnd: stacked random-net params (leading axis = net); hash: {'a': [T, D] i32, 'b': [T] i32}
    threshold: jax.Array  # [T] f32: rnd fires when score > threshold; hash: unused zeros


class Indicators(NamedTuple):
    """Closures over one indicator family (all pure, jittable)."""

    init: Callable[[jax.Array], IndicatorState]  # key -> state
    scores: Callable[[IndicatorState, jax.Array], jax.Array]  # (state, obs [B, *obs]) -> [B, T] f32
    fire: Callable[[IndicatorState, jax.Array], jax.Array]  # (state, obs [B, *obs]) -> [B, T] f32 in {0, 1}
    trains_threshold: bool  # True for rnd (quantile warm-up needed)


def _random_net_cls():
    import flax.linen as nn

    class RandomIndicatorNet(nn.Module):
        """A frozen random conv net: conv stack -> Dense(num_outputs) [-> ReLU] (one output per task)."""

        spec: EncoderSpec
        num_outputs: int
        final_relu: bool

        @nn.compact
        def __call__(self, obs):  # [B, *obs]
            spec = dataclasses.replace(self.spec, feature_dim=self.num_outputs)
            return Encoder(spec, self.final_relu)(obs)  # [B, num_outputs]

    return RandomIndicatorNet


def make_indicators(cfg: IndicatorConfig, obs_shape: tuple[int, ...], num_tasks: int) -> Indicators:
    """Build the indicator closures for observations of un-batched shape ``obs_shape``."""
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
    if cfg.family == "hash":
        return _make_hash(cfg, obs_shape, num_tasks)
    return _make_rnd(cfg, obs_shape, num_tasks)


def _make_rnd(cfg: IndicatorConfig, obs_shape, num_tasks) -> Indicators:
    num_nets = math.ceil(num_tasks / cfg.tasks_per_net)
    net = _random_net_cls()(cfg.net.spec(), cfg.tasks_per_net, cfg.final_relu)
    dummy = jnp.zeros((1, *obs_shape), jnp.uint8)

    def init(key):
        params = jax.vmap(lambda k: net.init(k, dummy))(jax.random.split(key, num_nets))
        return IndicatorState(params, jnp.zeros((num_tasks,), jnp.float32))

    def scores(state, obs):  # obs [B, *obs] -> [B, T]
        batching = cfg.net_batching
        if batching == "auto":  # decided when traced, for the backend and batch the program is compiled for
            small = obs.shape[0] <= PER_NET_MAX_BATCH
            batching = "per_net" if jax.default_backend() == "cpu" and small else "grouped"
        if batching == "grouped":
            out = jax.vmap(lambda p: net.apply(p, obs), out_axes=1)(state.frozen)  # [B, N, tasks_per_net]
        else:
            out = jnp.stack([net.apply(jax.tree.map(lambda x, i=i: x[i], state.frozen), obs)
                             for i in range(num_nets)], axis=1)  # [B, N, tasks_per_net]
        out = out.reshape(obs.shape[0], num_nets * cfg.tasks_per_net)
        return jax.lax.stop_gradient(out[:, :num_tasks])

    def fire(state, obs):
        return (scores(state, obs) > state.threshold[None]).astype(jnp.float32)

    return Indicators(init, scores, fire, True)


def _make_hash(cfg: IndicatorConfig, obs_shape, num_tasks) -> Indicators:
    dim = int(np.prod(obs_shape))

    def init(key):
        ka, kb = jax.random.split(key)
        a = jax.random.randint(ka, (num_tasks, dim), 1, HASH_PRIME, jnp.int32)
        b = jax.random.randint(kb, (num_tasks,), 0, HASH_PRIME, jnp.int32)
        return IndicatorState({"a": a, "b": b}, jnp.zeros((num_tasks,), jnp.float32))

    def scores(state, obs):  # the hash value h_i(x) in [0, M), as float: [B, T]
        return hash_values(state.frozen["a"], state.frozen["b"], obs, cfg.hash_bins).astype(jnp.float32)

    def fire(state, obs):
        return (hash_values(state.frozen["a"], state.frozen["b"], obs, cfg.hash_bins) == 0).astype(jnp.float32)

    return Indicators(init, scores, fire, False)


def hash_values(a: jax.Array, b: jax.Array, obs: jax.Array, bins: int) -> jax.Array:
    """Exact ``((sum_j a_ij x_j + b_i) mod P) mod bins`` for uint8 pixels, computed with float32 matmuls.

    a: [T, D] int32 in [1, P); b: [T] int32 in [0, P); obs: [B, *obs] uint8 (D = prod(obs)). Returns [B, T] int32.
    Integer dot products are slow on accelerators' and CPUs' matmul units, so ``a = 128 * a_hi + a_lo``
    (a_hi < 64, a_lo < 128) and pixels are summed in blocks of 256: every partial sum is an integer below 2^24,
    hence exact in float32 (precision=HIGHEST rules out TF32/bf16 passes). Block sums are reduced mod P in int32.
    """
    if obs.dtype != jnp.uint8:
        raise ValueError(f"hash indicators need raw uint8 pixels, got dtype {obs.dtype}")
    num_tasks, dim = a.shape
    x = obs.reshape(obs.shape[0], -1)
    if x.shape[1] != dim:
        raise ValueError(f"observation has {x.shape[1]} pixels, hash was built for {dim}")
    blocks = math.ceil(dim / _HASH_BLOCK)
    pad = blocks * _HASH_BLOCK - dim
    xf = jnp.pad(x, ((0, 0), (0, pad))).astype(jnp.float32).reshape(-1, blocks, _HASH_BLOCK)  # [B, nb, K]
    a = jnp.pad(a, ((0, 0), (0, pad))).reshape(num_tasks, blocks, _HASH_BLOCK)  # [T, nb, K]
    total = jnp.zeros((x.shape[0], num_tasks), jnp.int32)
    for part, scale in ((a // 128, 128), (a % 128, 1)):
        sums = jnp.einsum("bnk,tnk->bnt", xf, part.astype(jnp.float32),
                          precision=jax.lax.Precision.HIGHEST)  # [B, nb, T] exact integers < 2^24
        sums = jnp.sum(sums.astype(jnp.int32) % HASH_PRIME, axis=1) % HASH_PRIME  # [B, T]
        total = (total + scale * sums) % HASH_PRIME  # scale * sums < 2^20: no overflow
    return ((total + b[None]) % HASH_PRIME) % bins


def hash_values_reference(a: np.ndarray, b: np.ndarray, obs: np.ndarray, bins: int) -> np.ndarray:
    """Slow pure-Python reference of ``hash_values`` (arbitrary-precision ints), for tests."""
    a = np.asarray(a).tolist()
    b = np.asarray(b).tolist()
    out = np.zeros((obs.shape[0], len(a)), np.int64)
    for n, frame in enumerate(np.asarray(obs).reshape(obs.shape[0], -1).tolist()):
        for i, (ai, bi) in enumerate(zip(a, b)):
            out[n, i] = ((sum(x * y for x, y in zip(ai, frame)) + bi) % HASH_PRIME) % bins
    return out


def quantile_threshold_loss(scores: jax.Array, threshold: jax.Array, fire_fraction: float) -> jax.Array:
    """Pinball loss that moves ``threshold`` [T] to the ``(1 - fire_fraction)`` quantile of ``scores`` [B, T].

    Its gradient w.r.t. ``threshold_i`` is ``P(score_i <= threshold_i) - (1 - fire_fraction)``, zero exactly when
    indicator i fires on ``fire_fraction`` of the batch.
    """
    tau = 1.0 - fire_fraction
    u = jax.lax.stop_gradient(scores) - threshold[None]  # [B, T]
    return jnp.mean(jnp.sum(jnp.maximum(tau * u, (tau - 1.0) * u), axis=1))


def firing_rates(indicators: Indicators, state: IndicatorState, obs_batches) -> np.ndarray:
    """Measured fraction of states on which each indicator fires, over an iterable of ``[B, *obs]`` batches: [T]."""
    fire = jax.jit(indicators.fire)
    total, count = None, 0
    for obs in obs_batches:
        f = np.asarray(fire(state, jnp.asarray(obs))).sum(axis=0)
        total = f if total is None else total + f
        count += obs.shape[0]
    if not count:
        raise ValueError("firing_rates needs at least one non-empty batch")
    return total / count
