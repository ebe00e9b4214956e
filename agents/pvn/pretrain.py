"""PVN pretraining: one pure ``update(state, batch) -> (state, metrics)`` over offline transitions.

Each update (a) moves the rnd indicator thresholds one quantile-regression step (Adam with the network's settings
unless ``indicators.threshold_lr`` is set; its own moment estimates, as the reference's separate indicator state)
and, once ``step >= warmup_steps``, (b) takes one Adam step on the multi-task TD loss with uniform-policy
expected-SARSA targets from an EMA target network. During warm-up only (a) runs (the reference's 62,500-update
quantile warm-up before TD starts).

``precision`` (``run.precision``): under bfloat16 the PVN network (online and target forward passes, and the
backward pass) computes on bf16 copies of the float32 master weights (``omnitask.precision.with_precision``); Adam,
the EMA target and the thresholds stay float32. The frozen random indicator nets stay float32, so the auxiliary
rewards are the same function of the data in both precisions.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from agents.pvn.indicators import IndicatorConfig, Indicators, IndicatorState, make_indicators, \
    quantile_threshold_loss
from agents.pvn.losses import ema_update, pvn_td_loss, uniform_policy_targets
from agents.pvn.networks import EncoderConfig, PVNNetwork
from agents.pvn.score_cache import SCORES_KEY
from omnitask.mesh import shard_batch
from omnitask.nonfinite import FINITE_KEY, finite_flag
from omnitask.precision import with_precision


@dataclasses.dataclass
class PretrainConfig:
    """PVN pretraining settings (defaults: the paper's)."""

    num_tasks: int = 100  # number of auxiliary tasks (indicators); the paper scales it together with width
    encoder: EncoderConfig = dataclasses.field(  # the shared torso (paper: IMPALA x8 -> 4096 features)
        default_factory=lambda: EncoderConfig(arch="impala", width=8, feature_dim=4096))
    indicators: IndicatorConfig = dataclasses.field(default_factory=IndicatorConfig)
    gamma: float = 0.99  # discount of the auxiliary successor-measure tasks
    target_tau: float = 0.99  # EMA coefficient of the target network (target = tau*target + (1-tau)*online)
    learning_rate: float = 1.1e-4  # Adam step size (6.25e-5 * (256/32)^0.25 in the paper)
    adam_eps: float = 1.5e-4  # Adam epsilon
    batch_size: int = 256  # transitions per update
    num_updates: int = 1_560_000  # total gradient steps (warm-up included)
    warmup_steps: int = 62_500  # quantile-only updates before TD starts (rnd family; the reference's 1 iteration)
    updates_per_call: int = 100  # updates fused into one jitted scan (one host->device batch transfer)


class PretrainState(NamedTuple):
    """Everything pretraining needs to resume exactly."""

    params: dict  # online PVNNetwork params
    target_params: dict  # EMA target params
    opt_state: optax.OptState
    indicator: IndicatorState  # frozen indicator params + trained thresholds [T]
    threshold_opt_state: optax.OptState
    step: jax.Array  # [] int32 updates done (warm-up included)


class Pretrainer(NamedTuple):
    network: PVNNetwork
    indicators: Indicators
    init: Callable[[jax.Array], PretrainState]
    update: Callable[[PretrainState, dict], tuple[PretrainState, dict]]  # pure, jittable
    update_many: Callable[[PretrainState, dict], tuple[PretrainState, dict]]  # scan over a [K, B, ...] batch
    threshold_step: Callable  # (threshold [T], threshold opt state, scores [B, T]) -> (threshold, opt state, loss)


def make_pretrainer(cfg: PretrainConfig, obs_shape: tuple[int, ...], num_actions: int,
                    precision: str = "float32") -> Pretrainer:
    """Closures for PVN pretraining on observations of shape ``obs_shape`` with ``num_actions`` actions, the network
    computing in ``precision`` (float32 | bfloat16; parameters stay float32)."""
    if cfg.warmup_steps < 0 or cfg.batch_size < 1 or cfg.num_updates < 1:
        raise ValueError(f"pretrain: warmup_steps ({cfg.warmup_steps}) must be >= 0, batch_size "
                         f"({cfg.batch_size}) and num_updates ({cfg.num_updates}) >= 1")
    network = PVNNetwork(cfg.encoder.spec(), cfg.num_tasks, num_actions)
    apply_mixed = with_precision(network.apply, precision)

    def q_values(params, obs):  # obs [B, *obs] -> [B, T, A] float32; pixels as float so that they are cast too
        return apply_mixed(params, obs.astype(jnp.float32))
    indicators = make_indicators(cfg.indicators, obs_shape, cfg.num_tasks)
    optimizer = optax.adam(cfg.learning_rate, eps=cfg.adam_eps)
    threshold_lr = cfg.indicators.threshold_lr or cfg.learning_rate  # reference: the network's Adam settings
    threshold_opt = optax.adam(threshold_lr, eps=cfg.adam_eps)
    warmup = cfg.warmup_steps if indicators.trains_threshold else 0

    def init(key) -> PretrainState:
        k_net, k_ind = jax.random.split(key)
        params = network.init(k_net, jnp.zeros((1, *obs_shape), jnp.uint8))
        ind = indicators.init(k_ind)
        return PretrainState(params, params, optimizer.init(params), ind, threshold_opt.init(ind.threshold),
                             jnp.zeros((), jnp.int32))

    def threshold_step(threshold, opt_state, scores):
        """One Adam step of the quantile (pinball) loss on the thresholds, given the random nets' scores [B, T]."""
        loss, g = jax.value_and_grad(lambda t: quantile_threshold_loss(scores, t, cfg.indicators.fire_fraction)
                                     )(threshold)
        upd, opt_state = threshold_opt.update(g, opt_state)
        return optax.apply_updates(threshold, upd), opt_state, loss

    def td_loss(params, target_params, batch, rewards):
        q = q_values(params, batch["observation"])  # [B, T, A]
        next_q = q_values(target_params, batch["next_observation"])  # [B, T, A]
        targets = uniform_policy_targets(rewards, batch["terminated"], next_q, cfg.gamma)
        return pvn_td_loss(q, batch["action"], targets), jnp.mean(q)

    def update(state: PretrainState, batch: dict) -> tuple[PretrainState, dict]:
        batch = shard_batch(batch)  # transitions split over run.mesh's data axis (no-op on one device)
        obs = batch["observation"]  # [B, *obs] uint8
        ind = state.indicator
        if indicators.trains_threshold:
            # the frozen nets' scores [B, T]: read from the batch when the dataset serves them from the score cache
            # (agents.pvn.score_cache: scored once per stored transition), else computed here
            scores = batch[SCORES_KEY] if SCORES_KEY in batch else indicators.scores(ind, obs)
            threshold, th_opt, q_loss = threshold_step(ind.threshold, state.threshold_opt_state, scores)
            ind = ind._replace(threshold=threshold)
            # one pass of the random nets per update: the scores above, thresholded with the updated thresholds
            rewards = (scores > threshold[None]).astype(jnp.float32)  # [B, T] r_i(x) = 1{x in S_i}
        else:
            q_loss, th_opt = jnp.zeros(()), state.threshold_opt_state
            rewards = indicators.fire(ind, obs)  # [B, T]

        # The TD step is computed every update and kept only after warm-up (a select, not lax.cond: XLA:CPU runs
        # convolutions inside a conditional branch several times slower; warm-up is a tiny fraction of updates).
        active = state.step >= warmup
        (loss, q_mean), grads = jax.value_and_grad(td_loss, has_aux=True)(
            state.params, state.target_params, batch, rewards)
        upd, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, upd)
        target = ema_update(state.target_params, params, cfg.target_tau)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)  # noqa: E731
        params, target, opt_state = (keep(params, state.params), keep(target, state.target_params),
                                     keep(opt_state, state.opt_state))
        finite = jnp.minimum(finite_flag(q_loss), jnp.where(active, finite_flag(loss, grads), 1.0))
        loss, q_mean = jnp.where(active, loss, 0.0), jnp.where(active, q_mean, 0.0)
        new = PretrainState(params, target, opt_state, ind, th_opt, state.step + 1)
        metrics = {"td_loss": loss, "quantile_loss": q_loss, "q_mean": q_mean,
                   "fire_rate_batch": jnp.mean(rewards), "td_active": (state.step >= warmup).astype(jnp.float32), FINITE_KEY: finite}
        return new, metrics

    def update_many(state, batches):  # batches: dict of [K, B, ...]
        if jax.tree.leaves(batches)[0].shape[0] == 1:  # K = 1 without a scan: XLA:CPU runs the CNN's update ~9x
            return update(state, jax.tree.map(lambda x: x[0], batches))  # slower inside one (measured, README)
        state, metrics = jax.lax.scan(update, state, batches)
        return state, jax.tree.map(jnp.mean, metrics)

    return Pretrainer(network, indicators, init, update, update_many, threshold_step)
