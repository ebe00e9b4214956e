"""The embedded offline backend: a compact non-LLM reasoner that needs no model download and runs on CPU.

Action reasoning: the retrieved knowledge entries are turned into action logits --
  * action-outcome entries (``ao|<situation>|<ACTION>``, value = mean group-relative advantage of that first action
    in that situation) add ``ao_scale * value * n / (n + prior_evidence)`` (n = evidence: a shrinkage estimate, so
    a handful of noisy branches barely moves the policy) to the action's logit when their situation matches and the
    effect is significant (``|value| * sqrt(n) >= min_z``; group-normalised advantages have about unit variance);
  * the strategic rule ``approach`` (value = how much moving toward the nearest moving object raised the advantage)
    adds ``rule_scale * confidence * value * towardness(action)``, where towardness comes from the learned player
    motion (``move|<ACTION>|x/y`` pattern entries);
  * component rules (``comp|<C>``, value = mean advantage of first actions that contain joystick component C --
    FIRE, UP, DOWN, LEFT or RIGHT -- minus that of first actions without it) add
    ``comp_scale * value * n / (n + prior_evidence)`` to every action containing C when significant. They pool
    evidence across the actions sharing a component (in an 18-action game each action alone is tried rarely), so
    they become significant long before per-action entries; a game-scoped rule wins over a genre-scoped one;
  * in the in-context-examples baseline, raw recent examples replace the entries (no abstraction, no persistence).
Meta-reasoning: templated natural-language rules induced from action-outcome statistics of a trajectory slice --
which object the actions move (the player) and how, which first actions did better than their branch group in
which situation, whether approaching the nearest moving object pays off -- and the game-general verdict of the
acting-routine A/B test (``routine.py``: does replaying the best branched rollout earn more than acting as usual).
Only that verdict acts across games; the action-keyed statistics act only in the game they were measured in. Each entry's text is an English
sentence; its key/value make it machine-usable.
"""
from __future__ import annotations

import collections
import dataclasses
from collections import defaultdict
from typing import Sequence

import numpy as np

from agents.mctr import routine
from agents.mctr.backends.base import MetaOutput, Observation, ReasonerOutput, TrajectorySlice
from agents.mctr.memory import Entry, KnowledgeBase, Proposal, render


@dataclasses.dataclass
class EmbeddedConfig:
    """The embedded reasoner's knobs."""

    ao_scale: float = 3.0  # logit per unit of (shrunk) mean advantage of an action-outcome entry
    prior_evidence: float = 8.0  # shrinkage: an entry's value counts with weight evidence / (evidence + this)
    min_z: float = 2.0  # an entry acts only if |value| * sqrt(evidence) >= this (advantages have ~unit variance)
    rule_scale: float = 2.0  # logit per unit of approach-rule value times towardness
    min_branches: int = 2  # branch outcomes needed before an action-outcome entry is written
    min_motion_samples: int = 24  # transitions needed before the player is identified
    player_r2: float = 0.25  # share of an object's motion variance the actions must explain to call it the player
    min_rule_samples: int = 8  # branch outcomes with a target needed for the approach rule
    min_rule_effect: float = 0.1  # |regression slope| below which no approach rule is written
    comp_scale: float = 3.0  # logit per unit of (shrunk) advantage difference of a component rule
    min_comp_branches: int = 4  # branch outcomes needed on each side (with / without C) before a component rule


# ------------------------------------------------------------------------------------------ knowledge helpers
_VIEW_CACHE: dict = {}


def _cached(kind: str, memory: KnowledgeBase, game: str, extra: tuple, fn):
    key = (kind, memory.uid, memory.version, game, extra)
    if key not in _VIEW_CACHE:
        if len(_VIEW_CACHE) > 256:
            _VIEW_CACHE.clear()
        _VIEW_CACHE[key] = fn()
    return _VIEW_CACHE[key]


def player_signature(memory: KnowledgeBase | None, game: str) -> str | None:
    """The object signature the memory believes is the player in ``game`` (None while unknown)."""
    if memory is None:
        return None
    return _cached("player", memory, game, (), lambda: _player_signature(memory, game))


def _player_signature(memory: KnowledgeBase, game: str) -> str | None:
    best, score = None, 0.0
    for e in memory.entries.values():
        if e.kind == "pattern" and e.scope == f"game:{game}" and e.key.startswith("player|"):
            s = e.value * e.confidence
            if s > score:
                best, score = e.key.split("|", 1)[1], s
    return best


def move_table(memory: KnowledgeBase | None, game: str, action_names: Sequence[str]) -> np.ndarray:
    """[A, 2] learned player displacement (px per decision) for each action (zeros while unknown)."""
    if memory is None:
        return np.zeros((len(action_names), 2), np.float32)
    return _cached("moves", memory, game, tuple(action_names), lambda: _move_table(memory, game, action_names))


def _move_table(memory: KnowledgeBase, game: str, action_names: Sequence[str]) -> np.ndarray:
    moves = np.zeros((len(action_names), 2), np.float32)
    index = {n: i for i, n in enumerate(action_names)}
    for e in memory.entries.values():
        if e.kind == "pattern" and e.scope == f"game:{game}" and e.key.startswith("move|"):
            _, name, axis = e.key.split("|")
            if name in index:
                moves[index[name], 0 if axis == "x" else 1] = e.value
    return moves


_COMPONENTS = ("UP", "DOWN", "LEFT", "RIGHT", "FIRE")


def components(action_name: str) -> frozenset[str]:
    """Joystick components of an ALE action meaning: 'UPRIGHTFIRE' -> {UP, RIGHT, FIRE}; 'NOOP' -> {}."""
    return frozenset(c for c in _COMPONENTS if c in action_name.upper())


def towardness(moves: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    """[A] in [-1, 1]: cosine-like alignment of each action's player motion with the target offset."""
    off = np.asarray(offset, np.float32)
    norm = float(np.linalg.norm(off))
    speed = float(np.max(np.linalg.norm(moves, axis=1))) if moves.size else 0.0
    if norm < 1e-6 or speed < 1e-6:
        return np.zeros(moves.shape[0], np.float32)
    return (moves @ off / (norm * speed)).astype(np.float32)


# ------------------------------------------------------------------------------------------ action reasoning
class EmbeddedActionReasoner:
    """Knowledge entries (or raw examples) -> action logits; no learning of its own."""

    def __init__(self, cfg: EmbeddedConfig | None = None):
        self.cfg = cfg or EmbeddedConfig()

    def _logits_one(self, obs: Observation) -> np.ndarray:
        cfg, names = self.cfg, list(obs.action_names)
        logits = np.zeros(len(names), np.float32)
        sit = obs.situation
        toward = towardness(obs.moves, sit.offset)
        # Numeric action statistics act only in the game they were measured in: keyed by action names whose
        # meaning differs between games (Assault's UP fires, Phoenix's DOWN raises a shield), measured on a few
        # branched tries, other games' statistics forced actions that were wrong here (agents/mctr/README.md,
        # "Why the memory did not help"). What transfers is the acting-routine verdict (routine.py).
        own = f"game:{obs.game}"
        knowledge = [e for e in obs.knowledge if e.scope == own]
        comp_rules = {e.key: e for e in knowledge if e.kind == "rule" and e.key.startswith("comp|")}
        for e in comp_rules.values():
            comp = e.key.split("|", 1)[1]
            if abs(e.value) * np.sqrt(e.evidence) >= cfg.min_z:
                shrink = e.evidence / (e.evidence + cfg.prior_evidence)
                logits += np.array([cfg.comp_scale * shrink * e.value if comp in components(n) else 0.0
                                    for n in names], np.float32)
        for e in knowledge:
            if e.kind == "action_outcome" and e.key.startswith("ao|"):
                _, cond, name = e.key.split("|")
                if name in names and (cond == sit.key or cond == sit.phase) and \
                        abs(e.value) * np.sqrt(e.evidence) >= cfg.min_z:
                    shrink = e.evidence / (e.evidence + cfg.prior_evidence)  # few tries -> little trust
                    logits[names.index(name)] += cfg.ao_scale * shrink * e.value
            elif e.kind == "rule" and e.key == "approach" and sit.horiz and \
                    abs(e.value) * np.sqrt(e.evidence) >= cfg.min_z:
                logits += cfg.rule_scale * e.confidence * e.value * toward
        if obs.examples:  # in-context examples: per-action mean advantage among examples of this situation
            sums, counts = np.zeros(len(names)), np.zeros(len(names))
            for ex in obs.examples:
                if ex["situation"] == sit.key and ex["action"] in names:
                    sums[names.index(ex["action"])] += ex["advantage"]
                    counts[names.index(ex["action"])] += 1
            logits += (cfg.ao_scale * sums / np.maximum(counts, 1.0) * (counts > 0)).astype(np.float32)
        return logits

    def propose(self, observations: Sequence[Observation]) -> ReasonerOutput:
        return ReasonerOutput(np.stack([self._logits_one(o) for o in observations]).astype(np.float32))


# ------------------------------------------------------------------------------------------ meta-reasoning
class EmbeddedMetaReasoner:
    """Induces templated natural-language knowledge from the action-outcome statistics of a trajectory slice."""

    def __init__(self, cfg: EmbeddedConfig | None = None, motion_window: int = 4096):
        self.cfg = cfg or EmbeddedConfig()
        # rolling window of (game, signature, action, dx, dy): player identification needs varied actions, which
        # the early (still random) decisions provide, so it looks further back than one slice
        self._motion: collections.deque = collections.deque(maxlen=motion_window)

    def _player(self, traj: TrajectorySlice) -> list[Proposal]:
        """Which object signature moves with the actions (share of motion variance explained by the action)."""
        new = 0
        for t in traj.transitions:
            for sig, dx, dy in t.motion:
                self._motion.append((traj.game, sig, t.action, dx, dy))
                new += 1
        by_sig: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
        for game, sig, action, dx, dy in self._motion:
            if game == traj.game:
                by_sig[sig].append((action, dx, dy))
        out = []
        scope = f"game:{traj.game}"
        best_sig, best_r2, best_rows = None, self.cfg.player_r2, None
        for sig, rows in by_sig.items():
            if len(rows) < self.cfg.min_motion_samples:
                continue
            d = np.array([[dx, dy] for _, dx, dy in rows], np.float32)  # [N, 2]
            total = float(((d - d.mean(0)) ** 2).sum())
            if total < 1e-6 or float(np.abs(d).mean()) < 0.25:
                continue
            groups = defaultdict(list)
            for (a, _, _), row in zip(rows, d):
                groups[a].append(row)
            if len(groups) < 2:
                continue
            between = sum(len(g) * float(((np.mean(g, 0) - d.mean(0)) ** 2).sum()) for g in groups.values())
            r2 = between / total
            if r2 > best_r2:
                best_sig, best_r2, best_rows = sig, r2, groups
        if best_sig is None:
            return out
        n = max(1, min(new, sum(len(g) for g in best_rows.values())))  # evidence: only the new observations
        color, size = best_sig.split("-")
        out.append(Proposal("pattern", f"In {traj.game}, the #{color} object (size class {size}) moves with the "
                            f"joystick: it is the player (actions explain {best_r2:.0%} of its motion).", scope,
                            n, key=f"player|{best_sig}", value=float(best_r2)))
        for a, rows in best_rows.items():
            mx, my = np.mean(rows, 0)
            k = max(1, min(len(rows), n))
            for axis, v in (("x", mx), ("y", my)):
                words = "[[left|horizontally|right]]" if axis == "x" else "[[up|vertically|down]]"
                template = f"In {traj.game}, {a} moves the player {{abs:.1f}} px {words} per decision."
                out.append(Proposal("pattern", render(template, float(v), k, 0.05), scope, k,
                                    key=f"move|{a}|{axis}", value=float(v), template=template))
        return out

    def _action_outcomes(self, traj: TrajectorySlice) -> list[Proposal]:
        out = []
        for level in ("game", "genre"):
            groups: dict[tuple[str, str], list[float]] = defaultdict(list)
            texts: dict[str, str] = {}
            for b in traj.branches:
                cond = b.situation.key if level == "game" else b.situation.phase
                groups[(cond, b.action)].append(b.advantage)
                texts[cond] = b.situation.text() if level == "game" else {
                    "start": "at the start of an episode", "life_lost": "just after losing a life",
                    "play": "during play"}[b.situation.phase]
            where = traj.game if level == "game" else f"{traj.genre} games"
            scope = f"game:{traj.game}" if level == "game" else f"genre:{traj.genre}"
            for (cond, a), advs in groups.items():
                if len(advs) < self.cfg.min_branches:
                    continue
                v = float(np.mean(advs))
                template = (f"In {where}, {texts[cond]}, {a} [[works worse than the alternatives|makes no clear "
                            f"difference|works better than the alternatives]] (mean advantage {{value:+.2f}} over "
                            f"{{evidence}} branched tries).")
                out.append(Proposal("action_outcome", render(template, v, len(advs), 0.05), scope, len(advs),
                                    key=f"ao|{cond}|{a}", value=v, template=template))
        return out

    def _approach(self, traj: TrajectorySlice) -> list[Proposal]:
        rows = [(b.towardness, b.advantage) for b in traj.branches if b.situation.horiz]
        if len(rows) < self.cfg.min_rule_samples:
            return []
        x, y = np.array(rows, np.float32).T
        var = float(((x - x.mean()) ** 2).mean())
        if var < 1e-3:
            return []
        slope = float(((x - x.mean()) * (y - y.mean())).mean() / var)
        if abs(slope) < self.cfg.min_rule_effect:
            return []
        # evidence = the slope's precision n * var(x) / residual variance, so |slope| * sqrt(evidence) is its
        # t-statistic and the shared significance gate is a real test (it used to treat the raw slope as a z-score)
        resid = y - y.mean() - slope * (x - x.mean())
        precision = len(rows) * var / max(float((resid ** 2).sum()) / max(len(rows) - 2, 1), 1e-6)
        n = max(1, int(round(precision)))
        out = []
        for scope, where in ((f"game:{traj.game}", traj.game), (f"genre:{traj.genre}", f"{traj.genre} games")):
            template = (f"In {where}, moving the player [[away from|toward or away from|toward]] the nearest moving "
                        f"object [[pays off|makes little difference|pays off]] (advantage slope {{value:+.2f}} over "
                        f"{{evidence}} units of precision).")
            out.append(Proposal("rule", render(template, slope, n, 0.05), scope, n, key="approach",
                                value=slope, template=template))
        return out

    def _components(self, traj: TrajectorySlice) -> list[Proposal]:
        """Does including joystick component C (FIRE, UP, ...) in the first action raise the advantage?

        value = mean advantage with C - mean advantage without C; evidence = the effective sample size
        1 / (1/n_with + 1/n_without), so ``|value| * sqrt(evidence)`` is the z-score of the difference
        (group-normalised advantages have about unit variance) -- the same significance gate as other entries."""
        out = []
        present = set().union(*(components(n) for n in traj.action_names)) if traj.action_names else set()
        for comp in sorted(present):
            with_c = [b.advantage for b in traj.branches if comp in components(b.action)]
            without = [b.advantage for b in traj.branches if comp not in components(b.action)]
            if min(len(with_c), len(without)) < self.cfg.min_comp_branches:
                continue
            value = float(np.mean(with_c) - np.mean(without))
            n_eff = max(1, int(round(1.0 / (1.0 / len(with_c) + 1.0 / len(without)))))
            for scope, where in ((f"game:{traj.game}", traj.game), (f"genre:{traj.genre}", f"{traj.genre} games")):
                template = (f"In {where}, actions that include {comp} [[work worse than|work as well as|work better "
                            f"than]] actions without it (advantage difference {{value:+.2f}}, effective sample size "
                            f"{{evidence}} branched tries).")
                out.append(Proposal("rule", render(template, value, n_eff, 0.05), scope, n_eff, key=f"comp|{comp}",
                                    value=value, template=template))
        return out

    def reflect(self, traj: TrajectorySlice, memory: KnowledgeBase, step: int) -> MetaOutput:
        del memory, step  # the embedded meta-reasoner proposes from statistics; KnowledgeBase.apply merges/revises
        return MetaOutput(self._player(traj) + self._action_outcomes(traj) + self._approach(traj) +
                          self._components(traj) +
                          routine.proposals(traj.routine_trials, traj.routine_carried, traj.game, traj.genre))


def knowledge_for(memory: KnowledgeBase | None, game: str, genre: str, query: str, k: int) -> list[Entry]:
    """Top-k rules/action-outcome entries for ``query`` (patterns are read directly by the perception helpers)."""
    if memory is None or k <= 0:
        return []
    found = memory.retrieve(query, game, genre, k, kinds=("rule", "action_outcome"))
    ids = {e.id for e in found}
    return found + [e for e in component_rules(memory, game, genre) if e.id not in ids]


def component_rules(memory: KnowledgeBase, game: str, genre: str) -> list[Entry]:
    """The component rules (``comp|C``) scoped to ``game`` or its genre: few, and they apply in every situation,
    so they are always supplied rather than competing for the top-k retrieval slots."""
    scopes = (f"game:{game}", f"genre:{genre}")
    return _cached("comp", memory, game, (genre,), lambda: [
        e for e in memory.entries.values() if e.kind == "rule" and e.key.startswith("comp|") and e.scope in scopes])
