"""Traffic family: SUMO signal control / eco-driving / ring road and the JAX ring, with real SUMO processes."""
from __future__ import annotations

import logging
import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("libsumo")

import envs  # noqa: E402
from envs.traffic.controllers import FixedTimeController, MaxPressureController, run_controller  # noqa: E402


def _children() -> set[int]:
    """PIDs of this process's live (non-zombie) children."""
    me, out = os.getpid(), set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            out.add(int(name))
    return out


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (reaped) -- a zombie still has a /proc entry with state Z."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    del state  # alive (any state) or zombie (Z, not reaped): both mean not gone
    return False


def test_traffic_ids_registered():
    ids = envs.list_ids("traffic")
    for want in ("traffic/signal-1x1", "traffic/signal-2x2", "traffic/signal-3x3", "traffic/ecodrive",
                 "traffic/ring-sumo", "traffic/ring-jax"):
        assert want in ids


@pytest.mark.parametrize("env_id,context,match", [
    ("traffic/signal-1x1", {"inflow": -100.0}, r"inflow=-100 is outside its allowed range \[50, 2500\]"),
    ("traffic/signal-1x1", {"lane_length": 0.0}, r"lane_length=0 is outside its allowed range \[50, 2500\]"),
    ("traffic/signal-2x2", {"inflw": 300.0}, r"unknown context variable.*did you mean 'inflow'"),
    ("traffic/ecodrive", {"penetration": 0.0}, r"penetration=0 is outside"),
    ("traffic/ecodrive", {"green_time": 10.5}, r"green_time must be a whole number"),
    ("traffic/ring-sumo", {"ring_length": 150.0, "num_vehicles": 30.0}, r"too short for num_vehicles=30"),
    ("traffic/ring-sumo", {"num_vehicles": 21.5}, r"num_vehicles must be an integer"),
    ("traffic/ring-jax", {"ring_length": 200.0, "num_vehicles": 40.0}, r"needs >= 7.5 m per car"),
    ("traffic/ring-jax", {"hold_duration": 0.0}, r"hold_duration=0 is outside its allowed range \[0.1, 10\]"),
])
def test_invalid_contexts_refused_before_sumo_starts(env_id, context, match):
    before = _children()
    with pytest.raises(ValueError, match=match):
        envs.make(env_id, num_envs=4 if env_id.endswith("2x2") else 1, context=context)
    assert _children() == before, "no SUMO worker may start for an invalid context"


def _rollout(env, actions_seq, seed=None):
    obs, rew = [], []
    ts = env.reset(seed=seed)
    obs.append(ts.observation)
    for a in actions_seq:
        ts = env.step(a)
        obs.append(ts.observation)
        rew.append(ts.reward)
    return np.stack(obs), np.stack(rew)


def test_signal_conformance_autoreset_and_determinism():
    rng = np.random.default_rng(0)
    acts = [rng.integers(0, 4, size=2).astype(np.int32) for _ in range(24)]
    with envs.make("traffic/signal-1x1", num_envs=2, seed=7, episode_seconds=100) as env:
        assert env.spec.max_episode_steps == 20 and env.num_envs == 2
        ts = env.reset()
        envs.check_timestep(ts, env.spec, 2)
        for t, a in enumerate(acts):
            ts = env.step(a)
            envs.check_timestep(ts, env.spec, 2)
            assert not ts.terminated.any()
            if t == 19:  # time limit: truncated, same-step autoreset
                assert ts.truncated.all() and (ts.info["episode_length"] == 20).all()
                assert not np.allclose(ts.info["final_observation"], ts.observation)
            else:
                assert not ts.truncated.any()
        obs_a, rew_a = _rollout(env, acts)  # reset() without a seed: next episode seeds of the same stream
    with envs.make("traffic/signal-1x1", num_envs=2, seed=7, episode_seconds=100) as env:
        _rollout(env, acts)  # same history as the first env's first rollout + manual loop
        obs_b, rew_b = _rollout(env, acts)
        obs_c, _ = _rollout(env, acts, seed=8)  # re-seeded batch
    assert np.abs(rew_a).sum() > 0
    np.testing.assert_array_equal(obs_a, obs_b)  # same seed, same context -> same trajectory
    np.testing.assert_array_equal(rew_a, rew_b)
    assert not np.array_equal(obs_a, obs_c)  # another seed -> other random arrivals


def test_grid_has_one_agent_per_light():
    with pytest.raises(ValueError, match="num_envs must be a multiple of 4; got 6"):
        envs.make("traffic/signal-2x2", num_envs=6)
    with pytest.raises(ValueError, match="must repeat in groups of 4"):
        envs.make("traffic/signal-2x2", num_envs=4, context={"inflow": [300.0, 300.0, 300.0, 900.0]})
    with envs.make("traffic/signal-2x2", num_envs=8, seed=0, episode_seconds=50, context={"inflow": 900.0}) as env:
        assert env.num_envs == 8 and env.agents_per_sim == 4
        np.testing.assert_array_equal(env.sim_index, [0, 0, 0, 0, 1, 1, 1, 1])
        ts = env.reset()
        envs.check_timestep(ts, env.spec, 8)
        for t in range(10):
            ts = env.step(np.zeros(8, np.int32))
            envs.check_timestep(ts, env.spec, 8)
            assert ts.truncated.all() == (t == 9)  # all lights of a simulation end together
        # the lights see different traffic: per-agent observations differ within a simulation
        assert len({tuple(o) for o in ts.info["final_observation"][:4]}) > 1
        assert ts.info["queue"].sum() > 0
        with pytest.raises(ValueError, match=r"actions must have shape \(8,\)"):
            env.step(np.zeros(2, np.int32))


def test_contexts_take_effect_inflow_queue_and_short_lane_spillback():
    # one batch, one context per env: base / high inflow / short lanes (same high inflow) / long lanes / slow road
    ctx = {"inflow": [200.0, 1200.0, 1200.0, 1200.0, 200.0], "lane_length": [200.0, 200.0, 50.0, 600.0, 200.0],
           "speed_limit": [13.89, 13.89, 13.89, 13.89, 3.0]}
    with envs.make("traffic/signal-1x1", num_envs=5, seed=0, episode_seconds=400, context=ctx) as env:
        ctrl = FixedTimeController(5, green_steps=6)
        ts = env.reset()
        np.testing.assert_allclose(ts.context[:, 0], ctx["inflow"])
        queue, backlog, density = np.zeros(5), np.zeros(5), np.zeros(5)
        for _ in range(60):
            ts = env.step(ctrl.act(ts))
            queue += ts.info["queue"]
            backlog = np.maximum(backlog, ts.info["backlog"])
            density += ts.observation[:, 6:14].mean(axis=1)
    assert density[4] > 1.5 * density[0], f"a 3 m/s speed limit must fill the approaches: density {density}"
    assert queue[1] > 2 * queue[0], f"higher inflow must give longer queues: {queue}"
    assert backlog[2] > 10, f"50 m lanes at 1200 veh/h must spill back to the entries: backlog {backlog}"
    assert backlog[2] > 3 * max(backlog[3], 1.0), f"600 m lanes must hold the queues: backlog {backlog}"


def test_fixed_time_vs_max_pressure_ordering():
    with envs.make("traffic/signal-1x1", num_envs=2, seed=0, episode_seconds=600, context={"inflow": 600.0}) as env:
        fixed = run_controller(env, FixedTimeController(2, green_steps=6), 80, seed=3)
        maxp = run_controller(env, MaxPressureController(), 80, seed=3)
    assert maxp["waiting_time"] < 0.7 * fixed["waiting_time"], (fixed, maxp)
    assert maxp["queue"] < fixed["queue"] and maxp["reward"] > fixed["reward"], (fixed, maxp)


def test_killed_and_hung_workers_restart_truncate_log_and_leave_no_zombies(caplog):
    caplog.set_level(logging.WARNING, logger="envs.traffic")
    env = envs.make("traffic/ring-sumo", num_envs=2, seed=0, step_timeout_s=3.0)
    try:
        ts = env.reset()
        act = np.ones((2, 1), np.float32)
        for _ in range(3):
            ts = env.step(act)
        pids = list(env.pool.pids)
        os.kill(pids[0], signal.SIGKILL)  # a dead SUMO worker
        ts = env.step(act)
        assert ts.truncated[0] and not ts.truncated[1]
        assert ts.info["worker_restarted"][0] and ts.info["episode_length"][0] == 4
        envs.check_timestep(ts, env.spec, 2)
        assert env.restarts.tolist() == [1, 0]
        assert any("restarted" in r.getMessage() for r in caplog.records)
        os.kill(pids[1], signal.SIGSTOP)  # a hung SUMO worker: detected by the step timeout
        t0 = time.monotonic()
        ts = env.step(act)
        assert time.monotonic() - t0 < 30
        assert ts.truncated[1] and ts.info["worker_restarted"][1]
        assert env.restarts.tolist() == [1, 1]
        ts = env.step(act)  # keeps running after both restarts
        assert not ts.truncated.any()
        new_pids = list(env.pool.pids)
        assert _gone(pids[0]) and _gone(pids[1]) and set(new_pids).isdisjoint(pids)
    finally:
        env.close()
    assert all(_gone(p) for p in new_pids), "workers must be reaped on close"


def test_no_zombies_after_exception():
    pids = []
    with pytest.raises(RuntimeError, match="boom"):
        with envs.make("traffic/signal-1x1", num_envs=2, seed=0, episode_seconds=50) as env:
            env.reset()
            pids = list(env.pool.pids)
            raise RuntimeError("boom")
    assert pids and all(_gone(p) for p in pids)


def test_simulation_error_is_reported_not_retried():
    from envs.traffic.signal import SignalConfig
    from envs.traffic.worker import WorkerError, WorkerPool

    pool = WorkerPool([SignalConfig("/nonexistent/net.net.xml", "/nonexistent/routes.rou.xml")])
    try:
        with pytest.raises(WorkerError, match=r"SUMO input file /nonexistent/net.net.xml does not exist"):
            pool.reset([0])
        assert pool.restarts.tolist() == [0]  # a SUMO error is a bug/bad input: reported, not a crash to retry
        pids = list(pool.pids)
    finally:
        pool.close()
    assert all(_gone(p) for p in pids)


def test_3x3_grid_smoke():
    with envs.make("traffic/signal-3x3", num_envs=9, seed=0, episode_seconds=20) as env:
        ts = env.reset()
        assert env.num_envs == 9
        ts = env.step(np.arange(9, dtype=np.int32) % 4)
        envs.check_timestep(ts, env.spec, 9)


def test_specs_without_starting_sumo():
    before = _children()
    for env_id in envs.list_ids("traffic"):
        spec = envs.spec(env_id)
        assert spec.env_id == env_id and (spec.context_vars or env_id.startswith("traffic/resco/"))  # RESCO: none
    assert envs.spec("traffic/signal-1x1", episode_seconds=300).max_episode_steps == 60
    assert _children() == before


def test_inline_simulation_matches_worker_and_is_exclusive():
    acts = [np.array([t // 3 % 4], np.int32) for t in range(12)]
    with envs.make("traffic/signal-1x1", num_envs=1, seed=4, episode_seconds=60) as env:
        obs_w, rew_w = _rollout(env, acts)
    with envs.make("traffic/signal-1x1", num_envs=1, seed=4, episode_seconds=60, inline=True) as env:
        assert env.pool.pids == [os.getpid()]
        obs_i, rew_i = _rollout(env, acts)
        with pytest.raises(RuntimeError, match="already runs an inline SUMO simulation"):
            envs.make("traffic/ring-sumo", num_envs=1, inline=True)
    np.testing.assert_array_equal(obs_w, obs_i)  # same simulation, same numbers, with or without a worker
    np.testing.assert_array_equal(rew_w, rew_i)
    with pytest.raises(ValueError, match="exactly one simulation"):
        envs.make("traffic/signal-1x1", num_envs=2, inline=True)


@pytest.mark.parametrize("yellow_time", [2, 0])
def test_fast_signal_step_gives_the_reference_numbers(yellow_time):
    """The vectorised step (static tables, direct libsumo calls, raw-bytes worker messages) must give exactly the
    per-light reference step's observations, rewards and info, across autoresets, on a grid with 4 lights."""
    import dataclasses

    from envs.traffic.host import SumoBatchedEnv
    from envs.traffic.signal import INFO_SHAPES, SignalConfig, signal_spec

    with envs.make("traffic/signal-2x2", num_envs=4, seed=5, episode_seconds=60, yellow_time=yellow_time,
                   context={"inflow": 1500.0, "lane_length": 100.0}) as env:
        cfg = env.pool.cfgs[0]
    assert isinstance(cfg, SignalConfig) and cfg.fast
    spec = signal_spec("traffic/signal-2x2", 60, 5)
    rng = np.random.default_rng(2)
    acts = [rng.integers(0, 4, 4).astype(np.int32) for _ in range(30)]  # 2.5 episodes of 12 decisions
    runs = []
    for fast in (True, False):
        c = dataclasses.replace(cfg, fast=fast)
        with SumoBatchedEnv(spec, [c], 4, np.zeros((1, 3), np.float32), seed=5, info_shapes=INFO_SHAPES) as env:
            out = [env.reset().observation]
            for a in acts:
                ts = env.step(a)
                out += [ts.observation, ts.reward, ts.truncated, ts.info["final_observation"]]
                out += [ts.info[k] for k in sorted(INFO_SHAPES)]
            assert all(x.flags.writeable for x in (ts.observation, ts.reward, *ts.info.values()))  # caller-owned
        runs.append(out)
    assert sum(np.asarray(x).sum() for x in runs[0][2::9]) != 0  # rewards are not all zero
    for i, (a, b) in enumerate(zip(*runs)):
        np.testing.assert_array_equal(a, b, err_msg=f"entry {i}")
