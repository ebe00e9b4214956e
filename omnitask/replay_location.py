"""``run.replay``: where an agent's replay buffer lives -- ``auto`` (the agent's own choice), ``device`` (arrays in
the jitted state, sampled inside the update: no host<->device copy per update) or ``host`` (numpy in host memory,
minibatches gathered on the host and copied per update).

Each agent implements the locations listed in ``REPLAY_LOCATIONS`` (the first is what ``auto`` picks); asking for one
it does not implement is refused when the config is loaded, never silently ignored. DQN keeps its replay on the
device by default and in host numpy under ``host`` (``agents.dqn.agent``: same indices from the same key, run on the
host loop); PVN's online learners are DQN agents, so they take both too (``host`` on host-simulator envs only: the
JAX-native online phase runs in jit and refuses it). ScaleZero's prioritised per-task replay is host numpy by default
(agents/scalezero/replay.py) or on the device (agents/scalezero/device_replay.py). ``benchmarks/bench_scaling.py``
measures updates/s with each location (``dqn_host_replay``, ``scalezero_host_replay``/``scalezero_device_replay``).
"""
from __future__ import annotations

from omnitask.schema import ConfigError

LOCATIONS = ("auto", "device", "host")
# implemented locations; the first is what auto picks (ScaleZero: host, measured no slower on CPU; see bench_scaling)
REPLAY_LOCATIONS = {"dqn": ("device", "host"), "pvn": ("device", "host"), "scalezero": ("host", "device")}


def replay_location(agent: str, requested: str) -> str | None:
    """The location ``agent``'s replay uses for ``run.replay=requested`` (None: the agent has no replay buffer)."""
    if requested not in LOCATIONS:
        raise ConfigError(f"run.replay must be one of {', '.join(LOCATIONS)}, got {requested!r}")
    implemented = REPLAY_LOCATIONS.get(agent)
    if requested == "auto":
        return implemented[0] if implemented else None
    if implemented is None:
        raise ConfigError(f"run.replay={requested}: agent {agent!r} has no replay buffer (leave run.replay at auto)")
    if requested not in implemented:
        raise ConfigError(f"run.replay={requested}: agent {agent!r} implements a {' or '.join(implemented)} replay "
                          f"only (use run.replay=auto or {implemented[0]})")
    return requested
