"""``run.precision``: float32 (default) or bfloat16 compute with float32 master weights.

Under bfloat16 the network runs on bf16 copies of the parameters and bf16 float inputs, its float outputs come back
as float32, and the optimiser keeps updating the float32 parameters (the cast's gradient is the float32 gradient).
No loss scaling: bfloat16 has float32's exponent range, so small gradients do not underflow as they do in float16.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from omnitask.schema import ConfigError

PRECISIONS = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# agents whose learners honour run.precision; the others refuse anything but float32 rather than ignore it
PRECISION_AGENTS = ("ppo", "dqn", "pvn", "scalezero")


def compute_dtype(precision: str) -> Any:
    if precision not in PRECISIONS:
        raise ConfigError(f"run.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def check_precision(agent: str, precision: str) -> None:
    """Refuse an unknown ``run.precision``, and a non-float32 one for an agent that would silently ignore it."""
    compute_dtype(precision)
    if precision != "float32" and agent not in PRECISION_AGENTS:
        raise ConfigError(f"run.precision={precision} is supported only by agents {', '.join(PRECISION_AGENTS)}; "
                          f"agent {agent!r} trains in float32 (drop run.precision or set it to float32)")


def _cast_floats(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x,
                        tree)


def with_precision(apply: Callable, precision: str) -> Callable:
    """``apply(params, *inputs)`` computed in ``precision``; float outputs as float32. float32: ``apply`` itself."""
    dtype = compute_dtype(precision)
    if dtype == jnp.float32:
        return apply

    def mixed(params, *inputs, **kwargs):
        out = apply(_cast_floats(params, dtype), *_cast_floats(inputs, dtype), **kwargs)
        return _cast_floats(out, jnp.float32)

    return mixed


def precision_of(run_cfg: Any) -> str:
    """``run.precision`` (absent: float32), checked."""
    precision = str(getattr(run_cfg, "precision", "float32") or "float32")
    compute_dtype(precision)
    return precision
