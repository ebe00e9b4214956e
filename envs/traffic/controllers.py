"""Classic signal controllers acting through the ``traffic/signal-*`` action interface (baselines for RL).

Both are small host-side policies over a TimeStep batch ``[B]`` (B = envs x lights):
* ``FixedTimeController``: cycles the 4 phases, each held for ``green_steps`` agent steps (a fixed-time plan).
* ``MaxPressureController`` (Varaiya 2013): every step picks the phase with the largest pressure = vehicles on its
  incoming lanes minus vehicles on its outgoing lanes (``info['phase_pressure']``); the env enforces min-green.
"""
from __future__ import annotations

import numpy as np

from envs.timestep import TimeStep
from envs.traffic.signal import NUM_PHASES


class FixedTimeController:
    """Phase ``(t // green_steps) % 4`` where ``t`` counts agent steps since the episode began (per agent)."""

    def __init__(self, num_envs: int, green_steps: int = 6):
        if green_steps < 1:
            raise ValueError(f"green_steps must be >= 1, got {green_steps}")
        self.green_steps = int(green_steps)
        self.t = np.zeros(num_envs, np.int64)  # [B]

    def act(self, ts: TimeStep) -> np.ndarray:
        """[B] int32 actions for the step after ``ts`` (episode-relative clock restarts on ``ts.done``)."""
        self.t = np.where(np.asarray(ts.done), 0, self.t)
        actions = ((self.t // self.green_steps) % NUM_PHASES).astype(np.int32)
        self.t = self.t + 1
        return actions


class MaxPressureController:
    """Greedy max-pressure: ``argmax_p info['phase_pressure'][b, p]`` (ties -> lowest phase)."""

    def act(self, ts: TimeStep) -> np.ndarray:
        pressure = np.asarray(ts.info["phase_pressure"])  # [B, 4]
        return np.argmax(pressure, axis=-1).astype(np.int32)


def run_controller(env, controller, num_steps: int, seed: int | None = None) -> dict[str, float]:
    """Run ``controller`` for ``num_steps`` agent steps; mean reward, queue and waiting time over the run."""
    ts = env.reset(seed=seed)
    rewards, queues, waits = [], [], []
    for _ in range(num_steps):
        ts = env.step(controller.act(ts))
        rewards.append(ts.reward.mean())
        queues.append(ts.info["queue"].mean())
        waits.append(ts.info["waiting_time"].mean())
    return {"reward": float(np.mean(rewards)), "queue": float(np.mean(queues)), "waiting_time": float(np.mean(waits))}
