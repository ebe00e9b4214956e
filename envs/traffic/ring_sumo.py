"""``traffic/ring-sumo``: the ring road (see ``envs.traffic.ring``) simulated by SUMO's IDM in a worker process."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from envs.traffic import ring as R
from envs.traffic.netgen import RingParams, require_files, ring_edges, ring_scenario
from envs.traffic.session import LibsumoSession

VTYPE = "idm"


def _vtype_xml() -> str:
    p = R.IDM
    return (f'<additional>\n  <vType id="{VTYPE}" carFollowModel="IDM" accel="{p.a}" decel="{p.b}" tau="{p.T}" '
            f'delta="{p.delta}" minGap="{p.s0}" length="{p.length}" maxSpeed="{p.v0}" emergencyDecel='
            f'"{p.emergency_decel}" speedFactor="1" speedDev="0" sigma="0" stepping="0.25"/>\n</additional>\n')


@dataclasses.dataclass(frozen=True)
class RingSumoConfig:
    """One SUMO ring simulation (picklable; ``build()`` runs inside the worker)."""

    net_file: str
    add_file: str  # vType definition
    ring_length: float  # m
    num_vehicles: int
    hold_steps: int  # 0.1 s simulation steps per agent step
    horizon: float = R.DEFAULT_HORIZON  # s per episode

    def build(self) -> "RingSumoSim":
        return RingSumoSim(self)


class RingSumoSim:
    """Ring road in libsumo. Car ``k`` is vehicle id ``c{k}``; car 0 (``c0``) is the AV."""

    def __init__(self, cfg: RingSumoConfig):
        self.sumo = LibsumoSession()
        self.t = self.sumo.traci
        self.cfg = cfg
        self.x0 = np.zeros(cfg.num_vehicles)
        self.ids = [f"c{k}" for k in range(cfg.num_vehicles)]

    def reset(self, seed: int) -> np.ndarray:
        t, c = self.t, self.cfg
        args = ["-n", c.net_file, "-a", c.add_file, "--step-length", str(R.DT), "--no-step-log", "true",
                "--no-warnings", "true", "--seed", str(seed), "--collision.action", "warn",
                "--time-to-teleport", "-1", "--xml-validation", "never"]
        require_files(c.net_file, c.add_file)
        self.sumo.open(args)
        edges = ring_edges()
        arc = c.ring_length / len(edges)
        laps = int(math.ceil(R.IDM.v0 * (c.horizon + 10) / c.ring_length)) + 2
        for e in range(len(edges)):
            t.route.add(f"r{e}", (edges[e:] + edges[:e]) * laps)
        self.x0 = R.initial_positions(seed, c.ring_length, c.num_vehicles)
        for k, vid in enumerate(self.ids):
            e = min(int(self.x0[k] // arc), len(edges) - 1)
            t.vehicle.add(vid, f"r{e}", typeID=VTYPE, depart="now", departLane="0",
                          departPos=f"{self.x0[k] - e * arc:.4f}", departSpeed="0")
        t.simulationStep()  # inserts the cars (at rest, where they were placed)
        if t.vehicle.getIDCount() != c.num_vehicles:
            raise RuntimeError(f"ring: only {t.vehicle.getIDCount()} of {c.num_vehicles} cars could be inserted")
        self.steps = 0
        x, v = self._state()
        return R.observe(np, x, v, c.num_vehicles, c.ring_length)[None]

    def _state(self) -> tuple[np.ndarray, np.ndarray]:
        t = self.t
        x = self.x0 + np.array([t.vehicle.getDistance(vid) for vid in self.ids])
        v = np.array([t.vehicle.getSpeed(vid) for vid in self.ids])
        return x, v

    def step(self, actions):
        t, c = self.t, self.cfg
        av_accel = float(np.clip(np.asarray(actions, np.float64).reshape(-1)[0], -1.0, 1.0)) * R.AV_ACCEL
        for _ in range(c.hold_steps):
            v0 = t.vehicle.getSpeed("c0")
            t.vehicle.setSpeed("c0", max(0.0, v0 + R.DT * av_accel))
            t.simulationStep()
        self.steps += c.hold_steps
        x, v = self._state()
        mean_v, std_v = R.speed_stats(np, v, c.num_vehicles)
        reward = np.array([(mean_v - std_v) / R.REWARD_SCALE], np.float32)
        obs = R.observe(np, x, v, c.num_vehicles, c.ring_length)[None]
        truncated = self.steps >= int(round(c.horizon / R.DT))
        info = {"mean_speed": np.array([mean_v], np.float32), "speed_std": np.array([std_v], np.float32)}
        return obs, reward, False, truncated, info

    def close(self) -> None:
        self.sumo.close()


def make_ring_sumo(num_envs: int, seed: int, context=None, horizon: float = R.DEFAULT_HORIZON,
                   step_timeout_s: float = 60.0, inline: bool = False, **options):
    from envs.traffic.cache import cached_dir, write_text_atomic
    from envs.traffic.host import SumoBatchedEnv

    env_id = "traffic/ring-sumo"
    if options:
        raise ValueError(f"{env_id}: unknown option(s) {sorted(options)}; allowed: horizon, step_timeout_s, inline")
    if not horizon > 0:
        raise ValueError(f"{env_id}: horizon must be > 0 seconds, got {horizon!r}")
    spec = R.ring_spec(env_id, horizon)
    ctx = spec.resolve_context(context, num_envs)
    R.validate_ring_context(env_id, ctx)  # refused before any SUMO process starts
    vtype_dir = cached_dir("ring-vtype", dataclasses.asdict(R.IDM),
                           lambda d: write_text_atomic(d / "vtype.add.xml", _vtype_xml()))
    cfgs = []
    for length, n, hold in np.asarray(ctx, np.float64):
        scen = ring_scenario(RingParams(round(float(length), 3), R.IDM.v0))
        cfgs.append(RingSumoConfig(str(scen / "net.net.xml"), str(vtype_dir / "vtype.add.xml"),
                                   round(float(length), 3), int(round(n)), R.hold_steps(hold), float(horizon)))
    return SumoBatchedEnv(spec, cfgs, 1, ctx, seed, info_shapes={"mean_speed": (), "speed_std": ()},
                          step_timeout_s=step_timeout_s, inline=inline)
