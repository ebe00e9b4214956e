"""Parsing reasoner answers: ``<think>...</think><answer>ACTION_NAME</answer>`` -> an action index.

Anything unparseable (no answer tag, truncated text, an unknown or illegal action name) falls back to NOOP (or
action 0 when the game has no NOOP) and is reported as a fallback with the reason, so the agent can count them.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Sequence

_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.IGNORECASE | re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.IGNORECASE | re.DOTALL)


@dataclasses.dataclass(frozen=True)
class ParsedAction:
    action: int  # index into the game's action names
    fallback: bool  # True when the answer could not be used and NOOP was chosen instead
    reason: str  # '' when parsed, else why the fallback happened
    thought: str  # the <think> text ('' if absent)


def normalise_name(name: str) -> str:
    """'up-fire', 'Up Fire', 'UP_FIRE' -> 'UPFIRE' (ALE meaning names have no separators)."""
    return re.sub(r"[^A-Z]", "", name.upper())


def noop_index(action_names: Sequence[str]) -> int:
    names = [normalise_name(n) for n in action_names]
    return names.index("NOOP") if "NOOP" in names else 0


def parse_action(text: str | None, action_names: Sequence[str]) -> ParsedAction:
    """Parse a reasoner answer against the legal ``action_names`` (ALE meanings, e.g. ('NOOP', 'FIRE', ...))."""
    legal = [normalise_name(n) for n in action_names]
    noop = noop_index(action_names)
    if not text:
        return ParsedAction(noop, True, "empty answer", "")
    think = _THINK.search(text)
    thought = think.group(1).strip() if think else ""
    answers = _ANSWER.findall(text)
    if not answers:
        reason = "truncated answer (no closing </answer>)" if re.search(r"<answer>", text, re.I) else "no <answer> tag"
        return ParsedAction(noop, True, reason, thought)
    name = normalise_name(answers[-1])
    if name not in legal:
        return ParsedAction(noop, True, f"illegal action {answers[-1][:40]!r}; legal: {', '.join(action_names)}",
                            thought)
    return ParsedAction(legal.index(name), False, "", thought)


_ENTRY = re.compile(r'<entry\s+kind="([^"]*)"\s+scope="([^"]*)"\s*>(.*?)</entry>', re.IGNORECASE | re.DOTALL)
_REVISE = re.compile(r'<revise\s+id="([^"]*)"\s*>(.*?)</revise>', re.IGNORECASE | re.DOTALL)


def parse_meta(text: str | None, entries: dict) -> tuple[list, int, list[str]]:
    """Parse a meta-reasoning answer into memory Proposals.

    ``entries``: the memory's id -> Entry map (a revision inherits the kind/scope of the entry it revises).
    Returns (proposals, malformed_count, reasons). Every non-empty line that is not a well-formed entry/revise tag
    (bad kind or scope, unknown id, empty text, truncated tag) is counted as malformed and dropped.
    """
    from agents.mctr.memory import Proposal  # local: parsing stays importable without numpy-heavy modules

    proposals, reasons = [], []
    if not text:
        return [], 1, ["empty answer"]
    spans = []
    for m in _ENTRY.finditer(text):
        spans.append(m.span())
        kind, scope, body = m.group(1).strip(), m.group(2).strip(), " ".join(m.group(3).split())
        try:
            proposals.append(Proposal(kind, body, scope))
        except ValueError as err:
            reasons.append(str(err))
    for m in _REVISE.finditer(text):
        spans.append(m.span())
        eid, body = m.group(1).strip(), " ".join(m.group(2).split())
        if eid not in entries:
            reasons.append(f"revise of unknown entry id {eid!r}")
            continue
        e = entries[eid]
        if e.key:
            reasons.append(f"revise of measured entry {eid!r} refused (statistics-engine entries are read-only)")
            continue
        try:
            proposals.append(Proposal(e.kind, body, e.scope, replaces=eid))
        except ValueError as err:
            reasons.append(str(err))
    rest = text
    for a, b in sorted(spans, reverse=True):
        rest = rest[:a] + rest[b:]
    rest = _THINK.sub("", rest)
    for line in rest.splitlines():
        if line.strip():
            reasons.append(f"unparseable line {line.strip()[:60]!r}")
    return proposals, len(reasons), reasons
