"""Shared definition of the ring-road task (Sugiyama stop-and-go experiment) for the SUMO and JAX versions.

Both versions simulate the same thing: ``num_vehicles`` identical IDM cars on a single-lane ring of length
``ring_length``, starting from rest, equally spaced with a small seeded position perturbation. Vehicle 0 is the
automated vehicle (AV). Every agent step the AV receives an acceleration advice ``action * AV_ACCEL`` m/s^2
(``action`` in [-1, 1]) that it holds for ``hold_duration`` seconds (the *guidance hold duration* of the advisory
autonomy benchmark); the advice is capped by the IDM speed (safety) and by the IDM deceleration bound, as SUMO's
default speed mode does. ``action = +1`` therefore reproduces a pure IDM car.

Observation (6 floats): AV speed / v0, leader speed / v0, leader gap / 20 m, follower speed / v0, follower gap /
20 m, mean speed of all cars / v0. Reward per step: (mean speed - speed standard deviation) / 10 m/s, evaluated at
the end of the step: higher mean speed and damped waves are both rewarded.

Contexts: ``ring_length`` m (150-400), ``num_vehicles`` (5-40, integer), ``hold_duration`` s (0.1-10, rounded to
the nearest multiple of the 0.1 s simulation step, half to even, as MBTL's evenly spaced grids need).
Rings too short for their cars (``ring_length / num_vehicles < 7.5`` m) are refused.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from envs.spec import ArraySpec, BoxActionSpec, ContextVar, EnvSpec


@dataclasses.dataclass(frozen=True)
class IDMParams:
    """Intelligent Driver Model parameters (Treiber et al. 2000), as SUMO's ``carFollowModel="IDM"`` names them."""

    v0: float = 30.0  # desired speed (m/s) = lane speed limit, speedFactor 1
    T: float = 1.0  # time headway (s), SUMO ``tau``
    a: float = 1.0  # maximum acceleration (m/s^2), SUMO ``accel``
    b: float = 1.5  # comfortable deceleration (m/s^2), SUMO ``decel``
    delta: float = 4.0  # acceleration exponent
    s0: float = 2.0  # minimum gap (m), SUMO ``minGap``
    length: float = 5.0  # vehicle length (m)
    emergency_decel: float = 9.0  # SUMO ``emergencyDecel`` (bound on braking when the IDM asks for more)


IDM = IDMParams()
DT = 0.1  # s, simulation step of both ring versions
AV_ACCEL = 1.5  # m/s^2, |advice| at action = +-1
MAX_VEHICLES = 40  # the JAX version pads to this many cars
MIN_SPACING = 7.5  # m of ring per car (length 5 + minGap 2 + 0.5 m margin)
OBS_DIM = 6
GAP_SCALE = 20.0
REWARD_SCALE = 10.0
DEFAULT_HORIZON = 300.0  # s of simulated time per episode

RING_CONTEXT = (
    ContextVar("ring_length", 150.0, 400.0, 260.0, "circumference of the ring (m)"),
    ContextVar("num_vehicles", 5.0, float(MAX_VEHICLES), 22.0, "cars on the ring including the AV (integer)"),
    ContextVar("hold_duration", 0.1, 10.0, 1.0, "guidance hold duration: seconds each advice is held"),
)


def ring_spec(env_id: str, horizon: float = DEFAULT_HORIZON) -> EnvSpec:
    """``max_episode_steps`` is for the default hold of 1 s; episodes end after ``horizon`` simulated seconds."""
    return EnvSpec(env_id, ArraySpec((OBS_DIM,), "float32"), BoxActionSpec((1,), -1.0, 1.0), ("default",),
                   RING_CONTEXT, int(round(horizon / RING_CONTEXT[2].default)))


def validate_ring_context(env_id: str, ctx: np.ndarray) -> None:
    """Checks beyond the ranges: integer car counts and room for every car."""
    for row in np.asarray(ctx, np.float64):
        length, n, hold = row
        if abs(n - round(n)) > 1e-6:
            raise ValueError(f"{env_id}: num_vehicles must be an integer, got {n:g}")
        if length / round(n) < MIN_SPACING:
            raise ValueError(f"{env_id}: ring_length={length:g} m is too short for num_vehicles={n:g} "
                             f"(needs >= {MIN_SPACING} m per car, i.e. ring_length >= {MIN_SPACING * round(n):g})")


def hold_steps(hold_duration: float) -> int:
    return max(1, int(round(hold_duration / DT)))


def initial_positions(seed: int, ring_length: float, num_vehicles: int) -> np.ndarray:
    """[N] front-bumper positions (m) of the cars at rest: equal spacing + U(-p, p) noise, p = 10% of the free gap.

    Used by the SUMO version and by the cross-validation test (the JAX version samples the same distribution with
    ``jax.random``).
    """
    n = int(num_vehicles)
    spacing = ring_length / n
    p = 0.1 * (spacing - IDM.length)
    noise = np.random.default_rng(int(seed)).uniform(-p, p, size=n)
    noise[0] = 0.0
    return np.arange(n) * spacing + IDM.length + noise


def observe(xp, x, v, n, ring_length):
    """Observation from cumulative positions ``x`` [N] and speeds ``v`` [N] (first ``n`` valid); numpy or jnp."""
    gap_lead = x[1] - x[0] - IDM.length
    follower = n - 1
    gap_follow = x[0] + ring_length - x[follower] - IDM.length
    mask = xp.arange(x.shape[0]) < n
    mean_v = xp.sum(xp.where(mask, v, 0.0)) / n
    return xp.stack([v[0] / IDM.v0, v[1] / IDM.v0, gap_lead / GAP_SCALE, v[follower] / IDM.v0,
                     gap_follow / GAP_SCALE, mean_v / IDM.v0]).astype(xp.float32)


def speed_stats(xp, v, n):
    """(mean, std) of the first ``n`` speeds of ``v`` [N]."""
    mask = xp.arange(v.shape[0]) < n
    mean = xp.sum(xp.where(mask, v, 0.0)) / n
    var = xp.sum(xp.where(mask, (v - mean) ** 2, 0.0)) / n
    return mean, xp.sqrt(var)
