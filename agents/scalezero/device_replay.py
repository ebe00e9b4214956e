"""The ScaleZero replay kept on the device (``run.replay: device``): the arrays of ``replay.ReplayState`` as
``jax.Array``s in the jitted state, written once per collect step and sampled inside the jitted learn step, so an
update copies nothing from the host.

Semantics are the host replay's (``agents/scalezero/replay.py``): the same ``[E, C]`` ring of decisions per env,
new rows get the current max priority, windows are gathered by the same ``replay.gather`` (jax.numpy), uniform roots
are uniform over a task's envs and over the ``oldest`` fraction of stored columns, prioritised roots are drawn with
probability ``priority ** alpha`` over a task's stored rows with importance weights ``(N p) ** -beta`` divided by
the slot's max. Only the random stream differs: ``jax.random`` here, numpy's Generator on the host, so the two
replays draw the same distribution of rows, not the same rows (given the same rows they build the same batch).
Priority updates of a row drawn twice in one batch keep one of the values (numpy: the last; XLA: unspecified).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from agents.scalezero import replay as rp


def to_device(rb: rp.ReplayState, put=jax.device_put) -> rp.ReplayState:
    """The host replay's arrays on the device (``put``: e.g. ``DataParallel.put`` to replicate over a mesh).
    ``ptr``/``size`` become int32 (JAX's default integer width)."""
    return put(jax.tree.map(lambda x: jnp.asarray(x, jnp.int32) if x.dtype == np.int64 else jnp.asarray(x), rb))


def _add_block(rb: rp.ReplayState, obs, action, reward, terminated, truncated, policy, sampled, root_value,
               episode) -> rp.ReplayState:
    """Write ``T`` columns (one per collection step; every array ``[T, E, ...]``) starting at ``ptr``.

    New rows get the max priority of the rows stored before the block (the host replay's per-column rule gives the
    same value: the rows it writes inside the block carry that max themselves)."""
    cols = rb.obs.shape[1]
    filled = jnp.arange(cols) < rb.size  # [C] physical columns holding data (the ring fills from column 0)
    max_prio = jnp.where(rb.size > 0, jnp.max(jnp.where(filled[None], rb.priority, -jnp.inf)), 1.0)
    continuous = rb.action.ndim == 3

    def write(rb, col_data):
        col = rb.ptr
        o, a, r, te, tr, p, s, v, ep = col_data
        put = lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x.astype(buf.dtype), col, axis=1)
        rb = rb._replace(obs=put(rb.obs, o), action=put(rb.action, a), reward=put(rb.reward, r),
                         terminated=put(rb.terminated, te), truncated=put(rb.truncated, tr), policy=put(rb.policy, p),
                         sampled=put(rb.sampled, s) if continuous else rb.sampled,
                         root_value=put(rb.root_value, v),
                         priority=put(rb.priority, jnp.full(rb.priority.shape[:1], max_prio, rb.priority.dtype)),
                         episode=put(rb.episode, ep),
                         ptr=(col + 1) % cols, size=jnp.minimum(rb.size + 1, cols))
        return rb, None

    data = (obs, action, reward, terminated, truncated, policy, sampled, root_value, episode)
    return jax.lax.scan(write, rb, data)[0]


add_block = jax.jit(_add_block, donate_argnums=(0,))


def sample_index(key, rb: rp.ReplayState, slot_tasks, per_slot: int, prioritized: bool = False,
                 alpha: float = 0.6, beta: float = 0.4, oldest: float = 1.0):
    """``replay.sample_index`` drawn with ``jax.random`` on the device: ``(env_idx [B], off [B], weight [B])``,
    ``B = G * per_slot`` grouped by slot. Traceable; ``slot_tasks [G]`` may be traced."""
    e, cols = rb.priority.shape
    size = rb.size
    start = (rb.ptr - size) % cols
    logical = (jnp.arange(cols) - start) % cols  # [C] logical offset of each physical column
    stored = logical < size  # [C]

    def one_slot(k, task):
        in_task = rb.env_task == task  # [E]
        if prioritized:
            ok = in_task[:, None] & stored[None]  # [E, C]
            logits = jnp.where(ok, alpha * jnp.log(rb.priority), -jnp.inf).reshape(-1)
            flat = jax.random.categorical(k, logits, shape=(per_slot,))
            p = jax.nn.softmax(logits)[flat]  # normalised priority ** alpha of the drawn rows
            n = jnp.sum(in_task) * size
            w = (n * p) ** (-beta)
            return flat // cols, logical[flat % cols], w / jnp.max(w)
        k_env, k_off = jax.random.split(k)
        env = jax.random.categorical(k_env, jnp.where(in_task, 0.0, -jnp.inf), shape=(per_slot,))
        high = jnp.maximum(1, jnp.floor(size.astype(jnp.float32) * oldest).astype(jnp.int32))
        off = jax.random.randint(k_off, (per_slot,), 0, high)
        return env, off, jnp.ones((per_slot,), jnp.float32)

    keys = jax.random.split(key, slot_tasks.shape[0])
    env_idx, off, w = jax.vmap(one_slot)(keys, slot_tasks)  # [G, per_slot] each
    return env_idx.reshape(-1), off.reshape(-1).astype(jnp.int32), w.reshape(-1).astype(jnp.float32)


def sample(key, rb: rp.ReplayState, slot_tasks, per_slot: int, length: int, prioritized: bool = False,
           alpha: float = 0.6, beta: float = 0.4, oldest: float = 1.0):
    """Device ``replay.sample``: ``(batch, (env_idx [B], root_col [B]))``. Traceable (call inside jit)."""
    env_idx, off, weight = sample_index(key, rb, slot_tasks, per_slot, prioritized, alpha, beta, oldest)
    return rp.gather(rb, env_idx, off, slot_tasks, weight, length, xp=jnp)


def update_priorities(rb: rp.ReplayState, index, priorities, eps: float = 1e-6) -> rp.ReplayState:
    env_idx, col_idx = index
    # an earlier duplicate of a row is pointed out of bounds and dropped, so the later entry wins (as on the host)
    env_idx = jnp.where(rp.last_write_mask(env_idx, col_idx, xp=jnp), env_idx, rb.priority.shape[0])
    return rb._replace(priority=rb.priority.at[env_idx, col_idx].set(jnp.abs(priorities) + eps, mode="drop"))


@functools.partial(jax.jit, static_argnames=("length",))
def gather_rows(rb: rp.ReplayState, env_idx, off, slot_tasks, length: int):
    """``replay.gather`` of host-chosen root rows on the device (buffer reanalysis); weights are 1."""
    return rp.gather(rb, env_idx, off, slot_tasks, jnp.ones(env_idx.shape, jnp.float32), length, xp=jnp)


@functools.partial(jax.jit, donate_argnums=(0,))
def write_targets(rb: rp.ReplayState, env_idx, col_idx, policy, sampled) -> rp.ReplayState:
    """Overwrite the policy targets (and candidate actions) of rows ``(env_idx [N], col_idx [N])``."""
    rb = rb._replace(policy=rb.policy.at[env_idx, col_idx].set(policy))
    if rb.action.ndim == 3:
        rb = rb._replace(sampled=rb.sampled.at[env_idx, col_idx].set(sampled))
    return rb
