"""``run.replay``: where an agent's replay buffer lives -- ``auto`` (the agent's own choice), ``device`` (arrays in
the jitted state, sampled inside the update: no host<->device copy per update) or ``host`` (numpy in host memory,
minibatches gathered on the host and copied per update).

Each agent implements the locations listed in ``REPLAY_LOCATIONS`` (the first is what ``auto`` picks); asking for one
it does not implement is refused when the config is loaded, never silently ignored. DQN (and PVN's online learners,
built on DQN's replay) keep theirs on the device -- the same arrays serve CPU runs; ScaleZero's prioritised
per-task replay is host numpy by default (agents/scalezero/replay.py) or on the device
(agents/scalezero/device_replay.py). ``benchmarks/bench_scaling.py`` measures DQN updates/s
with its device replay against the same buffer kept on the host (``dqn_host_replay`` row).
"""
from __future__ import annotations

from omnitask.schema import ConfigError

LOCATIONS = ("auto", "device", "host")
# implemented locations; the first is what auto picks (ScaleZero: host, measured faster on CPU; see bench_scaling)
REPLAY_LOCATIONS = {"dqn": ("device",), "pvn": ("device",), "scalezero": ("host", "device")}


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
