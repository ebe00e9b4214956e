"""RESCO (Ault & Sharon, NeurIPS 2021 Datasets and Benchmarks): real and synthetic signal-control networks.

``traffic/resco/<name>`` for the eight RESCO networks. Their SUMO network and demand files ship as package data of
the installed ``sumo-rl`` (``sumo_rl/nets/RESCO/<name>/``); they are read in place (found with
``importlib.util.find_spec``, so ``sumo_rl`` itself -- whose import needs ``SUMO_HOME`` -- is never imported).

Settings follow RESCO's ``map_config``: simulated window (``begin``..``end``, 3600 s), seconds per decision
(``delta_time``: 10 s, 5 s on arterial4x4) and yellow (3 s, 2 s on arterial4x4), ``--time-to-teleport -1``.

Per signal (one agent; all signals of one simulation are consecutive agents of the batch, as in the grids):

* **action** ``Discrete(P)``: the next green phase, an index into the signal's own green phases (the phases of its
  ``tlLogic`` in the net file without yellow that show some green, as RESCO). ``P`` is the largest phase count in
  the network; a signal with ``n < P`` phases reads action ``a`` as phase ``a % n`` and ``action_mask [B, P]``
  (attribute and ``info``) marks its ``n`` canonical actions. A change of phase shows ``yellow_time`` of yellow
  at the start of the step (RESCO), no min-green beyond the step.
* **observation** (float32 in [0, 1]): one-hot green phase (P), seconds in phase / 60 (clipped), per incoming lane
  (padded to the network's most, L) density = vehicles / (length / 7.5 m) and queue = halting / (length / 7.5 m),
  then a one-hot signal id (A): ``P + 1 + 2L + A`` values. Shared parameters + signal id = RESCO's independent
  learners with parameter sharing.
* **reward**: RESCO's ``wait_norm``: ``clip(-W / 224, -4, 4)`` with W the summed waiting time (s) of the vehicles
  on the signal's incoming lanes.

Info per agent, every step: ``queue`` (halting vehicles on the incoming lanes), ``waiting_time`` (W),
``phase_pressure [P]`` (vehicles on the incoming minus outgoing lanes of each phase's green links, an outgoing lane
counting only where it feeds another controlled signal, as RESCO's pressure; padded phases copy their alias), ``action_mask [P]``, ``sim_time``. At the last step of an episode (NaN before), RESCO's metrics
over all vehicles of the episode (``utils/readXML.py`` in RESCO): ``resco_delay`` (time loss + departure delay per
vehicle, vehicles still waiting to enter counted with their wait), ``resco_trip_time``, ``resco_wait`` (per
vehicle that entered; unfinished trips count so far) and ``resco_queue`` (queue averaged over the episode's steps).

Option ``fixed_time=True`` leaves every signal on the network's own static program (SUMO's fixed-time control,
RESCO's "Fixed Time" baseline): actions are checked but ignored; observations and metrics are as above.
Option ``episode_seconds`` (default None = RESCO's 3600 s) keeps only the window's first seconds (short runs, tests).
Known difference from RESCO: a switch whose links only gain green (no green -> red link) still waits out the yellow
time before the new links turn green (RESCO switches those at once).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from envs.spec import ArraySpec, DiscreteActionSpec, EnvSpec

VEHICLE_SPACE_M = 7.5  # lane capacity = length / this (as the generated signal envs)
WAIT_NORM = 224.0  # RESCO's wait_norm divisor
MAX_PHASE_SECONDS = 60.0  # normalises the time-in-phase feature


@dataclasses.dataclass(frozen=True)
class RescoMap:
    """One RESCO network: file names inside ``sumo_rl/nets/RESCO/<name>/`` and RESCO's ``map_config`` values."""

    net: str
    route: str
    begin: int  # simulated second the episode starts at
    end: int  # simulated second it ends at
    delta_time: int  # seconds per decision (RESCO step_length)
    yellow_time: int  # RESCO yellow_length


RESCO_MAPS: dict[str, RescoMap] = {
    "cologne1": RescoMap("cologne1.net.xml", "cologne1.rou.xml", 25200, 28800, 10, 3),
    "cologne3": RescoMap("cologne3.net.xml", "cologne3.rou.xml", 25200, 28800, 10, 3),
    "cologne8": RescoMap("cologne8.net.xml", "cologne8.rou.xml", 25200, 28800, 10, 3),
    "ingolstadt1": RescoMap("ingolstadt1.net.xml", "ingolstadt1.rou.xml", 57600, 61200, 10, 3),
    "ingolstadt7": RescoMap("ingolstadt7.net.xml", "ingolstadt7.rou.xml", 57600, 61200, 10, 3),
    "ingolstadt21": RescoMap("ingolstadt21.net.xml", "ingolstadt21.rou.xml", 57600, 61200, 10, 3),
    "grid4x4": RescoMap("grid4x4.net.xml", "grid4x4_1.rou.xml", 0, 3600, 10, 3),
    "arterial4x4": RescoMap("arterial4x4.net.xml", "arterial4x4_1.rou.xml", 0, 3600, 5, 2),
}
RESCO_NAMES = tuple(RESCO_MAPS)


def check_name(name: str) -> RescoMap:
    if name not in RESCO_MAPS:
        raise ValueError(f"unknown RESCO network {name!r}; allowed: {', '.join(RESCO_NAMES)}")
    return RESCO_MAPS[name]


def resco_dir() -> Path:
    """``sumo_rl/nets/RESCO`` of the installed sumo-rl, located without importing ``sumo_rl``."""
    spec = importlib.util.find_spec("sumo_rl")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("traffic/resco/* reads its networks from the sumo-rl package: "
                                  "pip install 'omnitask[test]' (or 'sumo-rl==1.4.5')")
    path = Path(list(spec.submodule_search_locations)[0]) / "nets" / "RESCO"
    if not path.is_dir():
        raise FileNotFoundError(f"sumo-rl at {path.parent.parent} has no nets/RESCO directory (sumo-rl 1.4.5 has)")
    return path


def map_files(name: str) -> tuple[str, str]:
    m = check_name(name)
    d = resco_dir() / name
    return str(d / m.net), str(d / m.route)


# ------------------------------------------------------------------------------------------- static net layout
@dataclasses.dataclass(frozen=True)
class SignalLayout:
    """One traffic light read from the net file (no SUMO needed)."""

    tls_id: str
    greens: tuple[str, ...]  # state strings of its green phases (RESCO's action set)
    program_green: tuple[int, ...]  # per static-program phase: index into greens, or -1 (yellow / all-red)
    links: tuple[tuple[str, str], ...]  # per link index: (incoming lane, outgoing lane)
    in_lanes: tuple[str, ...]  # distinct incoming lanes, link order
    lane_length: tuple[float, ...]  # per in_lane, m

    @property
    def num_phases(self) -> int:
        return len(self.greens)


@dataclasses.dataclass(frozen=True)
class NetLayout:
    signals: tuple[SignalLayout, ...]  # sorted by tls id
    max_phases: int  # P
    max_lanes: int  # L

    @property
    def num_signals(self) -> int:
        return len(self.signals)

    @property
    def obs_dim(self) -> int:
        return self.max_phases + 1 + 2 * self.max_lanes + self.num_signals

    def action_mask(self) -> np.ndarray:
        """[A, P] bool: the canonical actions of each signal."""
        return np.arange(self.max_phases)[None, :] < np.array([s.num_phases for s in self.signals])[:, None]


def is_green_phase(state: str) -> bool:
    """RESCO's rule: a phase is an action when it has no yellow and shows some green."""
    return "y" not in state and "g" in state.lower()


@functools.lru_cache(maxsize=None)
def net_layout(net_file: str) -> NetLayout:
    """Signals, their green phases and incoming lanes, from the net XML (first program of each light)."""
    root = ET.parse(net_file).getroot()
    lengths = {ln.get("id"): float(ln.get("length")) for edge in root.iter("edge") for ln in edge.iter("lane")}
    links: dict[str, dict[int, tuple[str, str]]] = {}
    for c in root.iter("connection"):
        if c.get("tl") is not None:
            links.setdefault(c.get("tl"), {})[int(c.get("linkIndex"))] = (
                f"{c.get('from')}_{c.get('fromLane')}", f"{c.get('to')}_{c.get('toLane')}")
    signals, seen = [], set()
    for tl in root.iter("tlLogic"):
        tid = tl.get("id")
        if tid in seen:  # further programs of the same light: SUMO starts the first
            continue
        seen.add(tid)
        states = [p.get("state") for p in tl.iter("phase")]
        greens = tuple(s for s in states if is_green_phase(s))
        program_green = tuple(greens.index(s) if is_green_phase(s) else -1 for s in states)
        tl_links = links.get(tid, {})
        ordered = tuple(tl_links[k] for k in sorted(tl_links))
        in_lanes = tuple(dict.fromkeys(a for a, _ in ordered))
        signals.append(SignalLayout(tid, greens, program_green, ordered, in_lanes,
                                    tuple(lengths.get(ln, VEHICLE_SPACE_M) for ln in in_lanes)))
    if not signals:
        raise ValueError(f"{net_file}: no traffic lights")
    signals.sort(key=lambda s: s.tls_id)
    return NetLayout(tuple(signals), max(s.num_phases for s in signals), max(len(s.in_lanes) for s in signals))


def yellow_between(green_from: str, green_to: str) -> str:
    """Links green now and red ('r'/'s') in the next phase show yellow; the others keep their current colour."""
    return "".join("y" if a in "Gg" and b in "rs" else a for a, b in zip(green_from, green_to))


def phase_links(sig: SignalLayout) -> list[list[tuple[str, str]]]:
    """Per green phase, its distinct green (incoming, outgoing) lane pairs."""
    return [list(dict.fromkeys(sig.links[k] for k, ch in enumerate(g) if ch in "Gg" and k < len(sig.links)))
            for g in sig.greens]


# ------------------------------------------------------------------------------------------------- simulation
@dataclasses.dataclass(frozen=True)
class RescoConfig:
    """One RESCO simulation (picklable; ``build()`` runs in the worker process)."""

    name: str
    net_file: str
    route_file: str
    begin: int
    end: int
    delta_time: int
    yellow_time: int
    fixed_time: bool = False

    def build(self) -> "RescoSim":
        return RescoSim(self)


RESCO_METRICS = ("resco_delay", "resco_trip_time", "resco_wait", "resco_queue")  # per episode, at its last step
INFO_KEYS_SCALAR = ("queue", "waiting_time", "sim_time") + RESCO_METRICS


def info_shapes(max_phases: int) -> dict[str, tuple]:
    shapes: dict[str, tuple] = {k: () for k in INFO_KEYS_SCALAR}
    shapes.update(phase_pressure=(max_phases,), action_mask=(max_phases,))
    return shapes


def _route_departures(route_file: str) -> dict[str, float]:
    """Scheduled departure of every vehicle/trip in the route file (for vehicles that never entered)."""
    out = {}
    for _, el in ET.iterparse(route_file):
        if el.tag in ("vehicle", "trip") and el.get("depart") is not None:
            try:
                out[el.get("id")] = float(el.get("depart"))
            except ValueError:  # 'triggered' and similar: no scheduled time
                pass
        el.clear()
    return out


class RescoSim:
    """One SUMO simulation of a RESCO network with one agent per traffic light (runs in a worker process)."""

    def __init__(self, cfg: RescoConfig):
        from envs.traffic.session import LibsumoSession

        self.cfg = cfg
        self.layout = net_layout(cfg.net_file)
        self.sumo = LibsumoSession()
        self.traci = self.sumo.traci
        self._departs: dict[str, float] | None = None
        A, P, L = self.layout.num_signals, self.layout.max_phases, self.layout.max_lanes
        self._mask = self.layout.action_mask().astype(np.float32)  # [A, P]
        # the incoming lanes of all signals: counts are read into one array per step. Outgoing lanes that feed no
        # controlled signal are never read (neither the observation nor RESCO's pressure counts them).
        self._lanes = sorted({ln for s in self.layout.signals for ln in s.in_lanes})
        self._num_in = len(self._lanes)
        index = {ln: i for i, ln in enumerate(self._lanes)}
        zero = self._num_in  # the extra slot of ``_lane_counts``' vehicle array: always 0 (padding reads it)
        # Static index tables so that a step computes every signal with a few numpy ops (the numbers are those of
        # the per-signal loops they replace: sums of integer counts and of whole-second waiting times are exact).
        self._in_pos = np.full((A, L), zero)  # [A, L] lane index of each signal's incoming lanes, padded
        self._cap = np.ones((A, L))  # [A, L] capacity in vehicles (1 on padding, which reads 0 vehicles)
        for a, s in enumerate(self.layout.signals):
            n = len(s.in_lanes)
            self._in_pos[a, :n] = [index[ln] for ln in s.in_lanes]
            self._cap[a, :n] = np.maximum(np.array(s.lane_length) / VEHICLE_SPACE_M, 1.0)
        self._in_lane_ids = [ln for s in self.layout.signals for ln in s.in_lanes]  # signal after signal
        self._in_flat = self._in_pos[self._in_pos < zero]  # [sum n] the same lanes' indices
        self._in_owner = np.repeat(np.arange(A), [len(s.in_lanes) for s in self.layout.signals])  # [sum n]
        # RESCO's pressure subtracts only downstream vehicles queued for another controlled signal; a lane leaving
        # the controlled area drains freely (and its moving vehicles would only add noise). Phase p of signal a
        # (padded phases alias p % n) = sum over lanes of veh[lane] * pressure[lane, a * P + p]: each distinct green
        # (incoming, outgoing) lane pair adds +1 on its incoming lane and -1 on its outgoing lane where counted.
        self._pressure = np.zeros((zero + 1, A * P))  # [lanes + 1, A * P]
        for a, s in enumerate(self.layout.signals):
            pairs = phase_links(s)
            for p in range(P):
                for i, o in pairs[p % s.num_phases]:
                    self._pressure[index[i], a * P + p] += 1.0
                    if o in index:
                        self._pressure[index[o], a * P + p] -= 1.0
        self._num_phases = np.array([s.num_phases for s in self.layout.signals])  # [A]
        self._tls_ids = [s.tls_id for s in self.layout.signals]
        self._yellow = [{(i, j): yellow_between(s.greens[i], s.greens[j]) for i in range(s.num_phases)
                         for j in range(s.num_phases) if i != j} for s in self.layout.signals]
        self._obs_base = np.zeros((A, self.layout.obs_dim), np.float32)  # [A, D]: the signal-id one-hot part
        self._obs_base[np.arange(A), P + 1 + 2 * L + np.arange(A)] = 1.0
        call = self.sumo.call
        self._veh_number = call("lane", "getLastStepVehicleNumber")
        self._halt_number = call("lane", "getLastStepHaltingNumber")
        self._lane_wait = call("lane", "getWaitingTime")
        self._set_state = call("trafficlight", "setRedYellowGreenState")
        self.phase = np.zeros(A, np.int64)
        self.time_in_phase = np.zeros(A)
        self._queue_sum = 0.0
        self._steps = 0

    def _args(self, seed: int) -> list[str]:
        c = self.cfg
        return ["-n", c.net_file, "-r", c.route_file, "--begin", str(c.begin), "--end", str(c.end + c.delta_time),
                "--seed", str(seed), "--step-length", "1", "--no-step-log", "true", "--no-warnings", "true",
                "--time-to-teleport", "-1", "--waiting-time-memory", "100000", "--xml-validation", "never",
                "--device.tripinfo.probability", "1", "--verbose", "false"]

    def reset(self, seed: int) -> np.ndarray:
        from envs.traffic.netgen import require_files

        require_files(self.cfg.net_file, self.cfg.route_file)
        self.sumo.open(self._args(seed))
        self.phase[:] = 0
        self.time_in_phase[:] = 0.0
        self._queue_sum, self._steps = 0.0, 0
        if not self.cfg.fixed_time:
            for s in self.layout.signals:
                self.traci.trafficlight.setRedYellowGreenState(s.tls_id, s.greens[0])
        else:
            self._read_program_phases()
        veh, halt = self._lane_counts()
        return self._observe(veh, halt)

    def _read_program_phases(self) -> None:
        """Fixed-time mode: the current green of each light's own program (kept through its yellow/red phases)."""
        for a, s in enumerate(self.layout.signals):
            idx = self.traci.trafficlight.getPhase(s.tls_id)
            g = s.program_green[idx] if idx < len(s.program_green) else -1
            if g >= 0 and g != self.phase[a]:
                self.phase[a], self.time_in_phase[a] = g, 0.0

    def _lane_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(vehicles [lanes + 1], halting vehicles [incoming lanes]); the extra last vehicle slot is a 0 that
        uncounted outgoing lanes and padding read."""
        veh = np.fromiter(map(self._veh_number, self._lanes), float, self._num_in)
        halt = np.fromiter(map(self._halt_number, self._lanes), float, self._num_in)
        return np.append(veh, 0.0), halt

    def _observe(self, veh: np.ndarray, halt: np.ndarray) -> np.ndarray:
        """[A, D]: phase one-hot, time in phase, per incoming lane density and queue (padded), signal id."""
        lay = self.layout
        A, P, L = lay.num_signals, lay.max_phases, lay.max_lanes
        obs = self._obs_base.copy()
        obs[np.arange(A), self.phase] = 1.0
        obs[:, P] = np.minimum(1.0, self.time_in_phase / MAX_PHASE_SECONDS)
        obs[:, P + 1:P + 1 + L] = np.minimum(veh[self._in_pos] / self._cap, 1.0)
        obs[:, P + 1 + L:P + 1 + 2 * L] = np.minimum(np.append(halt, 0.0)[self._in_pos]
                                                     / self._cap, 1.0)
        return obs

    def _advance(self, actions: np.ndarray) -> None:
        """One decision: yellow for ``yellow_time`` where the phase changes, then the new greens (RESCO's step)."""
        t, c, lay = self.traci, self.cfg, self.layout
        start = t.simulation.getTime()
        if c.fixed_time:
            t.simulationStep(start + c.delta_time)
            self.time_in_phase += c.delta_time
            self._read_program_phases()
            return
        new = np.asarray(actions, np.int64) % self._num_phases
        changed = np.flatnonzero(new != self.phase)
        if len(changed):
            ids, yellow, greens = self._tls_ids, self._yellow, [s.greens for s in lay.signals]
            pairs = list(zip(changed.tolist(), self.phase[changed].tolist(), new[changed].tolist()))
            for a, old, nxt in pairs:
                self._set_state(ids[a], yellow[a][old, nxt])
            if c.yellow_time > 0:
                t.simulationStep(start + c.yellow_time)
            for a, _, nxt in pairs:
                self._set_state(ids[a], greens[a][nxt])
        t.simulationStep(start + c.delta_time)
        self.time_in_phase += c.delta_time
        self.time_in_phase[changed] = c.delta_time - c.yellow_time
        self.phase = new

    def _episode_metrics(self) -> dict[str, float]:
        """RESCO's trip metrics over every vehicle of the episode (arrived, still driving, never entered)."""
        t = self.traci
        now = t.simulation.getTime()

        def stat(key):
            return float(t.simulation.getParameter("", f"device.tripinfo.vehicleTripStatistics.{key}") or 0.0)

        n_arr = stat("count")
        delay = n_arr * (stat("timeLoss") + stat("departDelay"))
        trip, wait = n_arr * stat("duration"), n_arr * stat("waitingTime")
        running = t.vehicle.getIDList()
        for v in running:
            delay += t.vehicle.getTimeLoss(v) + t.vehicle.getDepartDelay(v)
            trip += now - t.vehicle.getDeparture(v)
            wait += t.vehicle.getAccumulatedWaitingTime(v)
        if self._departs is None:
            self._departs = _route_departures(self.cfg.route_file)
        pending = [now - self._departs[v] for v in t.simulation.getPendingVehicles() if v in self._departs]
        delay += float(np.sum(pending)) if pending else 0.0
        entered = max(1.0, n_arr + len(running))
        return {"resco_delay": delay / max(1.0, entered + len(pending)), "resco_trip_time": trip / entered,
                "resco_wait": wait / entered, "resco_queue": self._queue_sum / max(1, self._steps)}

    def step(self, actions: np.ndarray):
        lay = self.layout
        A, P = lay.num_signals, lay.max_phases
        self._advance(np.asarray(actions).reshape(-1))
        veh, halt = self._lane_counts()
        obs = self._observe(veh, halt)
        t = self.traci
        lane_wait = np.fromiter(map(self._lane_wait, self._in_lane_ids), float, len(self._in_lane_ids))
        waiting = np.bincount(self._in_owner, lane_wait, A)  # [A] s; whole seconds, so the sum is exact
        queue = np.bincount(self._in_owner, halt[self._in_flat], A)  # [A]
        info: dict[str, Any] = {"queue": queue.astype(np.float32), "waiting_time": waiting.astype(np.float32),
                                "phase_pressure": (veh @ self._pressure).reshape(A, P).astype(np.float32),
                                "action_mask": self._mask.copy()}
        reward = np.clip(-info["waiting_time"] / WAIT_NORM, -4.0, 4.0).astype(np.float32)
        self._queue_sum += float(info["queue"].sum())
        self._steps += 1
        sim_time = t.simulation.getTime()
        info["sim_time"] = np.full(A, sim_time, np.float32)
        truncated = sim_time >= self.cfg.end
        metrics = self._episode_metrics() if truncated else dict.fromkeys(RESCO_METRICS, float("nan"))
        for k, v in metrics.items():
            info[k] = np.full(A, v, np.float32)
        return obs, reward, False, truncated, info

    def close(self) -> None:
        self.sumo.close()


# ------------------------------------------------------------------------------------------------ env factory
def episode_window(name: str, episode_seconds: int | None) -> tuple[int, int]:
    """(begin, end) simulated seconds: RESCO's window, or its first ``episode_seconds`` (short runs, e.g. tests)."""
    m = check_name(name)
    if episode_seconds is None:
        return m.begin, m.end
    full = m.end - m.begin
    if isinstance(episode_seconds, bool) or not isinstance(episode_seconds, int) or not (
            m.delta_time <= episode_seconds <= full and episode_seconds % m.delta_time == 0):
        raise ValueError(f"traffic/resco/{name}: episode_seconds must be a multiple of {m.delta_time} in "
                         f"[{m.delta_time}, {full}] (None = RESCO's {full} s), got {episode_seconds!r}")
    return m.begin, m.begin + episode_seconds


def resco_spec(name: str, episode_seconds: int | None = None) -> EnvSpec:
    m = check_name(name)
    begin, end = episode_window(name, episode_seconds)
    lay = net_layout(map_files(name)[0])
    return EnvSpec(f"traffic/resco/{name}", ArraySpec((lay.obs_dim,), "float32", 0.0, 1.0),
                   DiscreteActionSpec(lay.max_phases, tuple(f"green-{p}" for p in range(lay.max_phases))),
                   ("default",), (), (end - begin) // m.delta_time)


def make_resco(name: str, num_envs: int, seed: int, context=None, fixed_time: bool = False,
               episode_seconds: int | None = None, step_timeout_s: float = 120.0, inline: bool = False, **options):
    """``traffic/resco/<name>``: ``num_envs`` counts agents, a multiple of the network's signals.
    ``episode_seconds`` (default None = RESCO's 3600 s) cuts episodes short; RESCO's numbers need the default."""
    from envs.traffic.host import SumoBatchedEnv

    env_id = f"traffic/resco/{name}"
    m = check_name(name)
    if options:
        raise ValueError(f"{env_id}: unknown option(s) {sorted(options)}; allowed: fixed_time, episode_seconds, "
                         "step_timeout_s, inline (step and yellow are RESCO's and fixed)")
    begin, end = episode_window(name, episode_seconds)
    if context:
        raise ValueError(f"{env_id}: RESCO networks have no context variables; got {sorted(dict(context))}")
    net_file, route_file = map_files(name)
    spec = resco_spec(name, episode_seconds)
    lay = net_layout(net_file)
    A = lay.num_signals
    if num_envs % A:
        raise ValueError(f"{env_id}: num_envs counts agents and the network has {A} signals, so num_envs must be a "
                         f"multiple of {A}; got {num_envs}")
    cfg = RescoConfig(name, net_file, route_file, begin, end, m.delta_time, m.yellow_time, bool(fixed_time))
    sims = num_envs // A
    env = SumoBatchedEnv(spec, [cfg] * sims, A, np.zeros((sims, 0), np.float32), seed,
                         info_shapes=info_shapes(lay.max_phases), step_timeout_s=step_timeout_s, inline=inline)
    env.action_mask = np.tile(lay.action_mask(), (sims, 1))  # [B, P]
    env.signal_ids = [s.tls_id for s in lay.signals] * sims  # [B]
    env.episode_metric_keys = RESCO_METRICS  # reported by the trainers' evaluation (agents.common.trainer_utils)
    return env
