"""``run.precision: bfloat16`` for ScaleZero: the search and the learner compute in bf16 on bf16 copies of the float32
master weights (no matmul/convolution of the traced search, loss and gradient runs in float32: all take bf16 operands,
except that ``jax.nn.dot_product_attention``'s backward multiplies its float32 softmax probabilities, which the
library keeps in float32, with bf16 values; the gradients and the updated parameters stay float32). That it learns is tested in
tests/test_scalezero_learning.py (the multi-task CartPole suite runs in bf16 in CI)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.scalezero import replay as rp
from agents.scalezero.config import ScaleZeroConfig
from agents.scalezero.learner import init_train_state, loss_fn, update
from agents.scalezero.search import Planner
from agents.scalezero.world_model import ModelDims, WorldModel, init_params

MATMULS = ("dot_general", "conv_general_dilated")


def _matmul_dtypes(jaxpr) -> list:
    """Operand dtypes (one set per op) of every matmul/convolution in ``jaxpr`` and its sub-jaxprs."""
    found = []

    def walk(jx):
        for eqn in jx.eqns:
            if eqn.primitive.name in MATMULS:
                found.append({str(v.aval.dtype) for v in eqn.invars})
            for sub in _subs(eqn):
                walk(sub)
    walk(jaxpr.jaxpr)
    return found


def _check(ops, dtype):
    if dtype == jnp.float32:
        assert ops and all(o == {"float32"} for o in ops)
    else:  # no float32 matmul; mixed ones only where the attention backward meets its float32 softmax
        assert ops and all("bfloat16" in o for o in ops), ops
        assert sum(o == {"bfloat16"} for o in ops) > 0.8 * len(ops), ops


def _subs(eqn):
    for v in eqn.params.values():
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            if hasattr(x, "jaxpr") and hasattr(x.jaxpr, "eqns"):
                yield x.jaxpr
            elif hasattr(x, "eqns"):
                yield x


def _setup(dtype, dps=False):
    cfg = ScaleZeroConfig(latent_dim=16, mlp_encoder_hidden=16, num_layers=1, num_heads=2, num_experts=2,
                          unroll_steps=2, td_steps=2, batch_size=4, num_simulations=4, dps=dps, num_stages=2,
                          lora_rank=2)
    dims = ModelDims((4,), 2, 3, 0, max_steps=4)
    model = WorldModel(cfg, dims, dtype)
    params = init_params(model, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    b, length = 4, 4
    batch = rp.Batch(obs=rng.normal(size=(b, length, 4)).astype(np.float32),
                     action=rng.integers(0, 3, (b, length)).astype(np.int32),
                     reward=rng.normal(size=(b, length)).astype(np.float32), terminated=np.zeros((b, length), bool),
                     truncated=np.zeros((b, length), bool), policy=np.full((b, length, 3), 1 / 3, np.float32),
                     sampled=np.zeros((b, length, 1, 1), np.float32), seg=np.zeros((b, length), np.int32),
                     task=np.arange(2, dtype=np.int32), weight=np.ones((b,), np.float32))
    return cfg, dims, model, params, batch


@pytest.mark.parametrize("dtype,dps", [(jnp.bfloat16, True), (jnp.float32, False)])  # bf16 with the LoRA path
def test_search_and_learner_matmuls_run_in_the_compute_dtype(dtype, dps):
    cfg, dims, model, params, batch = _setup(dtype, dps)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))  # master weights
    stage = jnp.int32(1 if dps else 0)
    loss = jax.make_jaxpr(lambda p: jax.grad(lambda q: loss_fn(q, p, batch, stage, model, cfg)[0])(p))(params)
    _check(_matmul_dtypes(loss), dtype)
    planner = Planner(model, cfg, dims)
    obs = jnp.zeros((3, cfg.context_steps, 4))
    search = jax.make_jaxpr(lambda p: planner.run(p, jax.random.PRNGKey(0), obs,
                                                  jnp.zeros((3, cfg.context_steps), jnp.int32),
                                                  jnp.ones((3, cfg.context_steps), bool), jnp.zeros((3,), jnp.int32),
                                                  stage, 1.0, num_simulations=4))(params)
    assert all(o == {str(jnp.dtype(dtype))} for o in _matmul_dtypes(search))  # forward only: no exception
    state, _, _ = jax.eval_shape(lambda s: update(s, batch, stage, model=model, cfg=cfg), init_train_state(params, cfg))
    floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats)  # float32 master weights, target and Adam
