"""DQN acting and observing as pure functions over ``DQNState`` (learner + replay + key + counters).

The same two functions drive both execution paths:
    action = act(params, obs [B, ...], key, epsilon)                       # epsilon-greedy, [B] int32
    state, metrics = observe(state, obs, action, reward, terminated, truncated, next_obs)
``observe`` stores the vector step in replay and, every ``train_every`` vector steps after ``learning_starts``,
runs ``gradient_steps`` double-DQN updates (a ``lax.cond``, so it jits into a scan).
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


def make_dqn_agent(cfg: DQNConfig, spec: EnvSpec, num_envs: int, network: Any = None) -> DQNAgent:
    """DQN for ``num_envs`` envs of ``spec``. ``network`` overrides the default ``make_q_network(cfg, spec)``."""
    validate(cfg, num_envs)
    network = network if network is not None else make_q_network(cfg, spec)
    optimizer = make_optimizer(cfg)
    q_fn = network.apply
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
        def one(train_state, k):
            batch = replay_sample(replay, k, cfg.batch_size, cfg.n_step, cfg.gamma)
            return update(train_state, batch)

        train_state, metrics = jax.lax.scan(one, train_state, jax.random.split(key, cfg.gradient_steps))
        return train_state, jax.tree.map(jnp.mean, metrics)

    def observe(state: DQNState, obs, action, reward, terminated, truncated, next_obs):
        replay = replay_add(state.replay, obs, action, reward, terminated, truncated, next_obs)
        vector_steps = state.vector_steps + 1
        env_steps = state.env_steps + num_envs
        key, k_learn = jax.random.split(state.key)
        due = (env_steps >= cfg.learning_starts) & (vector_steps % cfg.train_every == 0)
        shapes = jax.eval_shape(learn, state.train_state, replay, k_learn)[1]

        def skip(train_state, replay, key):
            return train_state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        train_state, metrics = jax.lax.cond(due, learn, skip, state.train_state, replay, k_learn)
        metrics["learned"] = due.astype(jnp.float32)
        return DQNState(train_state, replay, key, env_steps, vector_steps), metrics

    return DQNAgent(network, init, act, observe, lambda env_steps: linear_epsilon(cfg, env_steps), update)


class HostFunctions(NamedTuple):
    """Jitted pieces of the host-env loop (Atari, Meta-World, SUMO), shared by every DQN-based trainer."""

    act: Callable  # (params, obs [B, ...], key, env_steps) -> (key, actions [B], epsilon)
    observe: Callable  # DQNAgent.observe with the state donated (updated in place)
    greedy: Callable  # (params, obs [B, ...], key) -> eval_epsilon-greedy actions [B]


def jit_host_functions(agent: DQNAgent, eval_epsilon: float) -> HostFunctions:
    def act(params, obs, key, env_steps):
        key, k_act = jax.random.split(key)
        epsilon = agent.epsilon(env_steps)
        return key, agent.act(params, obs, k_act, epsilon), epsilon

    return HostFunctions(jax.jit(act), jax.jit(agent.observe, donate_argnums=0),
                         jax.jit(lambda params, obs, key: agent.act(params, obs, key, eval_epsilon)))


def num_vector_steps(total_env_steps: int, num_envs: int) -> int:
    return max(1, int(np.ceil(total_env_steps / num_envs)))
