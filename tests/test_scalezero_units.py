"""ScaleZero unit tests on hand-computed arrays: transforms, MoE, LoRA/DPS freezing, curriculum, targets, replay."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.scalezero import curriculum as cur
from agents.scalezero import replay as rp
from agents.scalezero.config import ScaleZeroConfig, validate
from agents.scalezero.learner import (absorbing_rows, bootstrap_values, bootstrap_windows, init_train_state, loss_fn,
                                      trainable_mask, update)
from agents.scalezero.losses import n_step_targets
from agents.scalezero.moe import MoEFFN
from agents.scalezero.transforms import h, h_inv, logits_to_value, scalar_to_two_hot, two_hot_to_scalar, value_to_target
from agents.scalezero.world_model import ModelDims, WorldModel, init_params

TINY = dict(latent_dim=16, num_layers=1, num_heads=2, num_experts=4, mlp_encoder_hidden=16, num_bins=21,
            support_max=10.0, head_hidden_ratio=1, expert_hidden_ratio=2, unroll_steps=3, td_steps=2,
            lora_rank=2, lora_alpha=2.0, num_stages=3)


def test_h_and_inverse_invert():
    x = jnp.array([-1e4, -300.0, -1.0, -1e-3, 0.0, 0.5, 7.0, 123.4, 5e4])
    np.testing.assert_allclose(h_inv(h(x)), x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(h(jnp.array([3.0])), [1.0 + 0.003], rtol=1e-6)  # sqrt(4)-1 + 0.001*3


def test_two_hot_round_trip_and_clipping():
    y = jnp.array([-10.0, -3.3, 0.0, 0.25, 4.999, 10.0])
    probs = scalar_to_two_hot(y, 21, 10.0)
    assert probs.shape == (6, 21)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(two_hot_to_scalar(probs, 10.0), y, atol=1e-5)
    assert int((probs[3] > 0).sum()) == 2  # 0.25 lies between bins 0 and 1
    np.testing.assert_allclose(two_hot_to_scalar(scalar_to_two_hot(jnp.array([99.0]), 21, 10.0), 10.0), [10.0])
    raw = jnp.array([-40.0, 2.0, 77.0])
    np.testing.assert_allclose(h_inv(two_hot_to_scalar(value_to_target(raw, 101, 50.0), 50.0)), raw, rtol=1e-3)
    with pytest.raises(ValueError, match="odd"):
        scalar_to_two_hot(y, 20, 10.0) if False else __import__("agents.scalezero.transforms").scalezero.transforms \
            .support(20, 10.0)


def test_moe_shapes_every_expert_reachable_and_router_gets_gradient():
    moe = MoEFFN(num_experts=4, hidden=32)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 50, 16))
    params = jax.jit(moe.init)(jax.random.PRNGKey(1), x, jnp.int32(0))
    apply = jax.jit(moe.apply)
    y, aux = apply(params, x, jnp.int32(0))
    assert y.shape == x.shape and aux["load"].shape == (4,)
    np.testing.assert_allclose(aux["load"].sum(), 1.0, atol=1e-6)
    assert (aux["load"] > 0).all(), f"some expert never chosen: {aux['load']}"
    grads = jax.jit(jax.grad(lambda p: jnp.sum(moe.apply(p, x, jnp.int32(0))[0] ** 2)))(params)
    router_grad = grads["params"]["router"]["kernel"]
    assert float(jnp.abs(router_grad).sum()) > 1e-6, "router receives no gradient (reference top-1 pitfall)"
    # every expert can be reached: forcing the router towards expert e routes all tokens there
    for e in range(4):
        p = jax.tree_util.tree_map(lambda a: a, params)
        xs = jnp.ones((1, 1, 16))
        p["params"]["router"]["kernel"] = jnp.zeros((16, 4)).at[:, e].set(1.0)
        _, a = apply(p, jnp.broadcast_to(xs, x.shape), jnp.int32(0))
        assert float(a["load"][e]) == 1.0


def _tiny_model(dps=True, continuous=False, num_tasks=2, **extra):
    cfg = ScaleZeroConfig(dps=dps, **{**TINY, **extra})
    validate(cfg)
    dims = ModelDims((4,), num_tasks, 0 if continuous else 3, 2 if continuous else 0, max_steps=5)
    return cfg, WorldModel(cfg, dims)


def _runner(model, obs, actions):
    """One compiled forward ``(params, stage) -> SeqOut`` for fixed inputs."""
    b, s = obs.shape[:2]
    fn = jax.jit(lambda p, st: model.apply({"params": p}, obs, actions, jnp.zeros((b, s), jnp.int32),
                                           jnp.zeros((b,), jnp.int32), st))
    return lambda params, stage: fn(params, jnp.int32(stage))


def test_fresh_lora_adapter_leaves_outputs_unchanged():
    cfg, model = _tiny_model()
    params = init_params(model, jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4))
    act = jnp.array([[0, 1, 2, 0], [2, 2, 1, 0]])
    # give the base weights non-trivial values, adapters fresh (B = 0, scales 1)
    run = _runner(model, obs, act)
    out0 = run(params, 0)
    for stage in (1, 2):
        out = run(params, stage)
        np.testing.assert_allclose(out.next_latent, out0.next_latent, atol=1e-6)
        np.testing.assert_allclose(out.value_logits, out0.value_logits, atol=1e-6)
    # a non-zero adapter changes outputs only once its stage is active
    blk = params["transformer"]["block0"]["attn"]["q"]
    blk["lora_B"] = blk["lora_B"].at[1].set(1.0)  # adapter 2
    tweaked = run(params, 1)
    np.testing.assert_allclose(tweaked.next_latent, out0.next_latent, atol=1e-6)
    assert not np.allclose(run(params, 2).next_latent, out0.next_latent, atol=1e-4)


def _batch(model, cfg, b=4, seed=0):
    rng = np.random.default_rng(seed)
    length = cfg.unroll_steps + cfg.td_steps
    return rp.Batch(obs=rng.normal(size=(b, length, 4)).astype(np.float32),
                    action=rng.integers(0, 3, (b, length)).astype(np.int32),
                    reward=rng.normal(size=(b, length)).astype(np.float32),
                    terminated=np.zeros((b, length), bool), truncated=np.zeros((b, length), bool),
                    policy=np.tile(np.array([0.7, 0.2, 0.1], np.float32), (b, length, 1)), sampled=np.zeros((b, length, 0, 0), np.float32),
                    seg=np.zeros((b, length), np.int32), task=np.array([0, 1], np.int32),
                    weight=np.ones((b,), np.float32))


def _changed(a, b):
    return jax.tree_util.tree_map(lambda x, y: np.asarray(jnp.abs(x - y) > 0), a, b)


def test_after_stage_switch_only_current_adapter_and_kept_parts_change():
    cfg, model = _tiny_model()
    params = init_params(model, jax.random.PRNGKey(0))
    state = init_train_state(params, cfg)
    batch = _batch(model, cfg)
    # adapters are in the optimizer state from the start
    mu = state.opt_state[1][0].mu
    assert mu["transformer"]["block0"]["attn"]["q"]["lora_A"].shape == (2, 16, 2)
    step = jax.jit(lambda s, b, st: update(s, b, st, model=model, cfg=cfg))
    s0, _, _ = step(state, batch, jnp.int32(0))
    ch0 = _changed(state.params, s0.params)
    assert not ch0["transformer"]["block0"]["attn"]["q"]["lora_A"].any(), "stage 0 must not train adapters"
    assert ch0["transformer"]["block0"]["attn"]["q"]["kernel"].any()
    s1, _, _ = step(s0, batch, jnp.int32(1))  # stage 1: backbone frozen, adapter 1 (slice 0) trains
    s1, _, _ = step(s1, batch, jnp.int32(1))
    ch = _changed(s0.params, s1.params)
    blk = ch["transformer"]["block0"]
    for leaf in ("q", "k", "v", "proj"):
        assert not blk["attn"][leaf]["kernel"].any() and not blk["attn"][leaf]["bias"].any()
        assert blk["attn"][leaf]["lora_A"][0].any() or blk["attn"][leaf]["lora_B"][0].any()
        assert not blk["attn"][leaf]["lora_A"][1].any() and not blk["attn"][leaf]["lora_B"][1].any()
        # LightZero's rule: at stage s, a_0 and the EARLIER adapters' scales a_j (j < s) train, a_s does not
        assert blk["attn"][leaf]["lora_scale"].tolist() == [True, False, False]
    for leaf in ("w1", "w2", "w3"):
        assert not blk["moe"]["experts"][leaf]["kernel"].any()
        assert blk["moe"]["experts"][leaf]["lora_B"][0].any()
        assert not blk["moe"]["experts"][leaf]["lora_B"][1].any()
    assert not blk["moe"]["router"]["kernel"].any()
    assert not any(np.any(x) for x in jax.tree_util.tree_leaves(blk["moe"]["shared"]))
    assert not any(np.any(x) for x in jax.tree_util.tree_leaves(blk["ln1"]))
    s2, _, _ = step(s1, batch, jnp.int32(2))  # stage 2: adapter 2 trains, a_1 can now be re-weighted
    s2, _, _ = step(s2, batch, jnp.int32(2))
    ch2 = _changed(s1.params, s2.params)["transformer"]["block0"]
    for leaf in ("q", "k", "v", "proj"):
        assert ch2["attn"][leaf]["lora_scale"].tolist() == [True, True, False]
        assert not ch2["attn"][leaf]["lora_A"][0].any() and not ch2["attn"][leaf]["lora_B"][0].any()
        assert ch2["attn"][leaf]["lora_B"][1].any()
    # encoder, embeddings and heads stay trainable
    assert ch["encoder"]["out"]["kernel"].any()
    assert ch["value_head"]["w2"].any() and ch["policy_head"]["w2"].any()
    assert ch["action_embed"]["embedding"].any()


def test_every_position_the_target_network_reads_is_trained():
    """Bootstrap values read only positional rows that the online loss trains (unroll 3 + td 2 = 5 rows)."""
    cfg, model = _tiny_model(dps=False)
    params = init_params(model, jax.random.PRNGKey(0))
    leaves, tree = jax.tree_util.tree_flatten(params)  # heads start at zero: perturb so every path carries gradient
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = tree.unflatten([x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    batch = _batch(model, cfg)
    stage = jnp.int32(0)
    online = jax.jit(jax.grad(lambda p: loss_fn(p, params, batch, stage, model, cfg)[0]))(params)["pos_embed"]

    def boot_sum(tp):
        tz = model.apply({"params": tp}, batch.obs, method=WorldModel.encode)
        return jnp.sum(bootstrap_values(tp, tz, batch, stage, model, cfg))

    target = jax.jit(jax.grad(boot_sum))(params)["pos_embed"]
    trained = np.abs(np.asarray(online)).sum(-1) > 0  # [2 * max_steps]
    read = np.abs(np.asarray(target)).sum(-1) > 0
    assert read.any() and trained.any()
    assert not (read & ~trained).any(), f"target reads untrained positions {np.flatnonzero(read & ~trained)}"
    assert bootstrap_windows(15, 10, 5) == [(5, 10), (0, 5)] and bootstrap_windows(5, 3, 2) == [(2, 3), (0, 2)]
    assert bootstrap_windows(7, 2, 5) == [(5, 2), (0, 2), (2, 2), (4, 1)] and bootstrap_windows(4, 4, 0) == [(0, 4)]


def test_bootstraps_come_from_the_window_starting_at_td_as_the_reference():
    """Rows td..L-1 are valued by one target pass over the window starting at row td (LightZero's bootstrap
    window); rows before td (truncation bootstraps) by the window starting at row 0 (causal: its first rows equal
    those of any longer window from row 0)."""
    cfg, model = _tiny_model(dps=False)
    params = init_params(model, jax.random.PRNGKey(0))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params = tree.unflatten([x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    batch = _batch(model, cfg)
    stage, td, t = jnp.int32(0), cfg.td_steps, cfg.unroll_steps
    tz = model.apply({"params": params}, batch.obs, method=WorldModel.encode)
    got = np.asarray(jax.jit(lambda p, z: bootstrap_values(p, z, batch, stage, model, cfg))(params, tz))

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def window(a, n):
        out = model.apply({"params": params}, tz[:, a:a + n], batch.action[:, a:a + n], batch.seg[:, a:a + n],
                          batch.task, stage, batch.task.shape[0], method=WorldModel.sequence)
        return logits_to_value(out.value_logits, cfg.support_max)

    np.testing.assert_allclose(got[:, td:], np.asarray(window(td, t)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[:, :td], np.asarray(window(0, t))[:, :td], rtol=1e-5, atol=1e-5)


def test_trainable_mask_without_dps_freezes_nothing_but_adapters():
    cfg, model = _tiny_model(dps=False)
    params = jax.eval_shape(lambda k: init_params(model, k), jax.random.PRNGKey(0))  # shapes suffice
    mask = trainable_mask(params, jnp.int32(3), dps=False)
    assert all(float(m.min()) == 1.0 for m in jax.tree_util.tree_leaves(mask))  # no adapters exist w/o DPS


def test_curriculum_switch_rule_on_scripted_sequences():
    targets = np.array([10.0, 10.0, 10.0, 10.0])
    kw = dict(num_stages=3, min_stage0_iters=100, max_stage_iters=50)
    cs = cur.init(4)
    # stage 0: never before 100 updates even if tasks get solved
    cs = cur.step(cs, 50, np.array([11, 12, np.nan, 0]), targets, **kw)
    assert int(cs.stage) == 0 and cs.solved.tolist() == [True, True, False, False]
    # at 100 updates: newly solved (2) >= ceil(4 unsolved at start / 2 adapters left) = 2 -> switch
    cs = cur.step(cs, 100, np.array([11, 12, 0, 0]), targets, **kw)
    assert int(cs.stage) == 1 and int(cs.unsolved_at_start) == 2 and int(cs.stage_start) == 100
    # stage 1: need ceil(2 / 1) = 2 newly solved; one is not enough, before max_stage_iters
    cs = cur.step(cs, 120, np.array([11, 12, 15, 0]), targets, **kw)
    assert int(cs.stage) == 1
    # max_stage_iters passed -> switch even without enough solved tasks
    cs = cur.step(cs, 150, np.array([11, 12, 15, 0]), targets, **kw)
    assert int(cs.stage) == 2
    # last stage: never switches again; solved stays solved even if a return drops
    cs = cur.step(cs, 10_000, np.array([0, 0, 0, 0]), targets, **kw)
    assert int(cs.stage) == 2 and cs.solved.tolist() == [True, True, True, False]
    # stage 0 with nothing solved ends exactly at the time-out
    cs = cur.init(4)
    cs = cur.step(cs, 99, np.zeros(4), targets, num_stages=5, min_stage0_iters=100, max_stage_iters=20)
    assert int(cs.stage) == 0
    cs = cur.step(cs, 100, np.zeros(4), targets, num_stages=5, min_stage0_iters=100, max_stage_iters=20)
    assert int(cs.stage) == 1


def test_n_step_targets_hand_computed():
    g = 0.5
    reward = jnp.array([[1.0, 2.0, 4.0, 8.0, 16.0]])
    boot = jnp.array([[100.0, 200.0, 300.0, 400.0, 500.0]])
    f = jnp.zeros((1, 5), bool)
    valid = jnp.ones((1, 5), bool)
    tv, ok = n_step_targets(reward, f, f, valid, valid, boot, g, 2, 3)
    np.testing.assert_allclose(tv, [[1 + 0.5 * 2 + 0.25 * 300, 2 + 0.5 * 4 + 0.25 * 400, 4 + 0.5 * 8 + 0.25 * 500]])
    assert ok.all()
    term = f.at[0, 1].set(True)  # episode terminates after row 1: no bootstrap, later rows in another episode
    seg_valid = jnp.array([[True, True, False, False, False]])
    tv, ok = n_step_targets(reward, term, f, seg_valid, valid, boot, g, 2, 3)
    np.testing.assert_allclose(tv[0, :2], [1 + 0.5 * 2, 2])
    trunc = f.at[0, 1].set(True)  # truncation bootstraps from the last stored observation (row 1)
    tv, _ = n_step_targets(reward, f, trunc, seg_valid, valid, boot, g, 2, 2)
    np.testing.assert_allclose(tv[0], [1 + 0.5 * 2 + 0.25 * 200, 2 + 0.5 * 200])
    in_range = jnp.array([[True, True, True, False, False]])  # rows 3.. not written yet
    tv, ok = n_step_targets(reward, f, f, in_range, in_range, boot, g, 2, 3)
    assert ok.tolist() == [[True, False, False]]


def test_replay_windows_masks_and_memory_bound():
    rb = rp.init(num_envs=4, columns=6, obs_shape=(2,), obs_dtype=np.float32, policy_dim=3,
                 env_task=[0, 0, 1, 1])
    before = rp.nbytes(rb)
    episode = np.zeros(4, np.int32)
    for t in range(9):  # wraps around the 6 columns
        done = np.array([t == 4, False, False, False])
        rb = rp.add(rb, np.full((4, 2), t, np.float32), np.full(4, t % 3), np.full(4, float(t)), done,
                    np.zeros(4, bool), np.full((4, 3), 1 / 3), np.zeros((4, 0, 0)), np.zeros(4), episode)
        episode = episode + done
    assert rp.nbytes(rb) == before, "replay memory must not grow"
    assert int(rb.size) == 6 and rp.task_sizes(rb, 2).tolist() == [12, 12]
    batch, (env_idx, _) = rp.sample(rb, np.random.default_rng(0), np.array([0, 1]), 64, 4)
    assert batch.obs.shape == (128, 4, 2) and batch.task.tolist() == [0, 1]
    assert set(env_idx[:64]) <= {0, 1} and set(env_idx[64:]) <= {2, 3}
    # rows are consecutive time steps (oldest kept = t=3); past the newest row seg = -1
    first = batch.obs[:, 0, 0]
    assert first.min() == 3 and first.max() == 8
    for i in range(128):
        n_ok = min(4, 9 - int(first[i]))
        np.testing.assert_array_equal(batch.obs[i, :n_ok, 0], first[i] + np.arange(n_ok))
        assert (batch.seg[i, n_ok:] == -1).all()
        if env_idx[i] == 0 and first[i] <= 4:  # env 0 ended an episode at t=4
            assert batch.seg[i, 4 - int(first[i])] == 0 and (batch.seg[i, 5 - int(first[i]):n_ok] == 1).all()
    assert rp.bytes_per_100k(rb) > 0
    with pytest.raises(ValueError, match="no env runs task 5"):
        rp.sample(rb, np.random.default_rng(0), np.array([5]), 2, 4)


def test_config_refuses_bad_values():
    for field, value, msg in (("ffn", "sparse", "allowed: moe, dense"), ("search", "alphazero", "gumbel_muzero"),
                              ("latent_dim", 30, "divisible")):
        with pytest.raises(ValueError, match=msg):
            validate(dataclasses.replace(ScaleZeroConfig(), **{field: value}))


def test_prioritised_sampling_follows_priorities():
    rb = rp.init(num_envs=2, columns=10, obs_shape=(1,), obs_dtype=np.float32, policy_dim=2, env_task=[0, 0])
    for t in range(10):
        rb = rp.add(rb, np.full((2, 1), t, np.float32), np.zeros(2), np.zeros(2), np.zeros(2, bool),
                    np.zeros(2, bool), np.full((2, 2), 0.5), np.zeros((2, 0, 0)), np.zeros(2), np.zeros(2, np.int32))
    rp.update_priorities(rb, (np.array([0]), np.array([3])), np.array([100.0]))  # one row 100x the rest
    batch, (env_idx, col_idx) = rp.sample(rb, np.random.default_rng(0), np.array([0]), 400, 2, prioritized=True,
                                          alpha=1.0, beta=0.4)
    hot = (env_idx == 0) & (col_idx == 3)
    assert 0.7 < hot.mean() < 0.95  # p = 100 / (100 + 19)
    assert batch.weight[hot].max() < batch.weight[~hot].min()  # importance weights correct the bias
    assert batch.weight.max() == 1.0


def test_absorbing_terminal_trains_zero_value_and_reward_after_a_termination():
    """absorbing_terminal: unroll rows after a termination in the root's episode continue its sequence (the root's
    context, as the search reads it) with value and reward targets 0 (MuZero's absorbing states). Checked exactly on
    a batch whose episodes terminate at row 0 (an Atari life loss) and whose next episodes pay +3 per step: the
    loss's value and reward terms equal the cross-entropies against targets [3, 0, 0]. Without the option those
    rows are masked: the model is never told what follows a terminal step."""
    t = np.array([[0, 1, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0]], bool)
    in_ep = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    written = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(np.asarray(absorbing_rows(t, in_ep, written)),
                                  [[0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 1, 1]])
    cfg_on, model = _tiny_model(dps=False, absorbing_terminal=True)
    cfg_off, _ = _tiny_model(dps=False)
    batch = _batch(model, cfg_on)
    length = batch.seg.shape[1]
    batch = batch._replace(terminated=np.eye(1, length, 0, dtype=bool).repeat(4, 0),  # root episodes end at row 0
                           seg=np.minimum(np.arange(length), 1)[None].repeat(4, 0).astype(np.int32),
                           reward=np.full((4, length), 3.0, np.float32))
    params = init_params(model, jax.random.PRNGKey(0))
    leaves, tree = jax.tree_util.tree_flatten(params)  # heads start at zero (uniform logits): perturb
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = tree.unflatten([x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    stage = jnp.int32(0)
    terms = lambda c: jax.jit(lambda p: loss_fn(p, p, batch, stage, model, c)[1]["terms"])(params)
    on, off = terms(cfg_on), terms(cfg_off)
    z = model.apply({"params": params}, batch.obs[:, :3], method=WorldModel.encode)
    out = model.apply({"params": params}, z, batch.action[:, :3], np.zeros((4, 3), np.int32), batch.task, stage, 2,
                      method=WorldModel.sequence)  # the whole unroll in the root's context
    target = jnp.broadcast_to(jnp.array([3.0, 0.0, 0.0]), (4, 3))
    ce = lambda logits, y: -jnp.sum(value_to_target(y, cfg_on.num_bins, cfg_on.support_max)
                                    * jax.nn.log_softmax(logits, -1), -1)  # [B, 3]
    np.testing.assert_allclose(on["value"], jnp.mean(ce(out.value_logits, target)), rtol=1e-5)
    np.testing.assert_allclose(on["reward"], jnp.mean(ce(out.reward_logits, target)), rtol=1e-5)
    np.testing.assert_allclose(off["value"], jnp.mean(ce(out.value_logits, target)[:, 0]), rtol=1e-5)  # row 0 only


def test_inverse_dynamics_loss_is_off_by_default_and_trains_the_encoder_when_on():
    """scalezero.w_inverse: 0 (default) adds no parameters and no loss term; > 0 adds the head, a loss term equal to
    the CE of inverse(z_t, z_t+1) against a_t over rows whose next frame is in the episode (row 1 of sequence 0 is
    cut by a termination), and its gradient reaches the encoder."""
    _, model_off = _tiny_model(dps=False)
    cfg, model = _tiny_model(dps=False, w_inverse=1.0)
    assert not any("inverse" in k for k in init_params(model_off, jax.random.PRNGKey(0)))
    params = init_params(model, jax.random.PRNGKey(0))
    assert {"inverse_hidden", "inverse_out"} <= set(params)
    batch = _batch(model, cfg)
    batch = batch._replace(terminated=batch.terminated.copy(), seg=batch.seg.copy())
    batch.terminated[0, 1] = True
    batch.seg[0, 2:] = 1  # the next episode starts after the termination
    stage = jnp.int32(0)
    terms = jax.jit(lambda p: loss_fn(p, p, batch, stage, model, cfg)[1]["terms"])(params)  # jit: eager is slow
    z = model.apply({"params": params}, batch.obs[:, :4], method=WorldModel.encode)  # [B, T+1, D]
    logits = model.apply({"params": params}, z[:, :3], z[:, 1:], method=WorldModel.inverse)  # [B, T, A]
    ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), batch.action[:, :3, None], -1)[..., 0]
    mask = np.ones((4, 3), bool)
    mask[0, 1:] = False  # the termination at row 1 cuts rows 1.. of sequence 0 (next frame in another episode)
    np.testing.assert_allclose(terms["inverse"], jnp.sum(ce * mask) / mask.sum(), rtol=1e-5)
    only_inverse = dataclasses.replace(cfg, w_latent=0.0, w_reward=0.0, w_value=0.0, w_policy=0.0, w_entropy=0.0,
                                       load_balance_coef=0.0)
    grads = jax.jit(jax.grad(lambda p: loss_fn(p, p, batch, stage, model, only_inverse)[0]))(params)
    norm = lambda tree: float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree_util.tree_leaves(tree)))
    assert norm(grads["encoder"]) > 0 and norm(grads["inverse_out"]) > 0
    assert norm(grads["transformer"]) == 0.0  # the inverse head reads the encoder's latents only
