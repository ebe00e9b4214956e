"""Traffic-signal control on a 4-way intersection (``traffic/signal-1x1``) and grids with one agent per light.

The MBTL signal-control benchmark. Per light (agent), every ``delta_time`` = 5 simulated seconds:

* **action** (Discrete(4)): the next green phase: 0 = N-S straight+right, 1 = N-S protected left, 2 = E-W
  straight+right, 3 = E-W protected left. Switching inserts a ``yellow_time`` = 2 s yellow transition inside the
  step; a switch is ignored until the current green has lasted ``min_green`` = 5 s (+ yellow), as in sumo-rl.
* **observation** (22 floats in [0, 1]): one-hot green phase (4), ``can_switch`` flag (1), time in phase /
  ``max_green`` (1, clipped), then for the 8 incoming lanes (4 approaches x 2 lanes, in SUMO's link order):
  density = vehicles / lane capacity (8), queue = halting vehicles / lane capacity (8). Capacity = length / 7.5 m.
* **reward**: sumo-rl's ``diff-waiting-time``: (W_{t-1} - W_t) / 100 where W is the summed accumulated waiting
  time (s) of the vehicles on the light's incoming lanes (``--waiting-time-memory 10000`` as in sumo-rl).
* **episodes** end by time limit (``truncated``) after ``episode_seconds``; there is no terminal state.

Contexts (MBTL): ``inflow`` veh/h per entry (50-2500), ``speed_limit`` m/s (0.5-25), ``lane_length`` m (50-2500).
Grids ``traffic/signal-2x2`` / ``-3x3``: every light is one agent in the batch. ``num_envs`` counts agents, so it
must be a multiple of the number of lights; agents ``L*i .. L*i+L-1`` are the lights of simulation ``i`` and share
its context (per-env context values must repeat in groups of ``L``).
Options: ``episode_seconds`` (1800), ``delta_time`` (5), ``yellow_time`` (2), ``min_green`` (5),
``time_to_teleport`` (300), ``step_timeout_s`` (60, hang detection), ``inline`` (False: one simulation in this
process, no worker -- faster, but no crash isolation; see ``worker.InlinePool``).
Info (per agent): ``queue`` (halting vehicles on incoming lanes), ``waiting_time`` (W_t, s), ``backlog`` (vehicles
waiting to be inserted, i.e. spill-back to the network boundary; per simulation), ``phase_pressure`` [4] (vehicles on
the phase's incoming lanes minus on its outgoing lanes; used by the max-pressure controller), ``sim_time``.
"""
from __future__ import annotations

import dataclasses
from itertools import chain
from typing import Any

import numpy as np

from envs.spec import ArraySpec, ContextVar, DiscreteActionSpec, EnvSpec
from envs.traffic.phases import NUM_PHASES, PHASE_NAMES, phase_states, yellow_state  # noqa: F401 (re-export)
from envs.traffic.netgen import CAR_LENGTH, CAR_MIN_GAP, GridParams, grid_scenario, require_files
from envs.traffic.session import LibsumoSession

LANES_PER_LIGHT = 8
OBS_DIM = NUM_PHASES + 2 + 2 * LANES_PER_LIGHT  # 22

SIGNAL_CONTEXT = (
    ContextVar("inflow", 50.0, 2500.0, 600.0, "vehicles per hour entering at each network entry"),
    ContextVar("speed_limit", 0.5, 25.0, 13.89, "speed limit of every lane (m/s)"),
    ContextVar("lane_length", 50.0, 2500.0, 200.0, "approach length between intersections / to the fringe (m)"),
)


@dataclasses.dataclass(frozen=True)
class SignalConfig:
    """One signal-control simulation (picklable; ``build()`` runs inside the worker process)."""

    net_file: str  # compiled SUMO network
    route_file: str  # flows
    episode_seconds: int = 1800  # simulated seconds per episode
    delta_time: int = 5  # simulated seconds per agent step
    yellow_time: int = 2  # seconds of yellow when switching phase (inside the step)
    min_green: int = 5  # a green must last this long before a switch is accepted
    max_green: int = 50  # normalises the time-in-phase feature
    time_to_teleport: int = 300  # SUMO --time-to-teleport (s) for vehicles stuck in gridlock; -1 disables
    fast: bool = True  # vectorised step (same numbers as the per-light reference path, which tests compare it to)

    def build(self) -> "SignalSim":
        return SignalSim(self)


class _Light:
    """Static layout and dynamic state of one traffic light inside a ``SignalSim``."""

    def __init__(self, tls_id: str, traci):
        self.id = tls_id
        links = [lk[0][:2] for lk in traci.trafficlight.getControlledLinks(tls_id) if lk]
        self.in_lanes = list(dict.fromkeys(a for a, _ in links))
        self.out_lanes = list(dict.fromkeys(b for _, b in links))
        if len(self.in_lanes) != LANES_PER_LIGHT:
            raise RuntimeError(f"light {tls_id}: expected {LANES_PER_LIGHT} incoming lanes, got {self.in_lanes}")
        axis = {}
        for lane in self.in_lanes:
            shape = traci.lane.getShape(lane)
            dx, dy = shape[-1][0] - shape[0][0], shape[-1][1] - shape[0][1]
            axis[lane] = "NS" if abs(dy) > abs(dx) else "EW"
        self.green, members = phase_states(links, axis)
        self.capacity = np.array([traci.lane.getLength(lane) / (CAR_LENGTH + CAR_MIN_GAP) for lane in self.in_lanes])
        # pressure bookkeeping: for each phase, its incoming and outgoing lanes
        self.phase_in = [sorted({links[k][0] for k in members[p]}) for p in range(NUM_PHASES)]
        self.phase_out = [sorted({links[k][1] for k in members[p]}) for p in range(NUM_PHASES)]
        self.phase = 0
        self.next_phase = 0
        self.yellow = False
        self.time_in_phase = 0.0
        self.last_wait = 0.0


class _Tables:
    """Static index tables of all lights of one network, built once per worker (the network never changes between
    episodes), so that a step reads SUMO with one ``map`` per quantity and computes every light with a few numpy ops.

    ``lanes`` = every lane touched by a light (sorted); ``in_lanes`` = the lights' incoming lanes, light after light
    in each light's own order ([A * 8]).
    """

    def __init__(self, lights: list[_Light]):
        self.lanes = sorted({ln for lt in lights for ln in lt.in_lanes + lt.out_lanes})
        pos = {ln: i for i, ln in enumerate(self.lanes)}
        self.in_lanes = [ln for lt in lights for ln in lt.in_lanes]
        self.in_pos = np.array([[pos[ln] for ln in lt.in_lanes] for lt in lights])  # [A, 8] -> index in lanes
        self.capacity = np.stack([lt.capacity for lt in lights])  # [A, 8]
        A = len(lights)
        # pressure of phase p of light a = sum over lanes of veh[lane] * pressure[lane, a * NUM_PHASES + p]
        self.pressure = np.zeros((len(self.lanes), A * NUM_PHASES))  # [L, A*P] entries in {-1, 0, 1}
        for a, lt in enumerate(lights):
            for p in range(NUM_PHASES):
                for ln in lt.phase_in[p]:
                    self.pressure[pos[ln], a * NUM_PHASES + p] += 1.0
                for ln in lt.phase_out[p]:
                    self.pressure[pos[ln], a * NUM_PHASES + p] -= 1.0


class SignalSim:
    """One SUMO simulation (libsumo, in a worker process) with one agent per traffic light."""

    def __init__(self, cfg: SignalConfig):
        self.cfg = cfg
        self.lights: list[_Light] = []
        self.sumo = LibsumoSession()
        self.traci = self.sumo.traci
        self._static: tuple[list[_Light], _Tables] | None = None  # built on the first reset, reused after
        call = self.sumo.call
        self._veh_number = call("lane", "getLastStepVehicleNumber")
        self._halt_number = call("lane", "getLastStepHaltingNumber")
        self._veh_ids = call("lane", "getLastStepVehicleIDs")
        self._acc_wait = call("vehicle", "getAccumulatedWaitingTime")

    def _args(self, seed: int) -> list[str]:
        c = self.cfg
        return ["-n", c.net_file, "-r", c.route_file, "--seed", str(seed), "--step-length", "1",
                "--no-step-log", "true", "--no-warnings", "true", "--waiting-time-memory", "10000",
                "--time-to-teleport", str(c.time_to_teleport), "--xml-validation", "never",
                "--end", str(c.episode_seconds + 10)]

    def reset(self, seed: int) -> np.ndarray:
        t = self.traci
        require_files(self.cfg.net_file, self.cfg.route_file)
        self.sumo.open(self._args(seed))
        if self._static is None or not self.cfg.fast:
            lights = [_Light(tid, t) for tid in sorted(t.trafficlight.getIDList())]
            self._static = (lights, _Tables(lights))
        self.lights, self._tables = self._static
        for lt in self.lights:
            lt.phase, lt.next_phase, lt.yellow, lt.time_in_phase, lt.last_wait = 0, 0, False, 0.0, 0.0
        self._in_lanes = sorted({ln for lt in self.lights for ln in lt.in_lanes})
        self._lanes = self._tables.lanes
        for lt in self.lights:
            t.trafficlight.setRedYellowGreenState(lt.id, lt.green[0])
        return self._observe(*self._lane_counts())

    def _wait(self, lt: _Light) -> float:
        t = self.traci
        total = 0.0
        for lane in lt.in_lanes:
            for veh in t.lane.getLastStepVehicleIDs(lane):
                total += t.vehicle.getAccumulatedWaitingTime(veh)
        return total / 100.0

    def _lane_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(vehicles, halting vehicles) per lane touched by any light, one libsumo query each per step."""
        t = self.traci
        veh = {ln: t.lane.getLastStepVehicleNumber(ln) for ln in self._lanes}
        halt = {ln: t.lane.getLastStepHaltingNumber(ln) for ln in self._in_lanes}
        return veh, halt

    def _observe(self, veh: dict[str, int], halt: dict[str, int]) -> np.ndarray:
        c = self.cfg
        obs = np.zeros((len(self.lights), OBS_DIM), np.float32)
        for a, lt in enumerate(self.lights):
            obs[a, lt.next_phase] = 1.0
            obs[a, NUM_PHASES] = float(lt.time_in_phase >= c.min_green + c.yellow_time and not lt.yellow)
            obs[a, NUM_PHASES + 1] = min(1.0, lt.time_in_phase / c.max_green)
            v = np.array([veh[ln] for ln in lt.in_lanes], np.float64)
            h = np.array([halt[ln] for ln in lt.in_lanes], np.float64)
            obs[a, NUM_PHASES + 2:NUM_PHASES + 2 + LANES_PER_LIGHT] = np.minimum(v / lt.capacity, 1.0)
            obs[a, NUM_PHASES + 2 + LANES_PER_LIGHT:] = np.minimum(h / lt.capacity, 1.0)
        return obs

    def _apply(self, lt: _Light, action: int) -> None:
        """sumo-rl's phase logic: switch (via yellow) only if the green has lasted min_green + yellow."""
        c = self.cfg
        if action == lt.next_phase or lt.time_in_phase < c.yellow_time + c.min_green:
            return
        self.traci.trafficlight.setRedYellowGreenState(lt.id, yellow_state(lt.green[lt.next_phase],
                                                                          lt.green[action]))
        lt.phase, lt.next_phase, lt.yellow, lt.time_in_phase = lt.next_phase, int(action), True, 0.0

    def _advance(self, actions) -> None:
        """Apply the actions and run ``delta_time`` seconds in at most two libsumo calls: up to the end of the yellow
        (if any light switched), then the rest."""
        t, c = self.traci, self.cfg
        for lt, a in zip(self.lights, actions):
            self._apply(lt, int(a))
        start = t.simulation.getTime()
        yellow = any(lt.yellow for lt in self.lights) and c.yellow_time > 0
        for until in ((c.yellow_time, c.delta_time) if yellow else (c.delta_time,)):
            t.simulationStep(start + until)
            for lt in self.lights:
                if lt.yellow and until >= c.yellow_time:
                    t.trafficlight.setRedYellowGreenState(lt.id, lt.green[lt.next_phase])
                    lt.yellow, lt.phase = False, lt.next_phase
        for lt in self.lights:
            lt.time_in_phase += c.delta_time
        self._time = t.simulation.getTime()

    def step(self, actions: np.ndarray):
        if self.cfg.fast:
            return self._step_fast(actions)
        return self._step_reference(actions)

    def _step_fast(self, actions: np.ndarray):
        """The step, vectorised over lights (same numbers as ``_step_reference``; see ``_Tables``).

        Measured alternatives that did NOT help (libsumo 1.28): lane/vehicle variable subscriptions (building the
        result dicts costs more than the direct calls, and SUMO's own 1 s step went from 161 to 273 us with them on)
        and lane context subscriptions (range 0 does not return exactly the lane's vehicles).
        """
        t, c, tab = self.traci, self.cfg, self._tables
        self._advance(np.asarray(actions).reshape(-1))
        veh = np.array(list(map(self._veh_number, tab.lanes)), np.float64)  # [L]
        halt = np.array(list(map(self._halt_number, tab.in_lanes)), np.float64)  # [A*8]
        A = len(self.lights)
        halt = halt.reshape(A, LANES_PER_LIGHT)
        obs = np.zeros((A, OBS_DIM), np.float32)
        obs[np.arange(A), [lt.next_phase for lt in self.lights]] = 1.0
        obs[:, NUM_PHASES] = [float(lt.time_in_phase >= c.min_green + c.yellow_time and not lt.yellow)
                              for lt in self.lights]
        obs[:, NUM_PHASES + 1] = [min(1.0, lt.time_in_phase / c.max_green) for lt in self.lights]
        obs[:, NUM_PHASES + 2:NUM_PHASES + 2 + LANES_PER_LIGHT] = np.minimum(veh[tab.in_pos] / tab.capacity, 1.0)
        obs[:, NUM_PHASES + 2 + LANES_PER_LIGHT:] = np.minimum(halt / tab.capacity, 1.0)
        # accumulated waiting time per light, summed vehicle by vehicle in lane order (as the reference does)
        ids = list(map(self._veh_ids, tab.in_lanes))
        acc = self._acc_wait
        reward = np.zeros(A, np.float32)
        waiting = np.zeros(A, np.float32)
        for a, lt in enumerate(self.lights):
            w = sum(map(acc, chain.from_iterable(ids[a * LANES_PER_LIGHT:(a + 1) * LANES_PER_LIGHT]))) / 100.0
            reward[a] = lt.last_wait - w
            lt.last_wait = w
            waiting[a] = w * 100.0
        sim_time = self._time
        info = {"queue": halt.sum(axis=1).astype(np.float32), "waiting_time": waiting,
                "phase_pressure": (veh @ tab.pressure).reshape(A, NUM_PHASES).astype(np.float32),
                "backlog": np.full(A, len(t.simulation.getPendingVehicles()), np.float32),
                "sim_time": np.full(A, sim_time, np.float32)}
        return obs, reward, False, sim_time >= c.episode_seconds, info

    def _step_reference(self, actions: np.ndarray):
        """The step written light by light with one libsumo query per quantity (the definition of the numbers)."""
        t, c = self.traci, self.cfg
        self._advance(np.asarray(actions).reshape(-1))
        veh, halt = self._lane_counts()
        obs = self._observe(veh, halt)
        A = len(self.lights)
        reward = np.zeros(A, np.float32)
        info: dict[str, Any] = {"queue": np.zeros(A, np.float32), "waiting_time": np.zeros(A, np.float32),
                                "phase_pressure": np.zeros((A, NUM_PHASES), np.float32)}
        for a, lt in enumerate(self.lights):
            w = self._wait(lt)
            reward[a] = lt.last_wait - w
            lt.last_wait = w
            info["waiting_time"][a] = w * 100.0
            info["queue"][a] = sum(halt[ln] for ln in lt.in_lanes)
            for p in range(NUM_PHASES):
                info["phase_pressure"][a, p] = (sum(veh[ln] for ln in lt.phase_in[p])
                                                - sum(veh[ln] for ln in lt.phase_out[p]))
        sim_time = t.simulation.getTime()
        info["backlog"] = np.full(A, len(t.simulation.getPendingVehicles()), np.float32)
        info["sim_time"] = np.full(A, sim_time, np.float32)
        truncated = sim_time >= c.episode_seconds
        return obs, reward, False, truncated, info

    def close(self) -> None:
        self.sumo.close()


INFO_SHAPES = {"queue": (), "waiting_time": (), "backlog": (), "sim_time": (), "phase_pressure": (NUM_PHASES,)}


def signal_spec(env_id: str, episode_seconds: int, delta_time: int) -> EnvSpec:
    return EnvSpec(env_id, ArraySpec((OBS_DIM,), "float32", 0.0, 1.0), DiscreteActionSpec(NUM_PHASES, PHASE_NAMES),
                   ("default",), SIGNAL_CONTEXT, int(episode_seconds // delta_time))


def make_signal(rows: int, cols: int):
    """Factory for ``traffic/signal-{rows}x{cols}``."""
    env_id = f"traffic/signal-{rows}x{cols}"

    def factory(num_envs: int, seed: int, context=None, episode_seconds: int = 1800, delta_time: int = 5,
                yellow_time: int = 2, min_green: int = 5, time_to_teleport: int = 300,
                step_timeout_s: float = 60.0, inline: bool = False, **options):
        from envs.traffic.host import SumoBatchedEnv

        if options:
            raise ValueError(f"{env_id}: unknown option(s) {sorted(options)}; allowed: episode_seconds, delta_time, "
                             "yellow_time, min_green, time_to_teleport, step_timeout_s, inline")
        if not (isinstance(delta_time, int) and delta_time >= 1):
            raise ValueError(f"{env_id}: delta_time must be an int >= 1 second, got {delta_time!r}")
        if not (isinstance(yellow_time, int) and 0 <= yellow_time < delta_time):
            raise ValueError(f"{env_id}: yellow_time must be an int in [0, delta_time={delta_time}), got "
                             f"{yellow_time!r}")
        if not (isinstance(episode_seconds, int) and episode_seconds >= delta_time):
            raise ValueError(f"{env_id}: episode_seconds must be an int >= delta_time, got {episode_seconds!r}")
        spec = signal_spec(env_id, episode_seconds, delta_time)
        lights = rows * cols
        if num_envs % lights:
            raise ValueError(f"{env_id}: num_envs counts agents and every simulation has {lights} lights (agents), "
                             f"so num_envs must be a multiple of {lights}; got {num_envs} (num_envs={lights * 2} "
                             f"runs 2 simulations)")
        ctx = spec.resolve_context(context, num_envs)  # [B, C]; refused here, before any SUMO process starts
        per_sim = ctx.reshape(num_envs // lights, lights, -1)
        if not np.all(per_sim == per_sim[:, :1]):
            raise ValueError(f"{env_id}: the {lights} agents of one simulation share its context; per-env context "
                             f"values must repeat in groups of {lights} (agents b = {lights}*i ... {lights}*i+"
                             f"{lights - 1} are simulation i)")
        ctx = per_sim[:, 0]  # [N, C]
        cfgs = []
        for row in ctx:
            inflow, speed, length = (float(x) for x in row)
            scen = grid_scenario(GridParams(rows, cols, round(length, 3), round(speed, 4), round(inflow, 3),
                                            float(episode_seconds)))
            cfgs.append(SignalConfig(str(scen / "net.net.xml"), str(scen / "routes.rou.xml"), episode_seconds,
                                     delta_time, yellow_time, min_green, time_to_teleport=time_to_teleport))
        return SumoBatchedEnv(spec, cfgs, rows * cols, ctx, seed, info_shapes=INFO_SHAPES,
                              step_timeout_s=step_timeout_s, inline=inline)

    return env_id, factory
