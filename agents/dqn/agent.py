"""DQN acting and observing as pure functions over ``DQNState`` (learner + replay + key + counters).

The same two functions drive both execution paths:
    action = act(params, obs [B, ...], key, epsilon)                       # epsilon-greedy, [B] int32
    state, metrics = observe(state, obs, action, reward, terminated, truncated, next_obs)
``observe`` stores the vector step in replay and, every ``train_every`` vector steps after ``learning_starts``,
runs ``gradient_steps`` double-DQN updates (a ``lax.cond``, so it jits into a scan). Host loops use
``jit_host_functions``, which splits storing and learning into two programs (faster on XLA:CPU).

Two hooks for agents built on DQN (PVN's online learners):
* ``store_features=True``: the Q-network is a ``QNetwork`` whose torso is frozen; the replay keeps the torso's
  features instead of observations and the update trains the linear head alone (optimiser state over the head;
  the torso's params never change) -- the maths of a gradient-stopped torso, without re-encoding every sampled
  transition or carrying optimiser state for the torso.
* ``replay="host"`` (``run.replay: host``): the replay is numpy in host memory, minibatches are gathered there
  (the same indices as the device replay draws from the same key) and copied to the device per update; only host
  loops (``jit_host_functions``) can drive it.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from agents.common.replay import (NStepBatch, ReplayState, host_replay_add, host_replay_init, host_replay_sample,
                                  replay_add, replay_init, replay_sample)
from agents.dqn.config import DQNConfig, validate
from agents.dqn.learner import DQNTrainState, make_dqn_update, make_optimizer, make_q_network
from envs.spec import EnvSpec
from omnitask.mesh import shard_batch
from omnitask.precision import compute_dtype, with_precision


class DQNState(NamedTuple):
    """Everything a DQN run owns besides the environments (checkpointable)."""

    train_state: DQNTrainState
    replay: ReplayState
    key: jax.Array  # [2] PRNG key (acting, sampling)
    env_steps: jax.Array  # [] int32 env steps summed over envs
    vector_steps: jax.Array  # [] int32 calls to observe


class DQNAgent(NamedTuple):
    """Static parts of DQN (closures over network, optimiser, config)."""

    network: Any  # flax module: obs [N, ...] -> q [N, A]
    init: Callable[[jax.Array], DQNState]
    act: Callable  # (params, obs [B, ...], key, epsilon []) -> action [B] int32
    observe: Callable  # (state, obs, action, reward, terminated, truncated, next_obs) -> (state, metrics)
    epsilon: Callable  # env_steps [] -> epsilon []
    update: Callable  # the pure learner step (train_state, NStepBatch) -> (train_state, metrics)
    add: Callable  # (state, obs, action, reward, terminated, truncated, next_obs) -> (state, k_learn)
    learn_due: Callable  # (env_steps, vector_steps) after a step -> whether that step learns
    learn_on: Callable  # (state, k_learn) -> (state, metrics): gradient_steps updates from replay
    learn_metric_shapes: Callable  # train_state -> shapes of ``learn_on``'s metrics (zeros when a step skips)
    replay_location: str = "device"  # 'host': add/learn_on are host functions (numpy replay), never jitted


def linear_epsilon(cfg: DQNConfig, env_steps: jax.Array) -> jax.Array:
    """``epsilon_start`` until ``learning_starts``, then linear to ``epsilon_end`` over ``epsilon_decay_steps``."""
    frac = jnp.clip((env_steps - cfg.learning_starts) / max(1, cfg.epsilon_decay_steps), 0.0, 1.0)
    return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)


def epsilon_greedy(q: jax.Array, key: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Per-row epsilon-greedy over ``q [B, A]`` -> ``[B]`` int32."""
    k_explore, k_random = jax.random.split(key)
    greedy = jnp.argmax(q, axis=-1)
    random = jax.random.randint(k_random, greedy.shape, 0, q.shape[-1])
    explore = jax.random.uniform(k_explore, greedy.shape) < epsilon
    return jnp.where(explore, random, greedy).astype(jnp.int32)


REPLAY_LOCATIONS = ("device", "host")


def _mean_over_steps(all_metrics: list) -> dict:
    return jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *all_metrics)


class FrozenTorso(NamedTuple):
    """A ``QNetwork`` (``agents.common.networks``: attribute ``torso``, then the linear head ``Dense_0``) split
    into its frozen torso and its trainable head."""

    features: Callable  # (params, obs [N, ...]) -> features [N, F]
    head_q: Callable  # (head params, features [N, F]) -> q [N, A]
    head_of: Callable  # params -> head params {'params': Dense_0's}
    with_head: Callable  # (params, head params) -> params with that head (the torso's arrays passed through)


def frozen_torso(network: Any, num_actions: int) -> FrozenTorso:
    def features(params, obs):
        return network.apply(params, obs, method=lambda module, o: module.torso(o))

    def head_q(head_params, x):
        return nn.Dense(num_actions).apply(head_params, x)

    def head_of(params):
        return {"params": params["params"]["Dense_0"]}

    def with_head(params, head_params):
        return dict(params, params=dict(params["params"], Dense_0=head_params["params"]))

    return FrozenTorso(features, head_q, head_of, with_head)


def head_only_update(frozen: FrozenTorso, head_update: Callable) -> Callable:
    """``update(train_state, batch)`` over full Q-network params that trains the head alone: the optimiser state
    covers the head only, and the torso's arrays (online and target) pass through untouched."""
    def update(state: DQNTrainState, batch: NStepBatch):
        head_state = DQNTrainState(frozen.head_of(state.params), frozen.head_of(state.target_params),
                                   state.opt_state, state.num_updates)
        head_state, metrics = head_update(head_state, batch)
        return DQNTrainState(frozen.with_head(state.params, head_state.params),
                             frozen.with_head(state.target_params, head_state.target_params), head_state.opt_state,
                             head_state.num_updates), metrics

    return update


def make_dqn_agent(cfg: DQNConfig, spec: EnvSpec, num_envs: int, network: Any = None,
                   precision: str = "float32", store_features: bool = False, replay: str = "device") -> DQNAgent:
    """DQN for ``num_envs`` envs of ``spec``. ``network`` overrides the default ``make_q_network(cfg, spec)``;
    ``precision`` (``run.precision``): the Q-network's compute dtype (params stay float32); ``store_features`` and
    ``replay``: the hooks of the module docstring."""
    validate(cfg, num_envs)
    if replay not in REPLAY_LOCATIONS:
        raise ValueError(f"DQN replay location {replay!r} unknown; allowed: {', '.join(REPLAY_LOCATIONS)}")
    network = network if network is not None else make_q_network(cfg, spec, compute_dtype(precision))
    optimizer = make_optimizer(cfg)
    q_fn = with_precision(network.apply, precision)
    obs_shape, obs_dtype = tuple(spec.observation.shape), spec.observation.dtype
    if store_features:  # the replay holds frozen-torso features; the update trains the head on them
        frozen = frozen_torso(network, spec.action.num_actions)
        embed, trained_of = with_precision(frozen.features, precision), frozen.head_of
        update = head_only_update(frozen, make_dqn_update(with_precision(frozen.head_q, precision), optimizer, cfg))
    else:
        embed, trained_of = (lambda params, obs: obs), (lambda params: params)
        update = make_dqn_update(q_fn, optimizer, cfg)
    num_rows = cfg.buffer_size // num_envs
    host = replay == "host"

    def init(key):
        k_net, k_state = jax.random.split(key)
        params = network.init(k_net, jnp.zeros((1, *obs_shape), obs_dtype))
        target = jax.tree.map(jnp.copy, params)  # a distinct buffer: host loops donate the whole state
        train_state = DQNTrainState(params, target, optimizer.init(trained_of(params)), jnp.zeros((), jnp.int32))
        stored = jax.eval_shape(embed, params, jax.ShapeDtypeStruct((1, *obs_shape), obs_dtype))
        make_replay = host_replay_init if host and not isinstance(k_state, jax.core.Tracer) else replay_init
        replay_state = make_replay(num_rows, num_envs, stored.shape[1:], stored.dtype)
        return DQNState(train_state, replay_state, k_state, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def act(params, obs, key, epsilon):
        return epsilon_greedy(q_fn(params, obs), key, epsilon)

    def learn(train_state, replay_state, key):
        # A Python loop, not lax.scan: XLA:CPU runs the Nature CNN ~6x slower inside a loop body (0.25 s vs 0.04 s
        # per Pong update), and gradient_steps is a small static count.
        all_metrics = []
        for k in jax.random.split(key, cfg.gradient_steps):
            batch = shard_batch(replay_sample(replay_state, k, cfg.batch_size, cfg.n_step, cfg.gamma))  # run.mesh
            train_state, metrics = update(train_state, batch)
            all_metrics.append(metrics)
        return train_state, _mean_over_steps(all_metrics)

    def add(state: DQNState, obs, action, reward, terminated, truncated, next_obs):
        """Store one vector step and advance the counters; returns (state, the key this step learns with)."""
        params = state.train_state.params
        replay_state = replay_add(state.replay, embed(params, obs), action, reward, terminated, truncated,
                                  embed(params, next_obs))
        key, k_learn = jax.random.split(state.key)
        return (DQNState(state.train_state, replay_state, key, state.env_steps + num_envs, state.vector_steps + 1),
                k_learn)

    def learn_due(env_steps, vector_steps):
        """Whether the step that brought the counters to these values learns (learning_starts, train_every)."""
        return (env_steps >= cfg.learning_starts) & (vector_steps % cfg.train_every == 0)

    def learn_on(state: DQNState, k_learn):
        train_state, metrics = learn(state.train_state, state.replay, k_learn)
        return state._replace(train_state=train_state), metrics

    def observe(state: DQNState, obs, action, reward, terminated, truncated, next_obs):
        state, k_learn = add(state, obs, action, reward, terminated, truncated, next_obs)
        due = learn_due(state.env_steps, state.vector_steps)
        shapes = jax.eval_shape(learn, state.train_state, state.replay, k_learn)[1]

        def skip(train_state, replay_state, key):
            return train_state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        train_state, metrics = jax.lax.cond(due, learn, skip, state.train_state, state.replay, k_learn)
        metrics["learned"] = due.astype(jnp.float32)
        return state._replace(train_state=train_state), metrics

    def batch_shapes(train_state) -> NStepBatch:
        stored = jax.eval_shape(embed, train_state.params, jax.ShapeDtypeStruct((1, *obs_shape), obs_dtype))
        x = jax.ShapeDtypeStruct((cfg.batch_size, *stored.shape[1:]), stored.dtype)
        scalars = jax.ShapeDtypeStruct((cfg.batch_size,), jnp.float32)
        return NStepBatch(x, jax.ShapeDtypeStruct((cfg.batch_size,), jnp.int32), scalars, scalars, x)

    def learn_metric_shapes(train_state):
        return jax.eval_shape(lambda ts, b: _mean_over_steps([update(ts, b)[1]]), train_state,
                              batch_shapes(train_state))

    epsilon = lambda env_steps: linear_epsilon(cfg, env_steps)  # noqa: E731
    if not host:
        return DQNAgent(network, init, act, observe, epsilon, update, add, learn_due, learn_on, learn_metric_shapes)

    # run.replay=host: numpy writes and gathers on the host; the learner step and the feature pass stay jitted.
    jit_embed = jax.jit(embed)
    jit_update = jax.jit(lambda train_state, batch: update(train_state, shard_batch(batch)), donate_argnums=0)
    split = jax.jit(jax.random.split, static_argnums=1)

    def add_host(state: DQNState, obs, action, reward, terminated, truncated, next_obs):
        params = state.train_state.params
        stored = (obs, next_obs) if not store_features else (jit_embed(params, obs), jit_embed(params, next_obs))
        replay_state = host_replay_add(state.replay, stored[0], action, reward, terminated, truncated, stored[1])
        key, k_learn = split(state.key, 2)
        return (DQNState(state.train_state, replay_state, key, state.env_steps + num_envs, state.vector_steps + 1),
                k_learn)

    def learn_on_host(state: DQNState, k_learn):
        train_state, all_metrics = state.train_state, []
        for k in split(k_learn, cfg.gradient_steps):  # the device replay's keys: the same sampled transitions
            batch = host_replay_sample(state.replay, k, cfg.batch_size, cfg.n_step, cfg.gamma)
            train_state, metrics = jit_update(train_state, batch)  # the batch is copied to the device here
            all_metrics.append(metrics)
        return state._replace(train_state=train_state), _mean_over_steps(all_metrics)

    def no_fused_observe(*_):
        raise ValueError("run.replay=host: DQN's jitted JAX-native loop cannot read a host replay; the DQN trainer "
                         "runs host replays on its host loop")

    return DQNAgent(network, init, act, no_fused_observe, epsilon, update, add_host, learn_due, learn_on_host,
                    learn_metric_shapes, "host")


class HostFunctions(NamedTuple):
    """Jitted pieces of the host-env loop (Atari, Meta-World, SUMO), shared by every DQN-based trainer."""

    act: Callable  # (params, obs [B, ...], key, env_steps) -> (key, actions [B], epsilon)
    observe: Callable  # (state, obs, action, reward, terminated, truncated, next_obs) -> (state, metrics); donated
    greedy: Callable  # (params, obs [B, ...], key) -> eval_epsilon-greedy actions [B]


def jit_host_functions(agent: DQNAgent, eval_epsilon: float) -> HostFunctions:
    """Host loops store and learn in two jitted programs and decide on the host whether to learn.

    Under a ``lax.cond`` XLA:CPU runs the Nature CNN update ~6x slower (measured on Pong, batch 32: 0.24 s per
    observed step with the cond vs 0.04 s split), so only the jitted JAX-native loop keeps the cond.
    """
    def act(params, obs, key, env_steps):
        key, k_act = jax.random.split(key)
        epsilon = agent.epsilon(env_steps)
        return key, agent.act(params, obs, k_act, epsilon), epsilon

    if agent.replay_location == "host":  # numpy replay: add/learn_on jit their own device parts
        add, learn_on = agent.add, agent.learn_on
    else:
        add, learn_on = jax.jit(agent.add, donate_argnums=0), jax.jit(agent.learn_on, donate_argnums=0)
    skipped: dict = {}

    def observe(state: DQNState, *transition):
        state, k_learn = add(state, *transition)
        if bool(agent.learn_due(int(state.env_steps), int(state.vector_steps))):
            state, metrics = learn_on(state, k_learn)
            return state, {**metrics, "learned": np.float32(1.0)}
        if not skipped:  # zeros shaped like the learn metrics, so per-step metrics stack
            shapes = agent.learn_metric_shapes(state.train_state)
            skipped.update({k: np.zeros(v.shape, v.dtype) for k, v in shapes.items()}, learned=np.float32(0.0))
        return state, dict(skipped)

    return HostFunctions(jax.jit(act), observe,
                         jax.jit(lambda params, obs, key: agent.act(params, obs, key, eval_epsilon)))


def num_vector_steps(total_env_steps: int, num_envs: int) -> int:
    return max(1, int(np.ceil(total_env_steps / num_envs)))
