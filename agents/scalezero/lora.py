"""LoRA adapters for Dynamic Parameter Scaling (DPS).

A ``LoRADense`` holds a base kernel ``W0`` plus ``num_adapters`` low-rank adapters, one per curriculum stage >= 1:

    y = a_0 * (x @ W0) + sum_{j=1..stage} a_j * (alpha / r) * (x @ A_j) @ B_j + b

``A_j ~ N(0, 0.01^2)``, ``B_j = 0`` (a fresh adapter leaves the output unchanged); each ``a_j = 0.8 + 0.4 *
sigmoid(raw_j)`` is learnable and bounded in (0.8, 1.2), starting at 1.0. Adapter ``j`` only contributes once the
curriculum ``stage >= j``. All adapters exist from initialisation, so they are in the optimizer state from the start;
which ones train is decided by ``trainable_mask`` (see ``learner``), not by the module.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LORA_PARAM_NAMES = ("lora_A", "lora_B", "lora_scale")


def bounded_scale(raw: jax.Array) -> jax.Array:
    """Raw parameter -> scale in (0.8, 1.2); raw = 0 gives 1.0."""
    return 0.8 + 0.4 * jax.nn.sigmoid(raw)


def adapter_gate(stage: jax.Array, num_adapters: int) -> jax.Array:
    """``[num_adapters]`` float: 1 for adapters 1..stage, else 0."""
    return (jnp.arange(1, num_adapters + 1) <= stage).astype(jnp.float32)


class LoRAEinsum(nn.Module):
    """A (possibly expert-stacked) linear map with stage-gated LoRA adapters.

    ``prefix`` is the leading weight shape (``()`` for a plain Dense, ``(E,)`` for E stacked experts).
    Input ``x [..., *prefix_in, in]`` as given by ``spec``: ``'...i'`` for dense, ``'...ei'`` for experts.
    """

    features: int
    prefix: Sequence[int] = ()
    use_bias: bool = False
    num_adapters: int = 0
    rank: int = 8
    alpha: float = 8.0

    @nn.compact
    def __call__(self, x: jax.Array, stage: jax.Array) -> jax.Array:
        d_in = x.shape[-1]
        prefix = tuple(self.prefix)
        kernel = self.param("kernel", nn.initializers.lecun_normal(batch_axis=tuple(range(len(prefix)))),
                            prefix + (d_in, self.features))
        eq = "...ei,eio->...eo" if prefix else "...i,io->...o"
        y = jnp.einsum(eq, x, kernel)
        if self.num_adapters:
            n, r = self.num_adapters, self.rank
            a = self.param("lora_A", nn.initializers.normal(0.01), (n,) + prefix + (d_in, r))
            b = self.param("lora_B", nn.initializers.zeros, (n,) + prefix + (r, self.features))
            raw = self.param("lora_scale", nn.initializers.zeros, (n + 1,))
            scales = bounded_scale(raw)  # [n+1]
            gate = adapter_gate(stage, n).astype(scales.dtype) * scales[1:] * (self.alpha / r)  # [n] (bf16 stays)
            if prefix:
                low = jnp.einsum("...ei,neir->...ner", x, a)
                delta = jnp.einsum("...ner,nero,n->...eo", low, b, gate)
            else:
                low = jnp.einsum("...i,nir->...nr", x, a)
                delta = jnp.einsum("...nr,nro,n->...o", low, b, gate)
            y = scales[0] * y + delta
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, prefix + (self.features,))
        return y
