"""JAX-native environments: pure single-env functions plus a host adapter with the BatchedEnv interface.

A ``JaxEnvFunctions`` is what jitted training loops use (vmap over envs and over contexts, scan over time):
    reset(key, params) -> (state, TimeStep)                 # TimeStep fields un-batched (scalars / obs_shape)
    step(key, state, action, params) -> (state, TimeStep)   # same-step autoreset, see envs.timestep
    params_from_context(context[C]) -> params pytree        # context vector in spec.context_vars order
``JaxBatchedEnv`` wraps them for code written against the host API (eval loops, conformance tests).

Bad actions: the host API (``JaxBatchedEnv.step``) refuses them like every host env does (``EnvSpec.check_actions``:
wrong shape, non-integer discrete actions, out-of-range discrete actions, NaN/inf). Inside jit nothing can be
refused, so the pure ``step`` functions clamp instead: discrete actions are cast to int32 and clipped to
``[0, num_actions)``, continuous actions have NaN replaced by 0 and are clipped to the action box (inf -> bound).
One bad action therefore never reaches the simulator state (no NaN physics, no 5x push).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import functools

import numpy as np

from envs.base import BatchedEnv
from envs.spec import EnvSpec
from envs.timestep import TimeStep


class JaxEnvFunctions(NamedTuple):
    reset: Callable[[jax.Array, Any], tuple[Any, TimeStep]]
    step: Callable[[jax.Array, Any, jax.Array, Any], tuple[Any, TimeStep]]
    params_from_context: Callable[[jax.Array], Any]


class JaxBatchedEnv(BatchedEnv):
    """Host-API adapter: ``num_envs`` copies, each with its own context row, stepped by one jitted vmap."""

    def __init__(self, spec: EnvSpec, fns: JaxEnvFunctions, context: np.ndarray, seed: int):
        self.spec = spec
        self.fns = fns
        self.num_envs = int(context.shape[0])
        self.context = jnp.asarray(context, jnp.float32)  # [B, C]
        self.params = jax.vmap(fns.params_from_context)(self.context)  # pytree of [B] leaves
        self._seed = seed
        self._key = jax.random.PRNGKey(seed)
        self._state = None

        self._reset_jit, self._step_jit = _batched_jits(fns, self.num_envs)

    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, sub = jax.random.split(self._key)
        self._state, ts = self._reset_jit(sub, self.params)
        return jax.device_get(ts)

    def snapshot(self):
        """``(key, batched env state)``: a pytree that ``restore`` continues from exactly (checkpointable)."""
        return (self._key, self._state)

    def restore(self, snapshot) -> None:
        self._key, self._state = snapshot

    def step(self, actions) -> TimeStep:
        if self._state is None:
            raise RuntimeError(f"{self.spec.env_id}: call reset() before step()")
        actions = jnp.asarray(self.spec.check_actions(actions, self.num_envs))
        self._key, self._state, ts = self._step_jit(self._key, self._state, actions, self.params)
        return jax.device_get(ts)


@functools.lru_cache(maxsize=64)
def _batched_jits(fns: JaxEnvFunctions, num_envs: int):
    """Jitted batched reset/step, cached per (functions, batch size) so new env instances don't recompile."""

    def _reset(key, params):
        return jax.vmap(fns.reset)(jax.random.split(key, num_envs), params)

    def _step(key, state, actions, params):
        key, sub = jax.random.split(key)
        state, ts = jax.vmap(fns.step)(jax.random.split(sub, num_envs), state, actions, params)
        return key, state, ts

    return jax.jit(_reset), jax.jit(_step)
