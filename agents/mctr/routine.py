"""Meta-level knowledge that transfers across games: *which acting routine pays off*, measured, not assumed.

Two routines, each switched on or off per env for the real decisions of one test-time-RL interval (the
``ttrl.every`` decisions after a branched group was rolled out from a cloned emulator state); both act only where
the action reasoner is undecided, so a decided reasoner (e.g. every parsed VLM answer) is never overridden:
  * ``replay_best_branch`` -- execute the action sequence of the group's best branch (highest return minus
    life-loss penalty). The clone includes the emulator and sticky-action RNG, so replaying it reproduces that
    branch exactly up to the next branching point. Only *informative* intervals (the group's branch returns
    differed) take part: otherwise there is no best branch.
  * ``hold_action`` -- keep the sampled action for ``ttrl.commit`` decisions instead of sampling at every
    decision (temporally extended exploration; the branches are judged the same way, each repeats its first action
    for ``commit`` decisions).
Off, the agent acts as without routines (reasoner where decided, else a sample of reasoner + head).

Measurement (an A/B test the agent runs itself, per routine): each interval's on/off assignment gets a real return
(reward minus ``life_loss_penalty`` per life lost) over a window of ``every`` decisions that starts ``horizon -
every`` decisions after the branching point: rewards land several decisions after the actions that earn them (a
shot travels up the screen), the branches were judged over ``horizon`` decisions, and the shifted windows of
successive intervals do not overlap, so no reward is credited to two trials of one routine. The statistic is the
standardised mean difference d = (mean_on - mean_off) / pooled SD, with evidence n_eff = 1 / (1/n_on + 1/n_off),
so ``|d| * sqrt(n_eff)`` is the z-score of the difference -- the same significance gate (``embedded.min_z``) as
every other measured entry. Keys name the routine, never an action index or name, so an entry means the same thing
in every game.

Assignment per env and routine: with no significant knowledge, on and off alternate (a balanced measurement); when
the memory holds a significant verdict (this game's entry first, else the genre's, else the general one) the
preferred setting runs and every ``PROBE_EVERY``-th interval runs the other, so this game's own measurement keeps
accruing and overrides carried knowledge as soon as it is significant (fast override on contradiction). The two
routines alternate on different counters (replay: informative intervals; hold: all intervals), so their settings
are crossed rather than confounded.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from agents.mctr.memory import KnowledgeBase, Proposal, render

ROUTINES = ("replay_best_branch", "hold_action")
OFF, ON = 0, 1
PROBE_EVERY = 4  # with a significant verdict, every 4th interval runs the other setting
_WHAT = {"replay_best_branch": "replaying the best of the branched rollouts",
         "hold_action": "holding each sampled action for several decisions"}


def key(name: str) -> str:
    return f"routine|{name}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A routine measurement: standardised difference (replay - default) and its effective sample size."""

    value: float
    evidence: float

    @property
    def z(self) -> float:
        return abs(self.value) * float(np.sqrt(max(self.evidence, 0.0)))


def measure(trials: Sequence[tuple[int, float]]) -> Verdict | None:
    """[(setting, window return)] -> Verdict (on - off), or None until each setting has 2 trials and returns vary."""
    r = np.array([ret for arm, ret in trials if arm == ON], np.float64)
    d = np.array([ret for arm, ret in trials if arm == OFF], np.float64)
    if len(r) < 2 or len(d) < 2:
        return None
    pooled_var = (((r - r.mean()) ** 2).sum() + ((d - d.mean()) ** 2).sum()) / (len(r) + len(d) - 2)
    if pooled_var <= 1e-12:
        return None
    return Verdict(float((r.mean() - d.mean()) / np.sqrt(pooled_var)), 1.0 / (1.0 / len(r) + 1.0 / len(d)))


def pool(a: Verdict | None, b: Verdict | None) -> Verdict | None:
    """Evidence-weighted pooling of two independent measurements (games) of the same effect."""
    if a is None or b is None:
        return a or b
    n = a.evidence + b.evidence
    return Verdict((a.value * a.evidence + b.value * b.evidence) / n, n)


def scopes(game: str, genre: str) -> tuple[str, str, str]:
    return f"game:{game}", f"genre:{genre}", "general"


def stored(memory: KnowledgeBase | None, name: str, scope: str) -> Verdict | None:
    if memory is None:
        return None
    e = memory.by_key(key(name), scope)
    return None if e is None else Verdict(e.value, float(e.evidence))


def preferred(memory: KnowledgeBase | None, name: str, game: str, genre: str, min_z: float) -> int | None:
    """The setting (ON/OFF) of routine ``name`` the memory says pays off: this game's significant verdict first,
    then the genre's, then the general one; None without a significant verdict."""
    for scope in scopes(game, genre):
        v = stored(memory, name, scope)
        if v is not None and v.z >= min_z:
            return ON if v.value > 0 else OFF
    return None


def assign(pref: int | None, count: int) -> int:
    """Setting of an env's ``count``-th eligible interval (0-based) given the preferred setting."""
    if pref is None:
        return ON if count % 2 == 0 else OFF
    return 1 - pref if count % PROBE_EVERY == PROBE_EVERY - 1 else pref


def proposals(trials: dict[str, list[tuple[int, float]]], carried: dict[tuple[str, str], Verdict | None],
              game: str, genre: str) -> list[Proposal]:
    """Per routine: an entry stating this game's cumulative measurement and, for genre and general scope, the
    knowledge carried in at the start of this game (``carried[(routine, scope)]``) pooled with it.
    ``mode='set'``: each proposal restates a whole measurement (the game's trials are cumulative), so it replaces
    the stored numbers instead of being added to them again."""
    out = []
    for name in ROUTINES:
        own = measure(trials.get(name, ()))
        if own is None:
            continue
        for scope in scopes(game, genre):
            v = own if scope.startswith("game:") else pool(carried.get((name, scope)), own)
            where = {"game": game, "genre": f"{genre} games"}.get(scope.split(":")[0], "Atari games in general")
            template = (f"In {where}, {_WHAT[name]} (instead of acting as usual where the action reasoner is "
                        f"undecided) [[loses reward|makes no clear difference|earns more reward]] (standardised "
                        f"difference {{value:+.2f}}, effective sample size {{evidence}} intervals).")
            n = max(1, int(round(v.evidence)))
            out.append(Proposal("rule", render(template, v.value, n, 0.05), scope, n, key=key(name), value=v.value,
                                template=template, mode="set"))
    return out
