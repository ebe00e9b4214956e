"""Metacognitive test-time RL in JAX: a small trainable Flax head on top of the reasoner's action preferences.

Policy (one env):  pi(a | s) = softmax(reasoner_weight * reasoner_logits(s) + head_params(features(s)))[a]
  * ``reasoner_logits`` come from the action reasoner (embedded knowledge or a VLM's answer) and are constants here;
  * the head is a 2-layer MLP whose last layer starts at zero, so at test start the policy *is* the reasoner's.
Acting rule (``make_act``): the reasoner is *decided* when its top logit beats the runner-up by at least
``obey_margin`` (a parsed VLM answer always is: ``chosen_logit`` on one action, 0 elsewhere); a decided reasoner's
action is executed as is. Only where it is undecided (ties, e.g. an embedded reasoner without significant knowledge)
is the action sampled from pi, i.e. the head re-ranks. The first actions of test-time-RL branches are always sampled
from pi (``make_sample_groups``): that is where the head explores and learns.
What learns: only the head's parameters (and, outside this module, the non-parametric knowledge memory). The VLM
weights are never updated (no LoRA in this implementation).

Update: group-relative policy gradient (GRPO-style). From one cloned emulator state s0 per env, G branched rollouts
start with first actions a0_g ~ pi(.|s0), repeat a0_g for ``commit`` decisions (so the choice has a visible
effect), then continue with the current policy up to H decisions, with common random numbers: every branch of a
group uses the same PRNG keys for its continuation, so returns differ by the first action's consequences rather
than by independent sampling noise. Their returns R_g
are normalised within the group, A_g = (R_g - mean_g R) / (std_g R + eps), and the loss is
    L = -mean_{b,g} A_{b,g} * log pi(a0_{b,g} | s0_b)  -  entropy_coef * mean_b H(pi(.|s0_b)).
Only the first action of a branch gets credit (the continuation is shared policy behaviour).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from omnitask.nonfinite import FINITE_KEY, finite_flag


@dataclasses.dataclass
class TTRLConfig:
    """Test-time RL knobs."""

    enabled: bool = True  # False: the head never updates (the "no test-time RL" ablation)
    group_size: int = 4  # G: branched rollouts per group (one group per env per update)
    horizon: int = 12  # H: decisions per branched rollout
    commit: int = 4  # a branch repeats its first action for this many decisions before following the policy
    every: int = 8  # real decisions between two updates
    learning_rate: float = 3e-3  # Adam step size of the head
    hidden: int = 64  # head hidden width
    entropy_coef: float = 0.01  # entropy bonus of the policy at s0
    reasoner_weight: float = 1.0  # multiplier of the reasoner's logits inside the policy
    life_loss_penalty: float = 1.0  # subtracted from a branch's return per life lost in it
    adv_eps: float = 1e-3  # std floor of the group normalisation (all-equal groups give zero advantage)
    obey_margin: float = 2.0  # reasoner decided (its top action executed as is) when top - runner-up logit >= this

    def __post_init__(self) -> None:
        if self.obey_margin <= 0:
            raise ValueError(f"ttrl.obey_margin must be > 0 (a tie is never a decision), got {self.obey_margin}")


class Head(nn.Module):
    """features [B, F] -> logits [B, A]; the output layer is zero-initialised."""

    num_actions: int
    hidden: int = 64

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.tanh(nn.Dense(self.hidden)(x))
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)(x)


class TTRLState(NamedTuple):
    params: dict  # head parameters
    opt_state: optax.OptState
    updates: jax.Array  # [] int32 number of updates so far


class GroupBatch(NamedTuple):
    features: jax.Array  # [B, F] float32 features at the branching state s0
    reasoner_logits: jax.Array  # [B, A] float32 reasoner preferences at s0
    actions: jax.Array  # [B, G] int32 first actions of the branches
    returns: jax.Array  # [B, G] float32 branch returns


def make_head(num_actions: int, cfg: TTRLConfig) -> tuple[Head, optax.GradientTransformation]:
    return Head(num_actions, cfg.hidden), optax.adam(cfg.learning_rate)


def init_state(key: jax.Array, head: Head, opt: optax.GradientTransformation, feature_dim: int) -> TTRLState:
    params = head.init(key, jnp.zeros((1, feature_dim), jnp.float32))
    return TTRLState(params, opt.init(params), jnp.zeros((), jnp.int32))


def policy_logits(head: Head, params, features: jax.Array, reasoner_logits: jax.Array,
                  reasoner_weight: float) -> jax.Array:
    """[B, F], [B, A] -> [B, A] combined logits."""
    return reasoner_weight * reasoner_logits + head.apply(params, features)


def group_advantages(returns: jax.Array, eps: float) -> jax.Array:
    """[B, G] returns -> [B, G] group-normalised advantages (zero for groups whose returns are all equal)."""
    mean = returns.mean(axis=1, keepdims=True)
    std = returns.std(axis=1, keepdims=True)
    return (returns - mean) / jnp.maximum(std, eps) * (std > eps)


def grpo_loss(params, head: Head, batch: GroupBatch, cfg: TTRLConfig) -> tuple[jax.Array, dict]:
    chex.assert_rank([batch.features, batch.reasoner_logits, batch.actions, batch.returns], 2)
    chex.assert_equal_shape([batch.actions, batch.returns])
    logits = policy_logits(head, params, batch.features, batch.reasoner_logits, cfg.reasoner_weight)  # [B, A]
    logp = jax.nn.log_softmax(logits)  # [B, A]
    adv = jax.lax.stop_gradient(group_advantages(batch.returns, cfg.adv_eps))  # [B, G]
    logp_a = jnp.take_along_axis(logp, batch.actions, axis=1)  # [B, G]
    entropy = -(jnp.exp(logp) * logp).sum(-1)  # [B]
    loss = -(adv * logp_a).mean() - cfg.entropy_coef * entropy.mean()
    return loss, {"ttrl_loss": loss, "ttrl_entropy": entropy.mean(), "ttrl_adv_abs": jnp.abs(adv).mean()}


def make_update(head: Head, opt: optax.GradientTransformation, cfg: TTRLConfig):
    """A jitted ``update(state, batch) -> (state, metrics)`` closing over the static head/optimizer/config."""

    @jax.jit
    def update(state: TTRLState, batch: GroupBatch) -> tuple[TTRLState, dict]:
        grads, metrics = jax.grad(grpo_loss, has_aux=True)(state.params, head, batch, cfg)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        metrics[FINITE_KEY] = finite_flag(metrics["ttrl_loss"], grads)
        return TTRLState(optax.apply_updates(state.params, updates), opt_state, state.updates + 1), metrics

    return update


def reasoner_decision(reasoner_logits: jax.Array, obey_margin: float) -> tuple[jax.Array, jax.Array]:
    """[B, A] -> (answered action [B] int32, decided [B] bool: top logit - runner-up >= ``obey_margin``)."""
    top2 = jax.lax.top_k(reasoner_logits, 2)[0]  # [B, 2]
    return jnp.argmax(reasoner_logits, axis=-1).astype(jnp.int32), top2[:, 0] - top2[:, 1] >= obey_margin


def make_act(head: Head, reasoner_weight: float, obey_margin: float):
    """A jitted ``act(params, features [B,F], reasoner_logits [B,A], key) -> (actions [B], decided [B] bool)``.

    Decided envs execute the reasoner's answer; undecided ones sample from the policy (reasoner + head)."""

    @jax.jit
    def act(params, features, reasoner_logits, key):
        logits = policy_logits(head, params, features, reasoner_logits, reasoner_weight)
        answer, decided = reasoner_decision(reasoner_logits, obey_margin)
        return jnp.where(decided, answer, jax.random.categorical(key, logits).astype(jnp.int32)), decided

    return act


def make_sample_groups(head: Head, reasoner_weight: float, group_size: int):
    """A jitted ``sample(params, features, reasoner_logits, key) -> first actions [B, G]`` for the branches."""

    @jax.jit
    def sample(params, features, reasoner_logits, key):
        logits = policy_logits(head, params, features, reasoner_logits, reasoner_weight)  # [B, A]
        return jax.random.categorical(key, logits[:, None, :], shape=(logits.shape[0], group_size))

    return sample
