"""The shared orthogonal initialiser under vmap: flax's numbers, computed as unbatched LAPACK QRs.

A batched QR is spread over XLA:CPU's intra-op pool by jaxlib and blocks a pool thread meanwhile; two at once on a
2-core machine deadlocked a CI run (agents/common/networks.py). Unbatched QRs run inline."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.common.networks import orthogonal


@pytest.mark.parametrize("shape", [(8, 64), (64, 64), (3, 3, 4, 32)])
def test_vmapped_orthogonal_init_is_flax_bit_for_bit_with_only_unbatched_qr(shape):
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    ours = jax.jit(jax.vmap(lambda k: orthogonal(1.0)(k, shape)))
    flax = jax.jit(jax.vmap(lambda k: nn.initializers.orthogonal(1.0)(k, shape, jnp.float32)))
    np.testing.assert_array_equal(np.asarray(ours(keys)), np.asarray(flax(keys)))
    qr_calls = [line for line in ours.lower(keys).compile().as_text().splitlines()
                if "custom-call" in line and "geqrf" in line]
    assert qr_calls, "no LAPACK QR in the compiled initialiser"
    assert all("[4," not in line.split("custom-call")[0] for line in qr_calls), qr_calls  # no batch of 4 matrices
