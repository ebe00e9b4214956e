"""Online MBTL: train only the contexts MBTL selects, one per ``train_step``, until the run's budget is spent.

This is MBTL behind the suite's Trainer contract (``omnitask train`` with ``agent: mbtl``):
  init(key) -> OnlineState; train_step(state) -> (state, metrics, env_steps of the trained source);
  evaluate(state, ...) -> {'return_mean': normalised generalised performance of the trained set, ...}.
``run.total_env_steps`` / ``mbtl.steps_per_task`` contexts get trained. Every trained source is evaluated
zero-shot on all targets and stored in a TransferStore, so a run (or an offline build sharing ``mbtl.matrix_dir``
with ``chunk_size: 1``) reuses what is already trained.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.mbtl import contexts as ctx
from agents.mbtl.config import MBTLConfig, mbtl_config_from
from agents.mbtl.jobs import Job, run_job
from agents.mbtl.matrix import TransferStore
from agents.mbtl.selector import Selector, gp_observation


class OnlineState(NamedTuple):
    """Everything an online MBTL run needs to continue (checkpointed by the run loop)."""

    order: jax.Array  # [N] int32 trained context indices in selection order, -1 = not yet
    best: jax.Array  # [N] float32 best normalised performance on every target so far
    rows: jax.Array  # [N, N] float32 normalised transfer rows of trained sources (0 for untrained)
    obs: jax.Array  # [N] float32 GP observation of the i-th trained context (selection order), 0 after
    key: jax.Array  # [2] PRNG key for the GP restarts


class MBTLTrainer:
    """Online MBTL over the experiment's context grid (see module docstring)."""

    def __init__(self, cfg: Any, run_dir: Any = None):
        self.cfg = cfg
        self.m: MBTLConfig = mbtl_config_from(cfg.mbtl)
        if self.m.perf_low is None or self.m.perf_high is None:
            raise ValueError("online MBTL needs fixed normalisation bounds: set mbtl.perf_low and mbtl.perf_high "
                             "(e.g. 0 and 500 for CartPole)")
        import envs
        self.spec = envs.spec(cfg.env.id, **dict(cfg.env.options))
        self.values, self.u = ctx.make_grid(self.spec, list(self.m.axes))  # [N, C], [N, D]
        self.n = self.values.shape[0]
        self.selector = Selector(self.u, self.m.selector)
        store_dir = Path(self.m.matrix_dir) if self.m.matrix_dir else Path(run_dir or ".") / "matrix"
        self.store = TransferStore(store_dir, cfg.env.id, self.values)

    def init(self, key: jax.Array) -> OnlineState:
        n = self.n
        return OnlineState(-jnp.ones((n,), jnp.int32), jnp.zeros((n,), jnp.float32), jnp.zeros((n, n), jnp.float32),
                           jnp.zeros((n,), jnp.float32), key)

    def _normalise(self, raw: np.ndarray) -> np.ndarray:
        lo, hi = self.m.perf_low, self.m.perf_high
        return np.clip((np.asarray(raw, np.float64) - lo) / (hi - lo), 0.0, 1.0)

    def _train_source(self, s: int) -> tuple[np.ndarray, int]:
        """Raw row [N] of source s (trained now unless stored) and its env steps."""
        seed = int(self.cfg.seed)
        if not self.store.has(s, seed):
            job = Job(self.cfg.env.id, self.values, (s,), seed, self.m.source_trainer, self.m.steps_per_task,
                      int(self.cfg.env.num_envs), self.m.eval_episodes, self.m.ppo, self.m.base_agent,
                      dict(self.m.base_config), dict(self.cfg.env.options))
            self.store.add(run_job(job))
        raw = self.store.matrix([seed])[0, s]
        return raw, self.store.env_steps(s)

    def train_step(self, state: OnlineState):
        state = OnlineState(*map(jnp.asarray, state))  # a restored checkpoint holds numpy arrays
        order = [int(i) for i in np.asarray(state.order) if i >= 0]
        if len(order) >= self.n:
            raise RuntimeError(f"online MBTL: all {self.n} contexts are trained; lower run.total_env_steps")
        key, sub = jax.random.split(state.key)
        rows = np.asarray(state.rows)
        tr = np.asarray(order, int)
        obs = np.asarray(state.obs)[:len(order)]
        s, info = self.selector.select(order, obs, np.asarray(state.best), sub,
                                       observed_rows=rows[tr] if order else None)
        raw, steps = self._train_source(s)
        row = self._normalise(raw).astype(np.float32)
        y = gp_observation(self.m.selector, row[s], float(np.asarray(state.best)[s]))
        best = np.maximum(np.asarray(state.best), row)
        new = OnlineState(state.order.at[len(order)].set(s), jnp.asarray(best), state.rows.at[s].set(row),
                          state.obs.at[len(order)].set(y), key)
        metrics = {"mbtl/selected": float(s), "mbtl/num_trained": float(len(order) + 1),
                   "mbtl/generalized_performance": float(best.mean()), "mbtl/own_performance": float(row[s])}
        if info is not None:
            metrics.update({"mbtl/beta": info.beta, "mbtl/slope": info.slope,
                            "mbtl/acquisition": float(info.score[s])})
        return new, metrics, steps

    def evaluate(self, state: OnlineState, num_episodes: int, key: jax.Array) -> dict[str, float]:
        """Generalised performance of the trained set (from the stored zero-shot evaluations)."""
        del num_episodes, key
        gen = float(np.asarray(state.best).mean())
        return {"return_mean": gen, "generalized_performance": gen,
                "num_trained": float((np.asarray(state.order) >= 0).sum())}

    def selected(self, state: OnlineState) -> list[int]:
        return [int(i) for i in np.asarray(state.order) if i >= 0]

    def close(self) -> None:
        pass
