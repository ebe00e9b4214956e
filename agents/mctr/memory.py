"""The knowledge base written by meta-reasoning: structured natural-language entries, merged, revised and pruned.

An entry is one belief ("In Breakout, FIRE after losing a life restarts play"), with its kind, scope, how much
evidence supports it, a confidence in [0, 1] and the decision steps at which it was created/last updated.
Entries written by the embedded meta-reasoner also carry a machine-readable ``key`` and numeric ``value`` (e.g. the
mean group-relative advantage of an action in a situation) so the embedded action reasoner can use them; entries
written by a VLM have only text.

Update rules (``KnowledgeBase.apply``), one call per meta-reasoning run:
  * merge   -- a proposal with the same kind and scope and either the same key, or (unkeyed) text whose embedding
               cosine is >= ``merge_threshold``, is folded into the existing entry: evidence adds up, keyed values
               are evidence-weighted means, confidence rises toward 1.
  * revise  -- a keyed proposal whose value has the opposite sign (both beyond ``min_effect``), or a proposal that
               names an entry in ``replaces``, replaces that entry's text/value; its confidence is cut.
  * prune   -- entries not confirmed in this run decay (``confidence *= decay``); below ``prune_below`` they go.
The file is JSONL (one entry per line), rewritten atomically (temp file + fsync + rename) after every update, so a
crash mid-write leaves the previous complete file.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from agents.mctr.retrieval import embed_text, scope_bonus, top_k
from omnitask.fileio import atomic_write_text  # temp file + fsync + rename

KINDS = ("rule", "pattern", "action_outcome")  # strategic rule / environment pattern / action-outcome relation


_UIDS = itertools.count()
_CHOICE = re.compile(r"\[\[(.*?)\|(.*?)\|(.*?)\]\]")


def render(template: str, value: float, evidence: int, min_effect: float) -> str:
    """Fill a keyed entry's text template with its current belief.

    ``{value}``/``{abs}`` (format specs allowed, e.g. ``{value:+.2f}``) and ``{evidence}`` are substituted, and a
    ``[[negative|neutral|positive]]`` block picks the wording by the sign of ``value`` (neutral when
    ``|value| < min_effect``), so a merged entry's sentence always states the merged numbers.
    """
    pick = 0 if value <= -min_effect else (2 if value >= min_effect else 1)
    text = _CHOICE.sub(lambda m: m.group(pick + 1), template)
    return text.format(value=value, abs=abs(value), evidence=evidence)


def validate_scope(scope: str) -> str:
    """Return ``scope`` if it is ``general``, ``genre:<name>`` or ``game:<name>``; raise ValueError otherwise."""
    if scope == "general" or (scope.startswith(("genre:", "game:")) and len(scope.split(":", 1)[1]) > 0):
        return scope
    raise ValueError(f"bad knowledge scope {scope!r}: allowed 'general', 'genre:<name>' or 'game:<name>'")


@dataclasses.dataclass
class MemoryConfig:
    """How the knowledge base merges, revises and forgets."""

    merge_threshold: float = 0.9  # text-embedding cosine at/above which two unkeyed entries say the same thing
    min_effect: float = 0.05  # |value| below this never counts as a contradiction (noise)
    init_confidence: float = 0.3  # confidence of a new entry (also the gain of each confirmation)
    revise_confidence_factor: float = 0.5  # confidence multiplier when an entry is revised
    decay: float = 0.97  # per-run confidence multiplier of entries not confirmed in that run
    prune_below: float = 0.05  # entries whose confidence falls below this are removed
    max_entries: int = 2000  # hard cap: the least confident entries are pruned beyond it
    embed_dim: int = 256  # dimension of the hashed text embedding used for merging and retrieval


@dataclasses.dataclass
class Proposal:
    """A candidate belief produced by a meta-reasoner (not yet in memory)."""

    kind: str  # one of KINDS
    text: str  # natural-language statement
    scope: str  # 'general' | 'genre:<name>' | 'game:<name>'
    evidence: int = 1  # number of observations behind it
    key: str = ""  # machine-readable identity (embedded meta-reasoner only), '' for free text
    value: float = 0.0  # numeric belief for keyed proposals (e.g. mean advantage)
    replaces: str = ""  # id of an entry this proposal explicitly revises ('' = none)
    template: str = ""  # keyed proposals: text template re-rendered after merges (see ``render``)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"bad knowledge kind {self.kind!r}: allowed {', '.join(KINDS)}")
        validate_scope(self.scope)
        if not self.text.strip():
            raise ValueError("a knowledge proposal needs non-empty text")
        if self.evidence < 1:
            raise ValueError(f"evidence must be >= 1, got {self.evidence}")


@dataclasses.dataclass
class Entry:
    """One stored belief. ``created``/``updated`` are agent decision steps."""

    id: str
    kind: str
    text: str
    scope: str
    evidence: int
    confidence: float
    created: int
    updated: int
    key: str = ""
    value: float = 0.0
    revisions: int = 0  # how many times a contradiction rewrote it
    template: str = ""  # keyed entries: the text template (``render``) that restates value/evidence after merges

    @classmethod
    def from_dict(cls, d: dict, where: str = "entry") -> "Entry":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(d)
        if unknown or missing:
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}; "
                             f"allowed: {sorted(names)}")
        e = cls(**d)
        if e.kind not in KINDS:
            raise ValueError(f"{where}: bad kind {e.kind!r}: allowed {', '.join(KINDS)}")
        validate_scope(e.scope)
        return e


@dataclasses.dataclass
class UpdateReport:
    """What one ``apply`` call changed (ids)."""

    added: list[str] = dataclasses.field(default_factory=list)
    merged: list[str] = dataclasses.field(default_factory=list)
    revised: list[str] = dataclasses.field(default_factory=list)
    pruned: list[str] = dataclasses.field(default_factory=list)

    @property
    def num_changes(self) -> int:
        """Entries whose content changed meaningfully (new, contradicted or forgotten); merges are confirmations."""
        return len(self.added) + len(self.revised) + len(self.pruned)


class KnowledgeBase:
    """Entries by id, with merge/revise/prune and atomic JSONL persistence (``path=None``: in memory only)."""

    def __init__(self, cfg: MemoryConfig | None = None, path: str | Path | None = None):
        self.cfg = cfg or MemoryConfig()
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, Entry] = {}
        self._next_id = 0
        self.version = 0  # bumped by every change; lets readers cache derived views
        self.uid = next(_UIDS)  # unique per instance for the whole process (id() is reused after garbage collection)
        self._vec_cache: dict[str, tuple[np.ndarray, str]] = {}  # id -> (embedding, text it was computed from)
        self._pool_cache: dict[tuple, tuple[list[Entry], np.ndarray]] = {}

    # ----------------------------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.entries)

    def by_key(self, key: str, scope: str) -> Entry | None:
        for e in self.entries.values():
            if e.key == key and e.scope == scope:
                return e
        return None

    def _vec(self, e: Entry) -> np.ndarray:
        cached = self._vec_cache.get(e.id)
        if cached is None or cached[1] != e.text:
            cached = (embed_text(e.text, self.cfg.embed_dim), e.text)
            self._vec_cache[e.id] = cached
        return cached[0]

    def retrieve(self, query: str, game: str, genre: str, k: int, scope_weight: float = 0.5,
                 kinds: Sequence[str] = KINDS) -> list[Entry]:
        """Top-``k`` entries for ``query`` by text cosine + scope bonus (this game > its genre > general)."""
        cache_key = (self.version, tuple(kinds))
        if cache_key not in self._pool_cache:
            pool = [e for e in self.entries.values() if e.kind in kinds]
            vecs = np.stack([self._vec(e) for e in pool]) if pool else np.zeros((0, self.cfg.embed_dim), np.float32)
            self._pool_cache = {cache_key: (pool, vecs)}  # [N, D]
        pool, vecs = self._pool_cache[cache_key]
        if not pool:
            return []
        bonus = np.array([scope_bonus(e.scope, game, genre, scope_weight) for e in pool], np.float32)  # [N]
        idx = top_k(embed_text(query, self.cfg.embed_dim), vecs, bonus, k)
        return [pool[i] for i in idx]

    # ----------------------------------------------------------------------------------------------- updates
    def _match(self, p: Proposal) -> Entry | None:
        if p.replaces:
            if p.replaces not in self.entries:
                return None
            return self.entries[p.replaces]
        if p.key:
            return self.by_key(p.key, p.scope)
        pv = embed_text(p.text, self.cfg.embed_dim)
        best, best_sim = None, self.cfg.merge_threshold
        for e in self.entries.values():
            if e.key or e.kind != p.kind or e.scope != p.scope:
                continue
            sim = float(self._vec(e) @ pv)
            if sim >= best_sim:
                best, best_sim = e, sim
        return best

    def apply(self, proposals: Iterable[Proposal], step: int) -> UpdateReport:
        """Fold ``proposals`` into memory at decision ``step``, decay/prune the rest, then persist atomically."""
        cfg, report, touched = self.cfg, UpdateReport(), set()
        self.version += 1
        for p in proposals:
            e = self._match(p)
            if e is None:
                eid = f"k{self._next_id:05d}"
                self._next_id += 1
                self.entries[eid] = Entry(eid, p.kind, p.text, p.scope, p.evidence, cfg.init_confidence, step, step,
                                          p.key, float(p.value), template=p.template)
                report.added.append(eid)
                touched.add(eid)
                continue
            contradicted = bool(p.replaces) or (
                bool(p.key) and abs(p.value) >= cfg.min_effect and abs(e.value) >= cfg.min_effect
                and np.sign(p.value) != np.sign(e.value))
            if contradicted:
                e.text, e.value, e.evidence = p.text, float(p.value), p.evidence
                e.template = p.template or e.template
                e.confidence *= cfg.revise_confidence_factor
                e.revisions += 1
                report.revised.append(e.id)
            else:
                total = e.evidence + p.evidence
                e.value = float((e.value * e.evidence + p.value * p.evidence) / total)
                e.evidence = total
                if p.template:  # keyed texts restate the merged numbers
                    e.template = p.template
                    e.text = render(p.template, e.value, e.evidence, cfg.min_effect)
                e.confidence = 1.0 - (1.0 - e.confidence) * (1.0 - cfg.init_confidence)
                report.merged.append(e.id)
            e.updated = step
            touched.add(e.id)
        for eid, e in list(self.entries.items()):
            if eid in touched:
                continue
            e.confidence *= cfg.decay
            if e.confidence < cfg.prune_below:
                del self.entries[eid]
                report.pruned.append(eid)
        if len(self.entries) > cfg.max_entries:
            for e in sorted(self.entries.values(), key=lambda e: e.confidence)[:len(self.entries) - cfg.max_entries]:
                del self.entries[e.id]
                report.pruned.append(e.id)
        self.save()
        return report

    # ----------------------------------------------------------------------------------------------- persistence
    def to_jsonl(self) -> str:
        header = json.dumps({"format": "mctr-knowledge-v1", "next_id": self._next_id})
        lines = [header] + [json.dumps(dataclasses.asdict(e), sort_keys=True) for e in self.entries.values()]
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path | None = None) -> None:
        """Rewrite the JSONL file atomically (no-op for an in-memory base without ``path``)."""
        target = Path(path) if path is not None else self.path
        if target is not None:
            atomic_write_text(target, self.to_jsonl())

    @classmethod
    def load(cls, path: str | Path, cfg: MemoryConfig | None = None, bind: bool = True) -> "KnowledgeBase":
        """Read a JSONL knowledge file; ``bind``: later saves go to the same file. Malformed lines are refused."""
        path = Path(path)
        kb = cls(cfg, path if bind else None)
        lines = path.read_text().splitlines()
        if not lines:
            raise ValueError(f"{path}: empty knowledge file (expected a mctr-knowledge-v1 header line)")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:1: header is not JSON ({err})") from None
        if not isinstance(header, dict) or header.get("format") != "mctr-knowledge-v1":
            raise ValueError(f"{path}:1: not a mctr-knowledge-v1 file (header {lines[0][:80]!r})")
        kb._next_id = int(header.get("next_id", 0))
        for n, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: entry is not JSON ({err})") from None
            e = Entry.from_dict(d, where=f"{path}:{n}")
            kb.entries[e.id] = e
        return kb

    def merge_from(self, other: "KnowledgeBase", scopes: Sequence[str] | None = None) -> int:
        """Copy entries of ``other`` (optionally only those whose scope is in ``scopes``) into this base.

        Used to carry seen-game knowledge over to unseen games. Returns the number of entries copied.
        """
        n = 0
        for e in other.entries.values():
            if scopes is not None and e.scope not in scopes:
                continue
            eid = f"k{self._next_id:05d}"
            self._next_id += 1
            self.entries[eid] = dataclasses.replace(e, id=eid)
            n += 1
        self.version += 1
        return n
