"""Per-task reference scores and normalisation: ``(score - low) / (high - low)``.

Modes:
- ``none``: raw scores (only meaningful when every task has the same scale: one env id, e.g. CartPole contexts).
- ``human``: Atari human-normalised score (0 = random, 1 = human tester; table in ``atari_scores``).
- ``random-max``: fraction of the maximum return above random for classic control and MinAtar (0 = random policy,
  1 = the maximum; MinAtar has no maximum, so the best run in the comparison stands in and the report says so).
In both normalising modes a Meta-World task scores its success rate as is (already 0..1).
A ``--reference FILE`` (YAML ``{task or env id: {random: R, max: M}}``; ``human:`` is accepted for ``max:``)
overrides or adds references, e.g. for traffic envs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

import yaml

from omnitask.compare import atari_scores
from omnitask.config import ConfigError

MODES = ("none", "human", "random-max")


@dataclasses.dataclass(frozen=True)
class Reference:
    """The scores that normalise to 0 (``low``) and 1 (``high``); ``high=None``: the best run compared."""

    low: float
    high: float | None
    source: str


_MEASURED = ("uniform-random policy, mean of 1000 episodes measured with gymnax 1.0.1 "
             "(tests/test_compare_normalise.py re-measures CartPole)")
# "fraction of max above random": env id -> reference. Random returns measured 2026-12-01 (standard errors:
# CartPole 0.37, Acrobot 0.40, MountainCar 0, Pendulum 8.8, MinAtar <= 0.10).
RANDOM_MAX: dict[str, Reference] = {
    "classic/CartPole-v1": Reference(22.5, 500.0, f"max: the 500-step episode cap; random: {_MEASURED}"),
    "classic/Acrobot-v1": Reference(-498.7, 0.0, f"max: 0, the bound of -1/step rewards (not reachable); "
                                                 f"random: {_MEASURED}"),
    "classic/MountainCar-v0": Reference(-200.0, 0.0, f"max: 0, the bound of -1/step rewards (not reachable); "
                                                     f"random: {_MEASURED}"),
    "classic/Pendulum-v1": Reference(-1199.4, 0.0, f"max: 0, the bound of rewards <= 0; random: {_MEASURED}"),
    "minatar/Breakout": Reference(0.40, None, f"max: none exists (best run compared); random: {_MEASURED}"),
    "minatar/Asterix": Reference(0.53, None, f"max: none exists (best run compared); random: {_MEASURED}"),
    "minatar/Freeway": Reference(0.44, None, f"max: none exists (best run compared); random: {_MEASURED}"),
    "minatar/SpaceInvaders": Reference(4.12, None, f"max: none exists (best run compared); random: {_MEASURED}"),
}


def family(env_id: str) -> str:
    return env_id.split("/", 1)[0]


def atari_reference(game: str) -> Reference:
    """Human/random reference of one Atari game ('Pong', 'atari/Pong' or 'pong')."""
    from envs.atari.games import resolve_game
    rom = resolve_game(game)
    if rom not in atari_scores.ATARI_57:
        raise ConfigError(f"Atari game {game!r} has no published human score (only the Atari-57 games do); "
                          "use --normalise none or give its scores with --reference FILE")
    low, high = atari_scores.ATARI_57[rom]
    return Reference(low, high, atari_scores.SOURCE)


def load_reference_file(path: str | Path) -> dict[str, Reference]:
    """``{key: {random: R, max: M}}`` (or ``human: H``) from YAML; keys are task labels or env ids."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--reference {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--reference {path}: expected a mapping of task or env id -> {{random: R, max: M}}")
    out = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or "random" not in entry or not ({"max", "human"} & set(entry)):
            raise ConfigError(f"--reference {path}: entry {key!r} needs 'random' and 'max' (or 'human') numbers, "
                              f"got {entry!r}")
        out[str(key)] = Reference(float(entry["random"]), float(entry.get("max", entry.get("human"))),
                                  f"--reference {path}")
    return out


def reference_for(env_id: str, task: str | None, mode: str, extra: Mapping[str, Reference] = ()) -> Reference | None:
    """The reference of one task under ``mode``; None means "use the score as is" (Meta-World success, ``none``).

    Raises ConfigError naming the task and the modes that would work when no reference exists.
    """
    if mode not in MODES:
        raise ConfigError(f"--normalise {mode!r} is not known; allowed: {', '.join(MODES)}")
    if mode == "none":
        return None
    extra = dict(extra or {})
    for key in (f"{env_id}:{task}" if task else None, task, env_id):
        if key and key in extra:
            return extra[key]
    fam = family(env_id)
    if fam == "metaworld":
        return None  # success rate, already 0..1
    label = f"{env_id} task {task!r}" if task else env_id
    if mode == "human":
        if fam != "atari":
            raise ConfigError(f"--normalise human needs Atari runs (human scores exist for Atari-57 only); {label} "
                              "is not Atari: use --normalise random-max (classic control, MinAtar), none, or "
                              "--reference FILE")
        return atari_reference(task if env_id == "atari/multitask" and task else env_id)
    if env_id in RANDOM_MAX:
        return RANDOM_MAX[env_id]
    if fam == "atari":
        raise ConfigError(f"--normalise random-max: Atari games have no maximum score ({label}); use --normalise "
                          "human")
    known = ", ".join(RANDOM_MAX)
    raise ConfigError(f"--normalise random-max has no random/max reference for {label} (known: {known}); give one "
                      "with --reference FILE or use --normalise none")


def normalise(score: float, ref: Reference | None, best: float | None = None) -> float:
    """``(score - low) / (high - low)``; ``best`` stands in for a missing ``high`` (MinAtar)."""
    if ref is None:
        return score
    high = ref.high if ref.high is not None else best
    if high is None:
        raise ValueError("a reference without a maximum needs the best compared score")
    span = high - ref.low
    return (score - ref.low) / span if span else 0.0  # every run at the reference level: no progress above it
