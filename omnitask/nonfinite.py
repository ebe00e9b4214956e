"""Divergence detection: learners flag non-finite losses inside jit, the run loop stops (or warns) on the host.

Contract: a trainer's ``train_step`` metrics carry ``finite`` (or ``<learner>/finite`` when one trainer runs several
learners) = the fraction of the step's learner updates whose loss and gradient norm were all finite (``finite_flag``
inside the jitted update, averaged like any metric). A value below 1 is a divergence; a missing or NaN flag means
the step made no update (e.g. replay warm-up).
The run loop calls ``check(metrics, env_steps, agent, policy)`` after every ``train_step`` and before anything is
logged or saved, so with ``run.on_nonfinite: stop`` a diverged state never reaches a checkpoint.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp

FINITE_KEY = "finite"
POLICIES = ("stop", "warn")


class NonFiniteError(RuntimeError):
    """Training diverged: a loss or gradient norm became NaN/inf (the message is one line)."""


def finite_flag(*trees: Any) -> jax.Array:
    """float32 scalar: 1.0 when every element of every leaf of ``trees`` is finite, else 0.0 (jit-friendly)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(trees)]
    return jnp.all(jnp.stack(leaves)).astype(jnp.float32) if leaves else jnp.float32(1.0)


def _is_flag(name: str) -> bool:
    return name == FINITE_KEY or name.endswith("/" + FINITE_KEY)  # "finite", or per learner "dqn/finite"


def _is_loss(name: str) -> bool:
    leaf = name.rsplit("/", 1)[-1]
    return "loss" in name or leaf == "grad_norm"


def problem(metrics: Mapping[str, Any]) -> str | None:
    """``None`` when the step is fine, else a short description naming the flag and the non-finite loss values."""
    flags = {k: float(v) for k, v in metrics.items() if _is_flag(k) and not math.isnan(float(v))}
    failed = sorted(k for k, v in flags.items() if v < 1.0)
    if not failed:
        return None
    losses = {k: float(v) for k, v in metrics.items() if _is_loss(k)}
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)} or losses
    values = ", ".join(f"{k}={v:.4g}" for k, v in sorted(bad.items())[:4])
    where = ", ".join(f"{k}={flags[k]:.2f}" for k in failed)  # fraction of the step's updates that were finite
    return f"{values} ({where})" if values else where


class Watch:
    """Per-run state of the check: ``stop`` raises at the first divergence, ``warn`` reports it once."""

    def __init__(self, agent: str, policy: str = "stop"):
        if policy not in POLICIES:
            raise ValueError(f"run.on_nonfinite must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.agent, self.policy = agent, policy
        self.first: int | None = None  # env step of the first divergence (warn mode)

    def check(self, metrics: Mapping[str, Any], env_steps: int) -> str | None:
        """Raise ``NonFiniteError`` (stop) or return the one-line warning the first time (warn); else ``None``."""
        what = problem(metrics)
        if what is None:
            return None
        line = f"non-finite loss at env step {env_steps:,} (agent {self.agent}): {what}"
        if self.policy == "stop":
            raise NonFiniteError(line + "; stopped without saving this state (run.on_nonfinite=warn keeps going)")
        if self.first is None:
            self.first = env_steps
            return line + "; continuing (run.on_nonfinite=warn)"
        return None
