"""``run.replay: device`` for ScaleZero: the device replay stores and gathers exactly what the host replay does, and
its jax.random sampler draws the host sampler's distribution (uniform / prioritised roots, importance weights).

What is equal and what is not: from the same collected columns both replays hold bit-identical arrays, and given
the same root rows both build bit-identical batches (one ``replay.gather``). The random streams differ (numpy
Generator vs jax.random), so the same seed does not draw the same rows; the sampler is tested against the
distribution the host sampler draws (frequencies within 5 standard deviations over 20k draws, exact weights).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.scalezero import device_replay as drp
from agents.scalezero import replay as rp

E, C, OBS, A = 4, 6, (3,), 2
ENV_TASK = np.array([0, 0, 1, 1], np.int32)


def _columns(rng, t):
    """``t`` random collection columns (one decision per env each), as the trainer writes them."""
    return [(rng.normal(size=(E,) + OBS).astype(np.float32), rng.integers(0, A, E).astype(np.int32),
             rng.normal(size=E).astype(np.float32), rng.random(E) < 0.2, rng.random(E) < 0.1,
             rng.dirichlet(np.ones(A), E).astype(np.float32), np.zeros((E, 0, 0), np.float32),
             rng.normal(size=E).astype(np.float32), rng.integers(0, 3, E).astype(np.int32)) for _ in range(t)]


def _both(blocks):
    """Host replay written column by column, device replay written block by block; priorities changed between
    blocks (the same rows and values on both) so that new rows' max priority matters."""
    rng = np.random.default_rng(0)
    host = rp.init(E, C, OBS, np.float32, A, env_task=ENV_TASK)
    dev = drp.to_device(rp.init(E, C, OBS, np.float32, A, env_task=ENV_TASK))
    for i, t in enumerate(blocks):
        cols = _columns(rng, t)
        for col in cols:
            host = rp.add(host, *col)
        dev = drp.add_block(dev, *(np.stack([c[j] for c in cols]) for j in range(len(cols[0]))))
        index = (np.array([0, 3]), np.array([(int(host.ptr) - 1) % C, 0]))
        prio = np.array([2.5 + i, 0.3], np.float32)
        rp.update_priorities(host, index, prio)
        dev = drp.update_priorities(dev, (jnp.asarray(index[0]), jnp.asarray(index[1])), jnp.asarray(prio))
    return host, dev


def test_a_row_drawn_twice_keeps_the_later_priority_on_both_replays():
    host = rp.init(E, C, OBS, np.float32, A, env_task=ENV_TASK)
    dev = drp.to_device(rp.init(E, C, OBS, np.float32, A, env_task=ENV_TASK))
    env_idx, col_idx = np.array([1, 2, 1, 1, 0]), np.array([3, 3, 3, 4, 3])  # row (1, 3) three times
    prio = np.array([5.0, 6.0, 7.0, 8.0, 9.0], np.float32)
    rp.update_priorities(host, (env_idx, col_idx), prio)
    dev = jax.jit(drp.update_priorities)(dev, (jnp.asarray(env_idx), jnp.asarray(col_idx)), jnp.asarray(prio))
    want = np.ones((E, C), np.float32)
    want[1, 3], want[2, 3], want[1, 4], want[0, 3] = 7.0, 6.0, 8.0, 9.0
    np.testing.assert_allclose(host.priority, want, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(dev.priority), host.priority)


def test_device_replay_holds_and_gathers_what_the_host_replay_does():
    host, dev = _both([4, 5])  # 9 columns into a ring of 6: wraps around
    for name, h, d in zip(rp.ReplayState._fields, host, dev):
        np.testing.assert_array_equal(np.asarray(d), np.asarray(h), err_msg=name)
    assert int(dev.size) == C and int(dev.ptr) == 9 % C
    slots = np.array([0, 1, 1], np.int32)
    for prioritized, oldest in [(False, 1.0), (True, 1.0), (False, 0.5)]:
        idx = rp.sample_index(np.random.default_rng(1), host.env_task, int(host.size), int(host.ptr), C,
                              host.priority, slots, 5, prioritized, 0.6, 0.4, oldest)
        h_batch, h_index = rp.gather(host, *idx[:2], slots, idx[2], length=4)
        d_batch, d_index = jax.jit(rp.gather, static_argnames=("length", "xp"))(dev, *idx[:2], slots, idx[2],
                                                                               length=4, xp=jnp)
        for name, h, d in zip(rp.Batch._fields, h_batch, d_batch):
            np.testing.assert_array_equal(np.asarray(d), h, err_msg=name)
        np.testing.assert_array_equal(np.asarray(d_index[1]), h_index[1])
        assert (h_batch.seg[:, 0] == 0).all() and (h_batch.seg == -1).any()  # windows past the newest row masked


def _counts(env_idx, off):
    counts = np.zeros((E, C))
    np.add.at(counts, (env_idx, off), 1)
    return counts


@pytest.mark.parametrize("prioritized,oldest", [(False, 1.0), (False, 0.5), (True, 1.0)])
def test_device_sampler_draws_the_host_samplers_distribution(prioritized, oldest):
    host, dev = _both([3, 4])  # full ring, oldest column not at 0
    n, alpha, beta = 20_000, 0.6, 0.4
    sample = jax.jit(drp.sample_index, static_argnames=("per_slot", "prioritized", "alpha", "beta", "oldest"))
    for task in (0, 1):
        env_idx, off, w = (np.asarray(x) for x in sample(jax.random.PRNGKey(task), dev, jnp.array([task]), per_slot=n,
                                                             prioritized=prioritized, alpha=alpha, beta=beta,
                                                             oldest=oldest))
        envs = np.flatnonzero(ENV_TASK == task)
        assert set(env_idx.tolist()) == set(envs.tolist())  # only the slot's task's envs
        start = (int(host.ptr) - int(host.size)) % C
        phys = (start + np.arange(C)) % C  # logical offset -> physical column
        if prioritized:  # the host's p over the task's stored rows, in logical order
            p = np.zeros((E, C))
            p[envs] = host.priority[envs][:, phys] ** alpha
            p /= p.sum()
            np.testing.assert_allclose(w, (envs.size * C * p[env_idx, off]) ** -beta
                                       / ((envs.size * C * p[env_idx, off]) ** -beta).max(), rtol=1e-5)
        else:
            p = np.zeros((E, C))
            p[np.ix_(envs, np.arange(int(C * oldest)))] = 1.0
            p /= p.sum()
            np.testing.assert_array_equal(w, 1.0)
        expected = n * p
        sd = np.sqrt(n * p * (1 - p))
        assert (np.abs(_counts(env_idx, off) - expected) <= 5 * sd + 1e-9).all(), (_counts(env_idx, off), expected)


def test_device_replay_is_refused_with_per_batch_reanalysis():
    from agents.scalezero import ScaleZeroTrainer
    from tiny_configs import CARTPOLE, SCALEZERO_TINY, experiment
    cfg = experiment("scalezero", CARTPOLE, dict(SCALEZERO_TINY, reanalyse_fraction=0.5),
                     {"out_dir": "unused", "replay": "device"})
    with pytest.raises(ValueError, match="reanalyse_fraction=0.5 .* needs run.replay=host"):
        ScaleZeroTrainer(cfg, None)
