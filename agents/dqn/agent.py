"""DQN acting and observing as pure functions over ``DQNState`` (learner + replay + key + counters).

The same two functions drive both execution paths:
    action = act(params, obs [B, ...], key, epsilon)                       # epsilon-greedy, [B] int32
    state, metrics = observe(state, obs, action, reward, terminated, truncated, next_obs)
``observe`` stores the vector step in replay and, every ``train_every`` vector steps after ``learning_starts``,
runs ``gradient_steps`` double-DQN updates (a ``lax.cond``, so it jits into a scan). Host loops use
``jit_host_functions``, which splits storing and learning into two programs (faster on XLA:CPU).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.common.replay import ReplayState, replay_add, replay_init, replay_sample
from agents.dqn.config import DQNConfig, validate
from agents.dqn.learner import DQNTrainState, make_dqn_update, make_optimizer, make_q_network
from envs.spec import EnvSpec
from omnitask.mesh import shard_batch
from omnitask.precision import with_precision


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


def make_dqn_agent(cfg: DQNConfig, spec: EnvSpec, num_envs: int, network: Any = None,
                   precision: str = "float32") -> DQNAgent:
    """DQN for ``num_envs`` envs of ``spec``. ``network`` overrides the default ``make_q_network(cfg, spec)``;
    ``precision`` (``run.precision``): the Q-network's compute dtype (params stay float32)."""
    validate(cfg, num_envs)
    network = network if network is not None else make_q_network(cfg, spec)
    optimizer = make_optimizer(cfg)
    q_fn = with_precision(network.apply, precision)
    update = make_dqn_update(q_fn, optimizer, cfg)
    obs_shape, obs_dtype = tuple(spec.observation.shape), spec.observation.dtype
    num_rows = cfg.buffer_size // num_envs

    def init(key):
        k_net, k_state = jax.random.split(key)
        params = network.init(k_net, jnp.zeros((1, *obs_shape), obs_dtype))
        target = jax.tree.map(jnp.copy, params)  # a distinct buffer: host loops donate the whole state
        train_state = DQNTrainState(params, target, optimizer.init(params), jnp.zeros((), jnp.int32))
        replay = replay_init(num_rows, num_envs, obs_shape, obs_dtype)
        return DQNState(train_state, replay, k_state, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def act(params, obs, key, epsilon):
        return epsilon_greedy(q_fn(params, obs), key, epsilon)

    def learn(train_state, replay, key):
        # A Python loop, not lax.scan: XLA:CPU runs the Nature CNN ~6x slower inside a loop body (0.25 s vs 0.04 s
        # per Pong update), and gradient_steps is a small static count.
        all_metrics = []
        for k in jax.random.split(key, cfg.gradient_steps):
            batch = shard_batch(replay_sample(replay, k, cfg.batch_size, cfg.n_step, cfg.gamma))  # over run.mesh
            train_state, metrics = update(train_state, batch)
            all_metrics.append(metrics)
        return train_state, jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *all_metrics)

    def add(state: DQNState, obs, action, reward, terminated, truncated, next_obs):
        """Store one vector step and advance the counters; returns (state, the key this step learns with)."""
        replay = replay_add(state.replay, obs, action, reward, terminated, truncated, next_obs)
        key, k_learn = jax.random.split(state.key)
        return DQNState(state.train_state, replay, key, state.env_steps + num_envs, state.vector_steps + 1), k_learn

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

        def skip(train_state, replay, key):
            return train_state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        train_state, metrics = jax.lax.cond(due, learn, skip, state.train_state, state.replay, k_learn)
        metrics["learned"] = due.astype(jnp.float32)
        return state._replace(train_state=train_state), metrics

    return DQNAgent(network, init, act, observe, lambda env_steps: linear_epsilon(cfg, env_steps), update,
                    add, learn_due, learn_on)


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

    add = jax.jit(agent.add, donate_argnums=0)
    learn_on = jax.jit(agent.learn_on, donate_argnums=0)
    skipped: dict = {}

    def observe(state: DQNState, *transition):
        state, k_learn = add(state, *transition)
        if bool(agent.learn_due(int(state.env_steps), int(state.vector_steps))):
            state, metrics = learn_on(state, k_learn)
            return state, {**metrics, "learned": np.float32(1.0)}
        if not skipped:  # zeros shaped like the learn metrics, so per-step metrics stack
            shapes = jax.eval_shape(agent.learn_on, state, k_learn)[1]
            skipped.update({k: np.zeros(v.shape, v.dtype) for k, v in shapes.items()}, learned=np.float32(0.0))
        return state, dict(skipped)

    return HostFunctions(jax.jit(act), observe,
                         jax.jit(lambda params, obs, key: agent.act(params, obs, key, eval_epsilon)))


def num_vector_steps(total_env_steps: int, num_envs: int) -> int:
    return max(1, int(np.ceil(total_env_steps / num_envs)))
