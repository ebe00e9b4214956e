"""``traffic/ecodrive``: eco-driving of connected automated vehicles (CAVs) at a fixed-time signalised intersection.

The MBTL eco-driving benchmark. A single 4-way intersection (250 m approaches, 13.89 m/s) with straight-through
demand; the light runs a fixed plan: N-S green for ``green_time`` s, 3 s yellow, E-W green ``green_time`` s, 3 s
yellow. A share ``penetration`` of the vehicles are CAVs (vType ``cav``); the rest are SUMO Krauss drivers.

* **action** Box(K=8) in [-1, 1]: acceleration ``3 m/s^2 * a_k`` for the k-th controlled slot, held for the
  1 s step (commanded through ``setSpeed``; SUMO still prevents collisions). Slots are the (up to) 8 CAVs on the
  incoming lanes closest to the stop line; unused slots are ignored. A CAV leaves SUMO's control only while it is
  in a slot.
* **observation** (8 slots x 7 = 56 floats): per slot [present, distance to stop line / 250 m, speed / 13.89,
  gap to leader / 100 m (clipped 1), leader speed / 13.89, own light is green, seconds until the light changes /
  (green + yellow)]. Empty slots are zeros.
* **reward** = -(fuel_g + 0.5 * vehicle_seconds) / 10 per step over *all* vehicles in the network plus those
  waiting to enter it (so blocking an entry is not free): grams of fuel from SUMO's emission model
  (``vehicle.getFuelConsumption``, SUMO's default emission class) trade against time spent.
* episodes end by time limit after ``episode_seconds`` (``truncated``).

Contexts (MBTL): ``green_time`` s (1-50), ``inflow`` veh/h per entry (40-2000), ``penetration`` (0.02-1.0).
Info: ``fuel_g`` (this step), ``vehicles`` (in the network), ``waiting_to_enter`` (insertion backlog),
``controlled`` (CAVs in slots), ``arrived`` (this step).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from envs.spec import ArraySpec, BoxActionSpec, ContextVar, EnvSpec
from envs.traffic.netgen import GridParams, grid_scenario, require_files
from envs.traffic.session import LibsumoSession

SLOTS = 8
SLOT_DIM = 7
OBS_DIM = SLOTS * SLOT_DIM
APPROACH = 250.0  # m
SPEED = 13.89  # m/s
MAX_ACCEL = 3.0  # m/s^2 at |action| = 1
YELLOW = 3  # s
FUEL_WEIGHT = 1.0  # per gram
TIME_WEIGHT = 0.5  # per vehicle-second
REWARD_SCALE = 10.0

ECO_CONTEXT = (
    ContextVar("green_time", 1.0, 50.0, 25.0, "green duration of each of the two phases (s)"),
    ContextVar("inflow", 40.0, 2000.0, 600.0, "vehicles per hour entering at each of the 4 entries"),
    ContextVar("penetration", 0.02, 1.0, 0.3, "share of vehicles that are controlled CAVs"),
)


@dataclasses.dataclass(frozen=True)
class EcoConfig:
    """One eco-driving simulation (picklable; ``build()`` runs in the worker)."""

    net_file: str
    route_file: str
    green_time: int  # s
    episode_seconds: int = 600

    def build(self) -> "EcoSim":
        return EcoSim(self)


class EcoSim:
    def __init__(self, cfg: EcoConfig):
        self.sumo = LibsumoSession()
        self.t = self.sumo.traci
        self.cfg = cfg
        self.slots: list[str] = []

    def reset(self, seed: int) -> np.ndarray:
        from envs.traffic.phases import phase_states, yellow_state

        t, c = self.t, self.cfg
        args = ["-n", c.net_file, "-r", c.route_file, "--seed", str(seed), "--step-length", "1",
                "--no-step-log", "true", "--no-warnings", "true", "--xml-validation", "never",
                "--end", str(c.episode_seconds + 10)]
        require_files(c.net_file, c.route_file)
        self.sumo.open(args)
        self.tls = t.trafficlight.getIDList()[0]
        links = [lk[0][:2] for lk in t.trafficlight.getControlledLinks(self.tls) if lk]
        self.in_lanes = list(dict.fromkeys(a for a, _ in links))
        axis = {}
        for lane in self.in_lanes:
            shape = t.lane.getShape(lane)
            axis[lane] = "NS" if abs(shape[-1][1] - shape[0][1]) > abs(shape[-1][0] - shape[0][0]) else "EW"
        self.axis = axis
        green, _ = phase_states(links, axis)
        # fixed plan over the two straight phases (0: N-S, 2: E-W); left-turn lanes are unused by this demand
        ns, ew = green[0], green[2]
        self.plan = [(ns, c.green_time, "NS"), (yellow_state(ns, ew), YELLOW, None), (ew, c.green_time, "EW"),
                     (yellow_state(ew, ns), YELLOW, None)]
        self.cycle = 2 * (c.green_time + YELLOW)
        self.time = 0
        self._set_signal()
        self.slots = []
        return self._observe()

    def _plan_at(self, time: int) -> tuple[str, str | None, int]:
        """(state, green axis or None, seconds until the state changes) at second ``time`` of the episode."""
        tc = time % self.cycle
        for state, dur, green_axis in self.plan:
            if tc < dur:
                return state, green_axis, dur - tc
            tc -= dur
        raise AssertionError("unreachable")

    def _set_signal(self) -> None:
        state, _, _ = self._plan_at(self.time)
        self.t.trafficlight.setRedYellowGreenState(self.tls, state)

    def _candidates(self) -> list[tuple[float, str, str]]:
        """(distance to stop line, vehicle, lane) of CAVs on the incoming lanes, nearest first."""
        t = self.t
        out = []
        for lane in self.in_lanes:
            length = t.lane.getLength(lane)
            for v in t.lane.getLastStepVehicleIDs(lane):
                if t.vehicle.getTypeID(v) == "cav":
                    out.append((length - t.vehicle.getLanePosition(v), v, lane))
        out.sort()
        return out[:SLOTS]

    def _observe(self) -> np.ndarray:
        t = self.t
        cands = self._candidates()
        new_slots = [v for _, v, _ in cands]
        for v in self.slots:  # release CAVs that left the approach (crossed the stop line)
            if v not in new_slots and v in t.vehicle.getIDList():
                t.vehicle.setSpeed(v, -1)
        self.slots = new_slots
        obs = np.zeros((SLOTS, SLOT_DIM), np.float32)
        _, green_axis, remaining = self._plan_at(self.time)
        for k, (dist, v, lane) in enumerate(cands):
            leader = t.vehicle.getLeader(v, 100.0)
            gap, lspeed = (min(leader[1], 100.0), t.vehicle.getSpeed(leader[0])) if leader else (100.0, SPEED)
            obs[k] = [1.0, min(dist / APPROACH, 1.0), t.vehicle.getSpeed(v) / SPEED, max(gap, 0.0) / 100.0,
                      lspeed / SPEED, float(green_axis == self.axis[lane]),
                      remaining / (self.cfg.green_time + YELLOW)]
        return obs.reshape(1, OBS_DIM)

    def step(self, actions):
        t = self.t
        acts = np.clip(np.asarray(actions, np.float64).reshape(-1), -1.0, 1.0)
        for k, v in enumerate(self.slots):
            speed = t.vehicle.getSpeed(v)
            t.vehicle.setSpeed(v, max(0.0, speed + MAX_ACCEL * acts[k]))
        t.simulationStep()
        self.time += 1
        self._set_signal()
        vehs = t.vehicle.getIDList()
        fuel_g = sum(t.vehicle.getFuelConsumption(v) for v in vehs) / 1000.0  # mg/s * 1 s -> g
        waiting = len(t.simulation.getPendingVehicles())  # blocked from entering: their time counts too
        reward = -(FUEL_WEIGHT * fuel_g + TIME_WEIGHT * (len(vehs) + waiting)) / REWARD_SCALE
        obs = self._observe()
        info = {"fuel_g": np.array([fuel_g], np.float32), "vehicles": np.array([len(vehs)], np.float32),
                "waiting_to_enter": np.array([waiting], np.float32),
                "controlled": np.array([len(self.slots)], np.float32),
                "arrived": np.array([t.simulation.getArrivedNumber()], np.float32)}
        truncated = self.time >= self.cfg.episode_seconds
        return obs, np.array([reward], np.float32), False, truncated, info

    def close(self) -> None:
        self.sumo.close()


def eco_spec(episode_seconds: int) -> EnvSpec:
    return EnvSpec("traffic/ecodrive", ArraySpec((OBS_DIM,), "float32", 0.0, None),
                   BoxActionSpec((SLOTS,), -1.0, 1.0), ("default",), ECO_CONTEXT, int(episode_seconds))


def make_ecodrive(num_envs: int, seed: int, context=None, episode_seconds: int = 600, step_timeout_s: float = 60.0,
                  inline: bool = False, **options):
    from envs.traffic.host import SumoBatchedEnv

    if options:
        raise ValueError(f"traffic/ecodrive: unknown option(s) {sorted(options)}; allowed: episode_seconds, "
                         "step_timeout_s, inline")
    if not (isinstance(episode_seconds, int) and episode_seconds >= 1):
        raise ValueError(f"traffic/ecodrive: episode_seconds must be an int >= 1, got {episode_seconds!r}")
    spec = eco_spec(episode_seconds)
    ctx = spec.resolve_context(context, num_envs)
    for green in ctx[:, 0]:  # checks beyond the ranges, before any SUMO process starts
        if abs(green - round(green)) > 1e-4:
            raise ValueError(f"traffic/ecodrive: green_time must be a whole number of seconds, got {green:g}")
    cfgs = []
    for green, inflow, pen in np.asarray(ctx, np.float64):
        scen = grid_scenario(GridParams(1, 1, APPROACH, SPEED, round(float(inflow), 3), float(episode_seconds),
                                        straight_only=True, cav_share=round(float(pen), 4)))
        cfgs.append(EcoConfig(str(scen / "net.net.xml"), str(scen / "routes.rou.xml"), int(round(green)),
                              episode_seconds))
    return SumoBatchedEnv(spec, cfgs, 1, ctx, seed,
                          info_shapes={k: () for k in ("fuel_g", "vehicles", "waiting_to_enter", "controlled",
                                                       "arrived")},
                          step_timeout_s=step_timeout_s, inline=inline)
