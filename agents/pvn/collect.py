"""Offline data collection with the suite's env API into the chunked transition format.

``collect_jax`` rolls a behaviour policy inside jit over a JAX-native env (``JaxEnvFunctions``), ``block``
parallel steps at a time, and hands each block to a ``TransitionWriter``; host-env collectors call
``TransitionWriter.add_timestep`` directly. Behaviour policies are pure ``policy(key, obs [E, *obs]) -> [E]``.
``RecordingEnv`` wraps any host ``BatchedEnv`` so that an unchanged learner (the DQN baseline) stepping it writes
every transition it sees: a learning behaviour policy's data, as the DQN Replay Dataset.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from agents.pvn.dataset import TransitionWriter


def to_pixels(obs):
    """Observations as uint8 pixels (bool/float 0/1 planes become 0/1)."""
    return obs if obs.dtype == jnp.uint8 else obs.astype(jnp.uint8)


def uniform_policy(num_actions: int) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The uniform random behaviour policy."""
    return lambda key, obs: jax.random.randint(key, (obs.shape[0],), 0, num_actions, jnp.int32)


def collect_jax(fns, env_params: Any, num_envs: int, num_transitions: int, key: jax.Array,
                writer: TransitionWriter, policy: Callable, block: int = 256) -> dict:
    """Roll ``policy`` on ``num_envs`` envs until ``num_transitions`` transitions are written; returns stats."""
    k_reset, key = jax.random.split(key)
    env_state, ts = jax.vmap(fns.reset)(jax.random.split(k_reset, num_envs), env_params)

    def step(carry, k):
        env_state, obs = carry
        k_pol, k_env = jax.random.split(k)
        action = policy(k_pol, obs)
        env_state, ts = jax.vmap(fns.step)(jax.random.split(k_env, num_envs), env_state, action, env_params)
        out = {"observation": obs, "action": action, "reward": ts.reward, "terminated": ts.terminated,
               "truncated": ts.truncated, "next_observation": to_pixels(ts.info["final_observation"]),
               "episode_return": jnp.where(ts.done, ts.info["episode_return"], jnp.nan)}
        return (env_state, to_pixels(ts.observation)), out

    rollout = jax.jit(lambda c, k: jax.lax.scan(step, c, jax.random.split(k, block)))
    carry = (env_state, to_pixels(ts.observation))
    written, returns = 0, []
    while written < num_transitions:
        key, sub = jax.random.split(key)
        carry, out = rollout(carry, sub)
        out = jax.device_get(out)  # [block, E, ...]
        returns.append(out.pop("episode_return").ravel())
        flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in out.items()}  # [block * E, ...]
        take = min(num_transitions - written, flat["action"].shape[0])
        writer.add({k: v[:take] for k, v in flat.items()})
        written += take
    writer.close()
    rets = np.concatenate(returns)
    rets = rets[~np.isnan(rets)]
    return {"transitions": written, "episodes": int(rets.size),
            "behaviour_return": float(rets.mean()) if rets.size else float("nan")}


class RecordingEnv:
    """A host ``BatchedEnv`` that also writes every ``(obs, action, timestep)`` it steps into a ``TransitionWriter``.

    Everything else is forwarded to the wrapped env, so any agent's host loop can drive it unchanged. ``resets``
    lists the arguments of every ``reset`` call: with them and the recorded actions the stream replays exactly.
    """

    def __init__(self, env, writer: TransitionWriter):
        self.env, self.writer, self._obs = env, writer, None
        self.recorded, self.resets = 0, []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, *args, **kwargs):
        self.resets.append((args, dict(kwargs)))
        ts = self.env.reset(*args, **kwargs)
        self._obs = np.array(ts.observation)
        return ts

    def step(self, actions):
        ts = self.env.step(actions)
        self.writer.add_timestep(self._obs, np.asarray(actions), ts)
        self.recorded += len(self._obs)
        self._obs = np.array(ts.observation)
        return ts

    def close(self):
        self.writer.close()
        self.env.close()
