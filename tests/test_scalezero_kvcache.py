"""The search's key/value-cached inference equals recomputing the same function; routed-only MoE equals all-experts.

Oracle for the cache: ``WorldModel.sequence(..., window=C)`` over the whole token history (root window + the tree
path), recomputed from scratch at every step with the oracle's OWN predicted latents. Random windows: some start at
an episode start (invalid prefix), some mid-episode (all valid); the path is deeper than the window, so the ring
buffer evicts tokens.
"""
import jax
import jax.numpy as jnp
import numpy as np

from agents.scalezero.config import ScaleZeroConfig, validate
from agents.scalezero.moe import MoEFFN
from agents.scalezero.search import Planner, SearchOut, search_unsolved
from agents.scalezero.world_model import ModelDims, WorldModel, init_params

S, DEPTH, B, A = 3, 5, 6, 4
TINY = dict(latent_dim=32, num_layers=2, num_heads=2, ffn="moe", num_experts=4, expert_hidden_ratio=2,
            head_hidden_ratio=1, num_bins=21, support_max=5.0, latent_norm="layernorm", context_steps=S,
            expert_capacity_factor=4.0, dps=True, num_stages=3, unroll_steps=5)


def _model(num_tasks=2):
    cfg = ScaleZeroConfig(**TINY)
    validate(cfg)
    return cfg, WorldModel(cfg, ModelDims((5,), num_tasks, num_actions=A, max_steps=6))


def _perturb(params, key):
    """Random non-zero heads and LoRA B (init zeros them, which would make equal outputs trivial)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(tree, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


def test_kv_cached_search_steps_equal_windowed_recompute():
    cfg, model = _model()
    params = _perturb(init_params(model, jax.random.PRNGKey(0)), jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(B, S, 5)), jnp.float32)
    act = jnp.asarray(rng.integers(0, A, (B, S)), jnp.int32)
    start = np.array([0, 0, 1, 2, 0, 2])  # first valid step: 0 = mid-episode window, >0 = episode began inside
    valid = jnp.asarray(np.arange(S)[None] >= start[:, None])
    task = jnp.asarray([0, 1, 0, 1, 1, 0], jnp.int32)
    path = jnp.asarray(rng.integers(0, A, (DEPTH, B)), jnp.int32)
    stage = jnp.int32(1)  # adapter 1 active
    ap = lambda *a, method: model.apply({"params": params}, *a, method=method)
    z = jax.jit(lambda o: ap(o, method=WorldModel.encode))(obs)  # [B, S, D]

    # cached: prefill + DEPTH x (action token, latent token)
    cache, v0, p0 = jax.jit(lambda: ap(z, act, valid, task, stage, method=WorldModel.prefill))()

    @jax.jit
    def step(c, a):
        r, nz, c = ap(c, a, task, stage, method=WorldModel.step_action)
        v, p, c = ap(c, nz, task, stage, method=WorldModel.step_latent)
        return (r, nz, v, p), c

    cached = [(None, None, v0, p0)]
    for d in range(DEPTH):
        outs, cache = step(cache, path[d])
        cached.append(outs)
    assert int(cache.length[0]) == 2 * S - 1 + 2 * DEPTH > 2 * S  # the ring buffer evicted tokens

    # oracle: the whole history recomputed with a band of C = 2S tokens; trailing rows are padding (seg -1)
    n = S + DEPTH
    limit = model.search_pos_limit  # 10 < 2 * S - 1 + 2 * DEPTH: deep tokens hit the clip
    seq = jax.jit(lambda zs, acts, seg: ap(zs, acts, seg, task, stage, B, 2 * S, limit, method=WorldModel.sequence))
    zs = jnp.zeros((B, n, z.shape[-1])).at[:, :S].set(z)
    acts = jnp.zeros((B, n), jnp.int32).at[:, :S].set(act)
    live = np.zeros((B, n), bool)
    live[:, :S] = np.asarray(valid)
    seg = lambda: jnp.asarray(np.where(live, 0, -1), jnp.int32)
    out = seq(zs, acts, seg())
    oracle = [(None, None, out.value_logits[:, S - 1], out.policy[:, S - 1])]
    for d in range(DEPTH):
        last = S - 1 + d  # newest latent row
        acts = acts.at[:, last].set(path[d])
        out = seq(zs, acts, seg())
        r, nz = out.reward_logits[:, last], out.next_latent[:, last]
        zs = zs.at[:, last + 1].set(nz)
        live[:, last + 1] = True
        out = seq(zs, acts, seg())
        oracle.append((r, nz, out.value_logits[:, last + 1], out.policy[:, last + 1]))

    names = ("reward", "next_latent", "value", "policy")
    for d, (got, want) in enumerate(zip(cached, oracle)):
        for name, g, w in zip(names, got, want):
            if g is not None:
                np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-4, atol=2e-4,
                                           err_msg=f"{name} at depth {d}")
    # the band matters: a full-history recompute (no window) differs once tokens are evicted
    full = jax.jit(lambda: ap(zs, acts, seg(), task, stage, B, 0, limit, method=WorldModel.sequence))()
    assert not np.allclose(np.asarray(full.value_logits[:, S - 1 + DEPTH]), np.asarray(cached[-1][2]), atol=1e-3)


def test_cached_and_recompute_planners_agree_at_the_root_and_its_children():
    """Root and first recurrent step of both planners. When every window begins at an episode start inside it, the
    recompute path's shift drops only padding, so both compute the same function (full windows differ by design
    from depth 1 on: see the search module docstring)."""
    cfg, model = _model(num_tasks=1)
    params = _perturb(init_params(model, jax.random.PRNGKey(2)), jax.random.PRNGKey(3))
    rng = np.random.default_rng(1)
    obs = jnp.asarray(rng.normal(size=(B, S, 5)), jnp.float32)
    act = jnp.asarray(rng.integers(0, A, (B, S)), jnp.int32)
    valid = jnp.asarray(np.arange(S)[None] >= np.array([1, 2, 2, 1, 1, 2])[:, None])  # episode began inside
    task, action = jnp.zeros((B,), jnp.int32), jnp.asarray(rng.integers(0, A, B), jnp.int32)
    outs = []
    for kv in (True, False):
        planner = Planner(model, cfg, model.dims, kv_cache=kv)

        @jax.jit
        def root_and_child(p):
            root = planner.root(p, jax.random.PRNGKey(0), obs, act, valid, task, jnp.int32(0))
            rec, _ = planner.recurrent((p, jnp.int32(0)), jax.random.PRNGKey(1), action, root.embedding)
            return root.prior_logits, root.value, rec.reward, rec.prior_logits, rec.value

        outs.append(root_and_child(params))
    for name, got, want in zip(("root prior", "root value", "reward", "child prior", "child value"), *outs):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-4, atol=2e-4, err_msg=name)


def test_routed_only_moe_equals_all_experts_when_nothing_is_dropped():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 30, 16))  # 120 tokens
    oracle = MoEFFN(num_experts=4, hidden=24, num_adapters=2, rank=4, capacity_factor=0.0)
    params = _perturb(jax.jit(oracle.init)(jax.random.PRNGKey(1), x, jnp.int32(0)), jax.random.PRNGKey(2))
    y0, aux0 = jax.jit(oracle.apply)(params, x, jnp.int32(2))
    roomy = MoEFFN(num_experts=4, hidden=24, num_adapters=2, rank=4, capacity_factor=4.0)  # capacity = all tokens
    y1, aux1 = jax.jit(roomy.apply)(params, x, jnp.int32(2))
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y0), rtol=1e-5, atol=1e-5)
    assert float(aux1["dropped"]) == 0.0
    np.testing.assert_allclose(aux1["load"], aux0["load"])
    # gradients agree too (router and experts)
    g = lambda m: jax.jit(jax.grad(lambda p: jnp.sum(m.apply(p, x, jnp.int32(2))[0] ** 2)))(params)
    for a, b in zip(jax.tree_util.tree_leaves(g(roomy)), jax.tree_util.tree_leaves(g(oracle))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    # a tight capacity drops tokens: they keep only the shared expert, and the fraction is reported
    tight = MoEFFN(num_experts=4, hidden=24, num_adapters=2, rank=4, capacity_factor=0.5)
    _, aux2 = jax.jit(tight.apply)(params, x, jnp.int32(2))
    load = np.asarray(aux0["load"])
    expected = np.sum(np.maximum(load * 120 - 15, 0)) / 120  # capacity = ceil(0.5 * 120 / 4) = 15
    np.testing.assert_allclose(float(aux2["dropped"]), expected, atol=1e-6)


def test_search_unsolved_searches_only_active_envs():
    calls = []

    def fake_search(params, key, obs, act, valid, task, stage, train, *, num_simulations):
        calls.append(np.asarray(task))
        n = task.shape[0]
        return SearchOut(np.full(n, 2, np.int32), np.full(n, 2, np.int32), np.tile([0.0, 0.0, 1.0], (n, 1)),
                         np.zeros((n, 0, 0)), np.full(n, 5.0), np.full(n, 4.0))

    e = 6
    task = np.array([0, 0, 1, 1, 2, 2], np.int32)
    active = np.isin(task, [1])  # tasks 0 and 2 solved
    obs, act, valid = np.zeros((e, S, 5)), np.zeros((e, S), np.int32), np.ones((e, S), bool)
    out = search_unsolved(fake_search, active, np.random.default_rng(0), None, None, obs, act, valid, task, 0, 1.0,
                          num_simulations=4, num_actions=3)
    assert len(calls) == 1 and calls[0].tolist() == [1, 1]  # solved tasks' envs are not searched at all
    np.testing.assert_array_equal(out.action[active], [2, 2])
    np.testing.assert_array_equal(out.root_value, [0, 0, 5, 5, 0, 0])
    np.testing.assert_allclose(out.policy_target[~active], 1 / 3)
    assert set(out.action[~active].tolist()) <= {0, 1, 2}
    search_unsolved(fake_search, np.zeros(e, bool), np.random.default_rng(0), None, None, obs, act, valid, task, 0,
                    1.0, num_simulations=4, num_actions=3)
    assert len(calls) == 1  # everything solved: no search
