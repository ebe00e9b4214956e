"""Planning with mctx over the world model: root/recurrent functions, muzero and gumbel-muzero, sampled actions.

Search state (the per-node ``embedding``), default ``kv_cache=True``: a ``Node`` holding the world model's
``DecodeCache`` (keys/values of the last ``2 * context_steps`` tokens per layer, a fixed-shape ring buffer). The
root encodes its window and computes it through the transformer once (``WorldModel.prefill``); each recurrent call
appends the chosen action token (reward and next latent read there) and then the predicted latent token (value and
policy read there), two single-token transformer passes against the cached keys/values.

``kv_cache=False`` keeps the previous path (the cost baseline): the embedding is the window of the last S steps
(``latents [B, S, D]``, ``actions``, ``valid [B, S]``); each recurrent call writes the action into the last slot,
recomputes the whole window to read reward and next latent, shifts it by one step (positions re-based to the new
first token) and recomputes it again for value and policy. Its function differs from the cached one once the tree
is deeper than the window (the cache keeps positions and each token's context from when it was computed); the
exact recompute of the cached function is ``WorldModel.sequence(..., window=C)``.
Values and rewards are mapped back through h^-1; UniZero predicts no termination, so discount = ``cfg.discount``.

Q normalisation (deliberate choice):
  * muzero: tree-wide min-max over the Q of every visited edge (MuZero's MinMaxStats, as the reference), unvisited
    children score the parent's mean Q (as the reference). mctx's default normalisation is NOT used.
  * gumbel_muzero: mctx's ``qtransform_completed_by_mix_value`` (completed Q, rescaled per node by min-max), the
    normalisation the Gumbel MuZero paper derives its policy-improvement guarantee for. The per-node rescale turns
    any Q spread, however small, into the full [0, 1] range (on Asterix a weak model's root Q spread of 0.3-5% of the
    value gave one-hot-like targets on arbitrary actions); ``gumbel_rescale_q: false`` keeps raw Q instead.
Dirichlet noise (muzero) and Gumbel noise (gumbel) are applied at collection only; evaluation is greedy.

Sampled-action variant (continuous control, Sampled MuZero): each node holds K actions sampled from its policy
(slot 0 = the policy mean); mctx sees K discrete actions with uniform prior logits (samples drawn from beta = pi, so
the empirical prior beta_hat/beta * pi is uniform over the samples).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import mctx
import numpy as np

from agents.scalezero.config import ScaleZeroConfig
from agents.scalezero.transforms import logits_to_value
from agents.scalezero.world_model import DecodeCache, ModelDims, WorldModel, apply_fn
from omnitask.mesh import DataParallel, shard_batch

LOG_STD_MIN, LOG_STD_MAX = -5.0, 1.0


class Window(NamedTuple):
    latents: jax.Array  # [B, S, D]
    actions: jax.Array  # [B, S] int32 or [B, S, A] float32 (last slot: placeholder)
    valid: jax.Array  # [B, S] bool
    task: jax.Array  # [B] int32
    sampled: jax.Array  # [B, K, A] candidate actions at this node (continuous) or [B, 0, 0]


class Node(NamedTuple):
    cache: DecodeCache  # keys/values of the node's last C tokens, its newest token = the node's latent
    task: jax.Array  # [B] int32
    sampled: jax.Array  # [B, K, A] candidate actions at this node (continuous) or [B, 0, 0]


class SearchOut(NamedTuple):
    action: jax.Array  # [B] int32 (discrete) or [B, A] float32 (continuous)
    action_index: jax.Array  # [B] index into the node's action set
    policy_target: jax.Array  # [B, K_or_A] search policy (visit distribution / gumbel improved policy)
    sampled: jax.Array  # [B, K, A] root candidate actions (continuous) or [B, 0, 0]
    root_value: jax.Array  # [B] search value at the root (raw scale)
    prior_value: jax.Array  # [B] network value at the root (raw scale)


def gaussian_policy(params_out: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``[..., 2A] -> (mean [..., A] in (-1, 1), log_std [..., A])``."""
    mean, log_std = jnp.split(params_out, 2, axis=-1)
    return jnp.tanh(mean), jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def sample_actions(key, policy_out, k: int) -> jax.Array:
    """K candidate actions from the Gaussian policy, slot 0 = the mean. ``[B, 2A] -> [B, K, A]`` in [-1, 1]."""
    mean, log_std = gaussian_policy(policy_out)
    noise = jax.random.normal(key, mean.shape[:-1] + (k,) + mean.shape[-1:])
    noise = noise.at[..., 0, :].set(0.0)
    return jnp.clip(mean[..., None, :] + jnp.exp(log_std)[..., None, :] * noise, -1.0, 1.0)


def qtransform_tree_min_max(tree: mctx.Tree, node_index: chex.Numeric, epsilon: float = 1e-8) -> chex.Array:
    """Q of ``node_index``'s children normalised by the min/max Q over every visited edge of the (unbatched) tree."""
    chex.assert_shape(node_index, ())
    qvalues = tree.qvalues(node_index)  # [A]
    visits = tree.children_visits[node_index]  # [A]
    all_q = tree.children_rewards + tree.children_discounts * tree.children_values  # [N, A]
    seen = tree.children_visits > 0
    lo = jnp.min(jnp.where(seen, all_q, jnp.inf))
    hi = jnp.max(jnp.where(seen, all_q, -jnp.inf))
    lo, hi = jnp.where(jnp.isfinite(lo), lo, 0.0), jnp.where(jnp.isfinite(hi), hi, 0.0)
    # unvisited children get the parent's mean Q (LightZero's compute_mean_q: mean over visited children, with
    # the parent's own value counted in except at the root), not 0
    n_seen, sum_q = jnp.sum(visits > 0), jnp.sum(jnp.where(visits > 0, qvalues, 0.0))
    at_root = (node_index == mctx.Tree.ROOT_INDEX) & (n_seen > 0)
    mean_q = jnp.where(at_root, sum_q / jnp.maximum(n_seen, 1), (tree.node_values[node_index] + sum_q) / (n_seen + 1))
    q = jnp.where(visits > 0, qvalues, mean_q)
    return jnp.clip((q - lo) / jnp.maximum(hi - lo, epsilon), 0.0, 1.0)


def run_policy(c: ScaleZeroConfig, params, key, root: mctx.RootFnOutput, recurrent_fn, num_simulations: int,
               train) -> mctx.PolicyOutput:
    """The configured mctx policy (``c.search``) with this module's Q normalisation and noise rules.

    ``train`` may be a Python bool or a traced scalar (1 = collection noise/temperature, 0 = greedy evaluation), so
    one compiled search serves both when the simulation counts are equal.
    """
    explore = jnp.asarray(train, jnp.float32)
    if c.search == "muzero":
        return mctx.muzero_policy(
            params, key, root, recurrent_fn, num_simulations,
            qtransform=qtransform_tree_min_max, pb_c_init=c.pb_c_init, pb_c_base=c.pb_c_base,
            dirichlet_fraction=c.dirichlet_fraction * explore, dirichlet_alpha=c.dirichlet_alpha,
            temperature=c.collect_temperature * explore)
    num_acts = root.prior_logits.shape[-1]
    return mctx.gumbel_muzero_policy(
        params, key, root, recurrent_fn, num_simulations,
        max_num_considered_actions=min(c.max_considered_actions, num_acts),
        gumbel_scale=c.gumbel_scale * explore,
        qtransform=functools.partial(mctx.qtransform_completed_by_mix_value, rescale_values=c.gumbel_rescale_q))


class Planner:
    """Static search setup (model, config, dims); ``run`` is a pure function of (params, key, inputs)."""

    def __init__(self, model: WorldModel, cfg: ScaleZeroConfig, dims: ModelDims, kv_cache: bool = True):
        self.model, self.cfg, self.dims = model, cfg, dims
        self.apply = apply_fn(model)  # in the model's compute dtype (run.precision)
        self.kv_cache = kv_cache

    # ---- model calls ----
    def _seq(self, params, win: Window, stage):
        seg = jnp.where(win.valid, 0, -1)
        return self.apply(params, win.latents, win.actions, seg, win.task, stage, win.task.shape[0],
                          method=WorldModel.sequence)

    def _prior(self, key, out_policy_last):
        """Prior logits and candidate set at a node from its policy output ``[B, P]``."""
        b = out_policy_last.shape[0]
        if self.dims.continuous:
            k = self.cfg.num_sampled_actions
            return jnp.zeros((b, k)), sample_actions(key, out_policy_last, k)
        return out_policy_last, jnp.zeros((b, 0, 0))

    def root(self, params, key, obs_hist, act_hist, valid, task, stage) -> mctx.RootFnOutput:
        """obs_hist ``[B, S, *obs]``, act_hist ``[B, S(,A)]`` (last slot ignored), valid ``[B, S]``, task ``[B]``."""
        latents = self.apply(params, obs_hist, method=WorldModel.encode)
        if self.kv_cache:
            cache, value_logits, policy = self.apply(params, latents, act_hist, valid, task, stage,
                                                     method=WorldModel.prefill)
            logits, sampled = self._prior(key, policy)
            value = logits_to_value(value_logits, self.cfg.support_max)
            return mctx.RootFnOutput(prior_logits=logits, value=value, embedding=Node(cache, task, sampled))
        win = Window(latents, act_hist, valid, task, jnp.zeros((task.shape[0], 0, 0)))
        out = self._seq(params, win, stage)
        logits, sampled = self._prior(key, out.policy[:, -1])
        value = logits_to_value(out.value_logits[:, -1], self.cfg.support_max)
        return mctx.RootFnOutput(prior_logits=logits, value=value, embedding=win._replace(sampled=sampled))

    def recurrent(self, params_stage, key, action, win):
        if self.kv_cache:
            return self._recurrent_cached(params_stage, key, action, win)
        params, stage = params_stage
        if self.dims.continuous:
            act = jnp.take_along_axis(win.sampled, action[:, None, None], axis=1)[:, 0]  # [B, A]
            actions = win.actions.at[:, -1].set(act)
        else:
            actions = win.actions.at[:, -1].set(action)
        out1 = self._seq(params, win._replace(actions=actions), stage)
        reward = logits_to_value(out1.reward_logits[:, -1], self.cfg.support_max)
        shift = lambda x, new: jnp.concatenate([x[:, 1:], new[:, None]], axis=1)
        nxt = Window(shift(win.latents, out1.next_latent[:, -1]), shift(actions, jnp.zeros_like(actions[:, -1])),
                     shift(win.valid, jnp.ones_like(win.valid[:, -1])), win.task, win.sampled)
        out2 = self._seq(params, nxt, stage)
        logits, sampled = self._prior(key, out2.policy[:, -1])
        value = logits_to_value(out2.value_logits[:, -1], self.cfg.support_max)
        rec = mctx.RecurrentFnOutput(reward=reward, discount=jnp.full_like(reward, self.cfg.discount),
                                     prior_logits=logits, value=value)
        return rec, nxt._replace(sampled=sampled)

    def _recurrent_cached(self, params_stage, key, action, node: Node):
        params, stage = params_stage
        apply = lambda *a, **k: self.apply(params, *a, **k)
        if self.dims.continuous:
            action = jnp.take_along_axis(node.sampled, action[:, None, None], axis=1)[:, 0]  # [B, A]
        reward_logits, latent, cache = apply(node.cache, action, node.task, stage, method=WorldModel.step_action)
        value_logits, policy, cache = apply(cache, latent, node.task, stage, method=WorldModel.step_latent)
        logits, sampled = self._prior(key, policy)
        reward = logits_to_value(reward_logits, self.cfg.support_max)
        value = logits_to_value(value_logits, self.cfg.support_max)
        rec = mctx.RecurrentFnOutput(reward=reward, discount=jnp.full_like(reward, self.cfg.discount),
                                     prior_logits=logits, value=value)
        return rec, Node(cache, node.task, sampled)

    # ---- search ----
    def run(self, params, key, obs_hist, act_hist, valid, task, stage, train, *,
            num_simulations: int) -> SearchOut:
        """One batched search decision. ``train`` (bool or traced 0/1) selects collection noise; eval is greedy."""
        c = self.cfg
        sims = num_simulations
        k_root, k_search, k_act = jax.random.split(key, 3)
        obs_hist, act_hist, valid, task = shard_batch((obs_hist, act_hist, valid, task))  # roots over run.mesh
        root = self.root(params, k_root, obs_hist, act_hist, valid, task, stage)
        out = run_policy(c, (params, stage), k_search, root, self.recurrent, sims, train)
        idx = out.action
        summary = out.search_tree.summary()
        if self.dims.continuous:
            action = jnp.take_along_axis(root.embedding.sampled, idx[:, None, None], axis=1)[:, 0]
        else:
            action = idx.astype(jnp.int32)
        return SearchOut(action, idx.astype(jnp.int32), out.action_weights, root.embedding.sampled,
                         summary.value, root.value)


def make_search_fn(planner: Planner, mesh: DataParallel | None = None):
    """Jitted ``(params, key, obs_hist, act_hist, valid, task, stage, train, num_simulations=) -> SearchOut``;
    ``train`` is traced (no recompilation between collection and evaluation), ``num_simulations`` static.
    ``mesh`` (``run.mesh``): the roots split over its data axis."""
    return (mesh or DataParallel(None)).jit(planner.run, out_axes=None, static_argnames=("num_simulations",))


def search_unsolved(search_fn, active, rng, params, key, obs_hist, act_hist, valid, task, stage, train, *,
                    num_simulations: int, num_actions: int, action_dim: int = 0, num_sampled: int = 0,
                    multiple: int = 1) -> SearchOut:
    """Collection step that searches only the envs of unsolved tasks; host numpy in and out.

    ``active [E]`` bool marks envs whose task still collects. Only those rows go through ``search_fn`` (one compiled
    search per distinct active count: at most one per number of unsolved tasks, as envs are split evenly). A batched
    env cannot pause single envs, so the other envs are stepped with a uniformly random action (``rng``, a numpy
    Generator) at no model cost: their env steps are real interactions and still count as env steps (not as the
    active steps of unsolved tasks), their policy target is uniform and their values zero (DPS never samples a
    solved task's data). Arguments as ``Planner.run``; ``num_actions`` (discrete) or ``action_dim`` and
    ``num_sampled`` (continuous) size the rows that are not searched. ``multiple``: the searched rows are padded
    (repeats of the first active row, results dropped) to a multiple of it, e.g. the ``run.mesh`` data size.
    """
    e = active.shape[0]
    idx = np.flatnonzero(active)
    k = num_sampled if action_dim else num_actions
    if action_dim:
        action = rng.uniform(-1.0, 1.0, (e, action_dim)).astype(np.float32)
        sampled = np.zeros((e, num_sampled, action_dim), np.float32)
    else:
        action = rng.integers(0, num_actions, e).astype(np.int32)
        sampled = np.zeros((e, 0, 0), np.float32)
    out = SearchOut(action, np.zeros(e, np.int32), np.full((e, k), 1.0 / k, np.float32), sampled,
                    np.zeros(e, np.float32), np.zeros(e, np.float32))
    if idx.size == 0:
        return out
    rows = np.concatenate([idx, np.full((-idx.size) % multiple, idx[0])])  # padded to a multiple of `multiple`
    sub = jax.device_get(search_fn(params, key, obs_hist[rows], act_hist[rows], valid[rows], task[rows], stage, train,
                                   num_simulations=num_simulations))
    for full, part in zip(out, sub):
        full[idx] = np.asarray(part)[:idx.size]
    return out

