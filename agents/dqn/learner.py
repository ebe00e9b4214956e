"""Double DQN learner: pure target/loss functions and an ``update(train_state, batch)`` over any Q-function.

The Q-function is pluggable: ``make_dqn_update`` takes ``q_fn(params, obs [N, ...]) -> q [N, A]``, so a frozen
encoder plus a linear head (PVN) reuses the exact same update. ``make_q_network`` builds the default
torso + linear head from an env spec.
References: Mnih et al. 2015 (DQN); van Hasselt et al. 2016 (double DQN); Hessel et al. 2018 (n-step).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from agents.common.networks import QNetwork, make_torso
from agents.common.replay import NStepBatch
from agents.dqn.config import DQNConfig
from envs.spec import DiscreteActionSpec, EnvSpec
from omnitask.nonfinite import FINITE_KEY, finite_flag


class DQNTrainState(NamedTuple):
    """Learner state."""

    params: Any  # online Q-network parameters
    target_params: Any  # target-network parameters
    opt_state: Any  # optax state
    num_updates: jax.Array  # [] int32 gradient updates done


def double_q_target(q_next_online: jax.Array, q_next_target: jax.Array, reward: jax.Array,
                    discount: jax.Array, double_q: bool = True) -> jax.Array:
    """Bootstrapped target for one transition: ``r + discount * Q_target(s', a*)``. ``q_next_* [A]``, scalars.

    ``a* = argmax_a Q_online(s', a)`` (double DQN) or ``argmax_a Q_target(s', a)`` (vanilla DQN).
    """
    chex.assert_rank([q_next_online, q_next_target, reward, discount], [1, 1, 0, 0])
    best = jnp.argmax(q_next_online if double_q else q_next_target)
    return reward + discount * q_next_target[best]


def huber(x: jax.Array, delta: float) -> jax.Array:
    """Huber loss: 0.5 x^2 for |x| <= delta, delta * (|x| - 0.5 delta) beyond; ``delta <= 0`` means plain L2."""
    if delta <= 0:
        return 0.5 * x**2
    abs_x = jnp.abs(x)
    quad = jnp.minimum(abs_x, delta)
    return 0.5 * quad**2 + delta * (abs_x - quad)


def make_q_network(cfg: DQNConfig, spec: EnvSpec, dtype: Any = None) -> QNetwork:
    """Default Q-network for a discrete-action spec: MLP or Nature CNN torso + linear head; ``dtype``: the torso's
    compute dtype (``run.precision``)."""
    if not isinstance(spec.action, DiscreteActionSpec):
        raise ValueError(f"{spec.env_id}: DQN needs discrete actions, got {spec.action!r}")
    torso = make_torso(spec.observation.shape, cfg.torso, tuple(cfg.hidden_sizes), cfg.activation, dtype)
    return QNetwork(torso, spec.action.num_actions)


def make_optimizer(cfg: DQNConfig) -> optax.GradientTransformation:
    adam = optax.adam(cfg.lr, eps=cfg.adam_eps)
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), adam) if cfg.max_grad_norm > 0 else adam


def make_dqn_update(q_fn: Callable[[Any, jax.Array], jax.Array], optimizer: optax.GradientTransformation,
                    cfg: DQNConfig) -> Callable[[DQNTrainState, NStepBatch], tuple[DQNTrainState, dict]]:
    """The pure learner step ``update(train_state, batch) -> (train_state, metrics)``.

    Loss: mean Huber(Q(s, a) - stop_grad(double-DQN n-step target)). After the gradient step the target network
    moves towards the online one every ``target_update_period`` updates (hard copy when ``target_tau == 1``).
    Gradients flow only into what ``q_fn`` differentiates (wrap a frozen encoder in ``stop_gradient``).
    """

    def loss_fn(params, target_params, batch: NStepBatch):
        q = q_fn(params, batch.obs)  # [N, A]
        q_next_online = q_fn(params, batch.next_obs)  # [N, A]
        q_next_target = q_fn(target_params, batch.next_obs)  # [N, A]
        target = jax.vmap(double_q_target, in_axes=(0, 0, 0, 0, None))(
            q_next_online, q_next_target, batch.reward, batch.discount, cfg.double_q)
        q_taken = jnp.take_along_axis(q, batch.action[:, None].astype(jnp.int32), axis=1)[:, 0]  # [N]
        td = q_taken - jax.lax.stop_gradient(target)
        return jnp.mean(huber(td, cfg.huber_delta)), {"q_mean": jnp.mean(q_taken), "td_abs": jnp.mean(jnp.abs(td))}

    def update(state: DQNTrainState, batch: NStepBatch):
        (loss, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.target_params, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        num_updates = state.num_updates + 1
        due = (num_updates % cfg.target_update_period) == 0
        moved = optax.incremental_update(params, state.target_params, cfg.target_tau)
        target_params = jax.tree.map(lambda new, old: jnp.where(due, new, old), moved, state.target_params)
        metrics = {"loss/td": loss, "loss/q_mean": info["q_mean"], "loss/td_abs": info["td_abs"],
                   "grad_norm": optax.tree.norm(grads)}
        metrics[FINITE_KEY] = finite_flag(loss, metrics["grad_norm"])
        return DQNTrainState(params, target_params, opt_state, num_updates), metrics

    return update
