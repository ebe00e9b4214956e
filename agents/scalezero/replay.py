"""Per-task game-segment replay on the host (numpy), bounded and measured.

Storage is one synchronous circular buffer of ``C`` rows per env (``[E, C, ...]``); every env runs one task, so a
task's game segments are the rows of its envs. Each row is one decision: the observation it was taken in, the
action, the reward and done flags that followed, the search policy and root value, and the env's episode counter
(``episode``), which separates episodes inside a window. Every stored row can be a sampling root (no rows are lost
to segment padding); windows that run past the newest row or into another episode are masked by the learner.

Truncated episodes: the final observation is not stored (memory); the learner bootstraps a truncation with the
value of the last stored observation of the episode (one step early) -- a small, documented bias.
Memory is fixed at construction: ``nbytes`` is reported as ``replay/bytes`` and per 100k transitions.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ReplayState(NamedTuple):
    obs: np.ndarray  # [E, C, *obs_shape] spec dtype
    action: np.ndarray  # [E, C] int32 or [E, C, A] float32
    reward: np.ndarray  # [E, C] float32 reward after the action
    terminated: np.ndarray  # [E, C] bool
    truncated: np.ndarray  # [E, C] bool
    policy: np.ndarray  # [E, C, P] float32 search policy target (P = actions, or K sampled actions)
    sampled: np.ndarray  # [E, C, K, A] float32 candidate actions (continuous) or [E, C, 1, 1] zeros (discrete;
    #                      not zero-size because checkpointers refuse empty arrays)
    root_value: np.ndarray  # [E, C] float32 search value (for priorities / diagnostics)
    priority: np.ndarray  # [E, C] float32
    episode: np.ndarray  # [E, C] int32 per-env episode counter of the row
    env_task: np.ndarray  # [E] int32 task of each env
    ptr: np.ndarray  # () int64 next write column
    size: np.ndarray  # () int64 filled columns (<= C)


class Batch(NamedTuple):
    """Training windows of ``L = unroll + td`` rows; ``B = G * M`` rows grouped by task slot."""

    obs: np.ndarray  # [B, L, *obs_shape]
    action: np.ndarray  # [B, L] or [B, L, A]
    reward: np.ndarray  # [B, L]
    terminated: np.ndarray  # [B, L]
    truncated: np.ndarray  # [B, L]
    policy: np.ndarray  # [B, L, P]
    sampled: np.ndarray  # [B, L, K, A]
    seg: np.ndarray  # [B, L] int32 episode id relative to the root row, -1 = not yet written
    task: np.ndarray  # [G] int32 task of each slot
    weight: np.ndarray  # [B] float32 importance weights (1 without prioritisation)


def rows_per_env(capacity_per_task: int, num_envs: int, num_tasks: int) -> int:
    """Columns per env so that each task keeps about ``capacity_per_task`` transitions."""
    envs_per_task = max(1, num_envs // max(1, num_tasks))
    return max(2, capacity_per_task // envs_per_task)


def init(num_envs: int, columns: int, obs_shape, obs_dtype, policy_dim: int, action_dim: int = 0,
         num_sampled: int = 0, env_task=None) -> ReplayState:
    e, c = num_envs, columns
    act = np.zeros((e, c, action_dim), np.float32) if action_dim else np.zeros((e, c), np.int32)
    k, a = (num_sampled, action_dim) if action_dim else (1, 1)
    return ReplayState(
        obs=np.zeros((e, c) + tuple(obs_shape), obs_dtype), action=act, reward=np.zeros((e, c), np.float32),
        terminated=np.zeros((e, c), bool), truncated=np.zeros((e, c), bool),
        policy=np.zeros((e, c, policy_dim), np.float32), sampled=np.zeros((e, c, k, a), np.float32),
        root_value=np.zeros((e, c), np.float32), priority=np.ones((e, c), np.float32),
        episode=np.zeros((e, c), np.int32),
        env_task=np.zeros((e,), np.int32) if env_task is None else np.asarray(env_task, np.int32),
        ptr=np.zeros((), np.int64), size=np.zeros((), np.int64))


def nbytes(rb: ReplayState) -> int:
    return int(sum(x.nbytes for x in rb))  # numpy or jax arrays: no copy of a device replay


def bytes_per_100k(rb: ReplayState) -> float:
    rows = rb.obs.shape[0] * rb.obs.shape[1]
    return nbytes(rb) / rows * 1e5


def add(rb: ReplayState, obs, action, reward, terminated, truncated, policy, sampled, root_value,
        episode) -> ReplayState:
    """Write one column (one decision per env). Arrays are ``[E, ...]``. Returns the state (mutated in place)."""
    col = int(rb.ptr)
    rb.obs[:, col] = obs
    rb.action[:, col] = action
    rb.reward[:, col] = reward
    rb.terminated[:, col] = terminated
    rb.truncated[:, col] = truncated
    rb.policy[:, col] = policy
    if rb.action.ndim == 3:  # continuous actions
        rb.sampled[:, col] = sampled
    rb.root_value[:, col] = root_value
    # new rows get the current max priority so they are seen at least once
    filled = int(rb.size)
    rb.priority[:, col] = rb.priority[:, :filled].max() if filled else 1.0
    rb.episode[:, col] = episode
    cols = rb.obs.shape[1]
    return rb._replace(ptr=np.asarray((col + 1) % cols, np.int64), size=np.asarray(min(filled + 1, cols), np.int64))


def task_sizes(rb: ReplayState, num_tasks: int) -> np.ndarray:
    """Stored transitions per task, ``[K]``."""
    counts = np.bincount(rb.env_task, minlength=num_tasks)
    return counts * int(rb.size)


def sample_index(rng: np.random.Generator, env_task: np.ndarray, size: int, ptr: int, cols: int,
                 priority: np.ndarray | None, slot_tasks: np.ndarray, per_slot: int, prioritized: bool = False,
                 alpha: float = 0.6, beta: float = 0.4, oldest: float = 1.0):
    """Root rows of ``per_slot`` windows per task slot: ``(env_idx [B], off [B] logical offset from the oldest
    stored column, weight [B] importance weight / per-slot max)``. Uniform roots lie among the ``oldest`` fraction
    of the stored rows; prioritised roots (``priority [E, C]`` ** alpha) among all."""
    if size == 0:
        raise ValueError("replay is empty: collect before sampling")
    start = (ptr - size) % cols  # physical column of the oldest row
    envs, offs, weights = [], [], []
    for task in slot_tasks:
        task_envs = np.flatnonzero(env_task == task)
        if task_envs.size == 0:
            raise ValueError(f"no env runs task {task}; tasks present: {sorted(set(env_task.tolist()))}")
        if prioritized:
            phys = (start + np.arange(size)) % cols
            p = priority[task_envs][:, phys].reshape(-1) ** alpha  # [n_env * size]
            p = p / p.sum()
            flat = rng.choice(p.size, size=per_slot, p=p)
            e_i, o_i = task_envs[flat // size], flat % size
            w = (p.size * p[flat]) ** (-beta)
        else:
            e_i = task_envs[rng.integers(0, task_envs.size, per_slot)]
            o_i = rng.integers(0, max(1, int(size * oldest)), per_slot)
            w = np.ones(per_slot)
        envs.append(e_i)
        offs.append(o_i)
        weights.append(w / w.max())
    return np.concatenate(envs), np.concatenate(offs), np.concatenate(weights).astype(np.float32)


def gather(rb: ReplayState, env_idx, off, slot_tasks, weight, length: int, xp=np):
    """The windows of ``length`` rows starting at the root rows ``(env_idx [B], off [B])``: ``(batch, (env_idx [B],
    root_col [B]))`` (physical root columns, for priority updates). ``xp``: numpy (host replay) or jax.numpy
    (device replay, inside jit) -- one gather for both, so both replays build the same batch from the same rows."""
    size, cols = rb.size, rb.obs.shape[1]
    start = (rb.ptr - size) % cols
    steps = off[:, None] + xp.arange(length)[None]  # [B, L] logical offsets
    in_range = steps < size
    cols_idx = (start + xp.minimum(steps, size - 1)) % cols  # [B, L] physical columns
    e2 = env_idx[:, None]
    ep = rb.episode[e2, cols_idx]
    seg = xp.where(in_range, ep - ep[:, :1], -1).astype(xp.int32)
    batch = Batch(obs=rb.obs[e2, cols_idx], action=rb.action[e2, cols_idx], reward=rb.reward[e2, cols_idx],
                  terminated=rb.terminated[e2, cols_idx], truncated=rb.truncated[e2, cols_idx],
                  policy=rb.policy[e2, cols_idx], sampled=rb.sampled[e2, cols_idx], seg=seg,
                  task=xp.asarray(slot_tasks, xp.int32), weight=xp.asarray(weight, xp.float32))
    return batch, (env_idx, cols_idx[:, 0])


def sample(rb: ReplayState, rng: np.random.Generator, slot_tasks: np.ndarray, per_slot: int, length: int,
           prioritized: bool = False, alpha: float = 0.6, beta: float = 0.4, oldest: float = 1.0):
    """Sample ``per_slot`` windows of ``length`` rows for each task slot (uniform roots: among the ``oldest``
    fraction of the stored rows; prioritised: among all).

    Returns ``(batch, (env_idx [B], col_idx [B]))``; the indices address the root rows for priority updates.
    """
    env_idx, off, weight = sample_index(rng, rb.env_task, int(rb.size), int(rb.ptr), rb.obs.shape[1], rb.priority,
                                        slot_tasks, per_slot, prioritized, alpha, beta, oldest)
    return gather(rb, env_idx, off, slot_tasks, weight, length)


def last_write_mask(env_idx, col_idx, xp=np):
    """[B] bool: True where no later entry of the batch names the same (env, col) row. A batch may draw one row
    twice; both replays keep the later entry's priority (NumPy's fancy assignment and XLA's scatter leave the
    winner of a repeated index unspecified)."""
    same = (env_idx[:, None] == env_idx[None, :]) & (col_idx[:, None] == col_idx[None, :])  # [B, B]
    return ~xp.triu(same, 1).any(axis=1)


def update_priorities(rb: ReplayState, index, priorities: np.ndarray, eps: float = 1e-6) -> None:
    env_idx, col_idx = np.asarray(index[0]), np.asarray(index[1])
    keep = last_write_mask(env_idx, col_idx)
    rb.priority[env_idx[keep], col_idx[keep]] = (np.abs(np.asarray(priorities)) + eps)[keep]
