"""FSDP-style ``run.mesh: {data: 2, model: 2}`` for ScaleZero on 4 forced host devices; run by tests/test_sharding.py
in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``. One update with the batch split over
``data`` and the large parameters and Adam moments split over ``model`` equals the 1-device update (float32
rounding), and a checkpoint restores into another layout (2x2 -> 1 device and -> {data: 4}, 1 device -> 2x2)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnitask.checkpoint import Checkpoints
from omnitask.mesh import MODEL, PARAMS, DataParallel, make_mesh
from sharding_cases import scalezero_batch

pytestmark = pytest.mark.skipif(jax.device_count() < 4, reason="needs XLA_FLAGS=--xla_force_host_platform_"
                                "device_count=4 (run through tests/test_sharding.py)")


def _parts():
    from agents.scalezero.config import ScaleZeroConfig
    from agents.scalezero.world_model import ModelDims, WorldModel, init_params
    cfg = ScaleZeroConfig(latent_dim=32, num_layers=1, num_heads=2, num_experts=2, mlp_encoder_hidden=32,
                          num_bins=21, support_max=10.0, head_hidden_ratio=1, expert_hidden_ratio=2, unroll_steps=3,
                          td_steps=2, num_simulations=4)
    dims = ModelDims((4,), 2, 3, 0, max_steps=5)
    model = WorldModel(cfg, dims)
    rng = np.random.default_rng(0)
    b, length = 4, cfg.unroll_steps + cfg.td_steps
    batch = scalezero_batch(rng, b, length)
    return cfg, model, init_params(model, jax.random.PRNGKey(0)), batch


def _on_model_axis(tree) -> int:
    return sum(MODEL in tuple(getattr(x.sharding, "spec", ())) for x in jax.tree.leaves(tree))


def test_fsdp_update_on_a_2x2_mesh_equals_the_one_device_update():
    from agents.scalezero.learner import init_train_state, make_update_fn
    cfg, model, params, batch = _parts()
    dp = DataParallel(make_mesh({"data": 2, "model": 2}))
    fresh = lambda: init_train_state(jax.tree.map(jnp.copy, params), cfg)  # noqa: E731 (updates donate the state)
    one = make_update_fn(model, cfg)(fresh(), batch, jnp.int32(0))
    sharded_in = dp.put(fresh(), PARAMS)
    two = make_update_fn(model, cfg, dp)(sharded_in, batch, jnp.int32(0))
    n_params = len(jax.tree.leaves(params))
    assert _on_model_axis(two[0].params) >= 4 and _on_model_axis(two[0].opt_state) >= 8  # params, mu, nu split
    assert _on_model_axis(two[0].params) < n_params  # small leaves (biases, norms) stay replicated
    np.testing.assert_allclose(one[1]["loss"], two[1]["loss"], rtol=1e-5)
    np.testing.assert_allclose(one[1]["grad_norm"], two[1]["grad_norm"], rtol=1e-4)
    mu = [jax.tree.leaves(jax.device_get(s.opt_state))[:n_params] for s in (one[0], two[0])]
    for x, y in zip(mu[0], mu[1], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-7)
    for x, y in zip(jax.tree.leaves(jax.device_get(one[0].params)), jax.tree.leaves(jax.device_get(two[0].params)),
                    strict=True):  # first Adam step ~ lr * sign(g): compared to 2 lr, as the 2-device case
        np.testing.assert_allclose(x, y, rtol=0, atol=2 * cfg.learning_rate)


def _template(state, dp):
    shard = (lambda x: dp.sharding(PARAMS, x.shape)) if dp.mesh is not None else (
        lambda x: jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=shard(x)), state)


@pytest.mark.parametrize("saved,restored", [({"data": 2, "model": 2}, {}), ({"data": 2, "model": 2}, {"data": 4}),
                                            ({}, {"data": 2, "model": 2})])
def test_checkpoint_restores_into_another_layout(tmp_path, saved, restored):
    from agents.scalezero.learner import init_train_state
    cfg, _, params, _ = _parts()
    src, dst = DataParallel(make_mesh(saved)), DataParallel(make_mesh(restored))
    state = src.put(init_train_state(jax.tree.map(lambda x: x + 0.5, params), cfg), PARAMS)
    ckpts = Checkpoints(tmp_path)
    ckpts.save(1, state, {"env_steps": 1})
    ckpts.wait()
    back, _ = ckpts.restore(_template(state, dst))
    ckpts.close()
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    expect = _template(state, dst)
    for y, t in zip(jax.tree.leaves(back), jax.tree.leaves(expect), strict=True):
        assert y.sharding.is_equivalent_to(t.sharding, y.ndim), (y.sharding, t.sharding)
    assert (_on_model_axis(back) > 0) == ("model" in restored)
