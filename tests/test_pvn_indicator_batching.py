"""The rnd indicator nets' two batchings (``indicators.net_batching``) compute the same scores: ``grouped`` (vmap ->
one grouped convolution per layer) and ``per_net`` (the nets one after another in one program, faster on XLA:CPU at
small batches; ``auto``, the default every other PVN test runs, picks it on CPU for batches <= 64). The stacked
parameters are the reference's: one conv stack + Dense per net, no sharing."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from agents.pvn.indicators import IndicatorConfig, make_indicators
from agents.pvn.networks import EncoderConfig


@pytest.mark.parametrize("arch, shape", [("nature", (36, 36, 4)), ("minatar", (10, 10, 4))])
def test_grouped_and_per_net_batching_give_the_same_scores(arch, shape):
    net = EncoderConfig(arch=arch, width=1, feature_dim=8, padding="VALID", pixel_scale=255.0)
    obs = np.random.default_rng(0).integers(0, 256, (16, *shape), dtype=np.uint8)
    scores = {}
    for batching in ("grouped", "per_net"):
        ind = make_indicators(IndicatorConfig(net=net, tasks_per_net=4, net_batching=batching), shape, num_tasks=10)
        state = ind.init(jax.random.PRNGKey(0))  # same key: the same 3 nets (12 outputs, the last 2 unused)
        scores[batching] = np.asarray(jax.jit(ind.scores)(state, obs))
        assert scores[batching].shape == (16, 10)
        kernels = [x for x in jax.tree.leaves(state.frozen) if x.ndim > 2]
        assert kernels and all(k.shape[0] == 3 and not np.allclose(k[0], k[1]) for k in kernels)  # own params
    np.testing.assert_allclose(scores["per_net"], scores["grouped"], rtol=1e-5, atol=1e-5)


def test_unknown_net_batching_is_refused():
    with pytest.raises(ValueError, match="net_batching 'loop' unknown; allowed: auto, grouped, per_net"):
        IndicatorConfig(net_batching="loop")
