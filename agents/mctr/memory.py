"""The knowledge base written by meta-reasoning: structured natural-language entries, merged, revised and pruned.

An entry is one belief ("In Breakout, FIRE after losing a life restarts play"), with its kind, scope, how much
evidence supports it, a confidence in [0, 1] and the decision steps at which it was created/last updated.
Entries written by the embedded meta-reasoner also carry a machine-readable ``key`` and numeric ``value`` (e.g. the
mean group-relative advantage of an action in a situation) so the embedded action reasoner can use them; entries
written by a VLM have only text.

Update rules (``KnowledgeBase.apply``), one call per meta-reasoning run:
  * merge   -- a keyed proposal with the same kind, scope and key is folded into that entry: evidence adds up, the
               value is the evidence-weighted mean and confidence rises toward 1 (a measured confirmation).
               An unkeyed (free-text) proposal whose text embedding cosine with an unkeyed entry of the same kind and
               scope is >= ``merge_threshold`` is folded in only if both *state the same claim*: the same action
               words, the same numbers and the same negations (``claim_signature``) -- "Moving RIGHT ..." never
               merges into "Moving LEFT ...", "Do not shoot ..." never into "Shoot ...", "Rule 7 ..." never into
               "Rule 8 ...". Such a text-only match adds evidence and keeps the entry alive but never raises its
               confidence (similar wording is not evidence).
  * revise  -- a keyed proposal whose value has the opposite sign (both beyond ``min_effect``), or a free-text
               proposal that names an unkeyed entry in ``replaces``, replaces that entry's text/value; its
               confidence is cut. Free-text revisions of keyed (statistics-engine, numeric) entries are refused and
               reported (``UpdateReport.refused``): one sentence must not overwrite measured numbers.
  * set     -- a keyed proposal with ``mode='set'`` restates a whole cumulative measurement (e.g. the acting-routine
               A/B test, ``routine.py``): it replaces the entry's value and evidence (never adds them again);
               a sign flip counts as a revision, otherwise as a confirmation.
  * prune   -- entries not confirmed in this run decay (``confidence *= decay``); below ``prune_below`` they go.
The file is JSONL (a header line, then one entry per line), rewritten atomically (temp file + fsync + rename) after
every update, so a crash mid-write leaves the previous complete file. Loading validates every field's type and
range, refuses duplicate ids, and takes the next id from the highest existing one; ``recover=True`` keeps every
valid entry and reports the bad lines instead of refusing the file.
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
_ID = re.compile(r"k(\d+)")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# words that name an action or a direction (ALE action meanings and their plain-English forms)
_ACTION_WORDS = frozenset("""noop fire up down left right upright upleft downright downleft upfire downfire
    rightfire leftfire uprightfire upleftfire downrightfire downleftfire shoot shooting shoots fires firing jump
    jumps jumping wait waits waiting stay stays idle move moves moving north south east west forward backward
    accelerate brake""".split())
_NEGATIONS = frozenset("not no never none nor without avoid avoids cannot".split())


def claim_signature(text: str) -> tuple[frozenset, tuple, int]:
    """(action/direction words, numbers, negation count) of a free-text statement: two statements that differ in
    any of these make different claims however similar their wording (see ``KnowledgeBase.apply``)."""
    words = _WORD.findall(text.lower())
    actions = frozenset(w for w in words if w in _ACTION_WORDS)
    numbers = tuple(sorted(_NUMBER.findall(text)))
    negations = sum(1 for w in words if w in _NEGATIONS or w.endswith("n't"))
    return actions, numbers, negations


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
    mode: str = "merge"  # keyed: 'merge' adds a new measurement; 'set' restates a whole (cumulative) measurement

    def __post_init__(self) -> None:
        if self.mode not in ("merge", "set") or (self.mode == "set" and not self.key):
            raise ValueError(f"bad proposal mode {self.mode!r}: allowed 'merge', or 'set' for a keyed proposal")
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
    def from_dict(cls, d: object, where: str = "entry") -> "Entry":
        """Build an entry from a decoded JSON object, checking every field's type and range (ValueError names the
        first bad field and what is allowed)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: an entry must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(d)
        if unknown or missing:
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}; "
                             f"allowed: {sorted(names)}")
        for name, want in _FIELD_TYPES.items():
            if name in d and not _is_type(d[name], want):
                raise ValueError(f"{where}: field {name!r} is {type(d[name]).__name__} {d[name]!r:.40}, "
                                 f"allowed: {want.__name__}")
        e = cls(**{**d, "confidence": float(d["confidence"]), "value": float(d.get("value", 0.0))})
        if not _ID.fullmatch(e.id):
            raise ValueError(f"{where}: bad id {e.id!r}: allowed 'k' followed by digits (e.g. k00012)")
        if e.kind not in KINDS:
            raise ValueError(f"{where}: bad kind {e.kind!r}: allowed {', '.join(KINDS)}")
        try:
            validate_scope(e.scope)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if not e.text.strip():
            raise ValueError(f"{where}: empty text")
        # (updated may be below created: each game of a protocol counts its decisions from 0 in one memory)
        if e.evidence < 1 or e.created < 0 or e.updated < 0 or e.revisions < 0:
            raise ValueError(f"{where}: counts out of range (allowed: evidence >= 1, created >= 0, updated >= 0, "
                             f"revisions >= 0)")
        if not (0.0 <= e.confidence <= 1.0) or not np.isfinite(e.value):
            raise ValueError(f"{where}: confidence {e.confidence} / value {e.value} out of range (allowed: "
                             f"confidence in [0, 1], a finite value)")
        return e


_FIELD_TYPES = {"id": str, "kind": str, "text": str, "scope": str, "evidence": int, "confidence": float,
                "created": int, "updated": int, "key": str, "value": float, "revisions": int, "template": str}


def _is_type(v: object, want: type) -> bool:
    if isinstance(v, bool):  # JSON true/false are not counts or numbers here
        return False
    if want is float:
        return isinstance(v, (int, float))
    return isinstance(v, want)


@dataclasses.dataclass
class UpdateReport:
    """What one ``apply`` call changed (ids)."""

    added: list[str] = dataclasses.field(default_factory=list)
    merged: list[str] = dataclasses.field(default_factory=list)
    revised: list[str] = dataclasses.field(default_factory=list)
    pruned: list[str] = dataclasses.field(default_factory=list)
    refused: list[str] = dataclasses.field(default_factory=list)  # 'id: why' of revisions that were not applied

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
        self.load_errors: list[str] = []  # 'path:line: why' of lines skipped by load(recover=True)
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
    def _match(self, p: Proposal, claims: dict[tuple, list[str]]) -> Entry | None:
        if p.replaces:
            if p.replaces not in self.entries:
                return None
            return self.entries[p.replaces]
        if p.key:
            return self.by_key(p.key, p.scope)
        pv = embed_text(p.text, self.cfg.embed_dim)
        best, best_sim = None, self.cfg.merge_threshold
        for eid in claims.get((p.kind, p.scope, claim_signature(p.text)), ()):  # only entries making the same claim
            sim = float(self._vec(self.entries[eid]) @ pv)
            if sim >= best_sim:
                best, best_sim = self.entries[eid], sim
        return best

    def _claim_index(self) -> dict[tuple, list[str]]:
        """(kind, scope, claim signature) -> ids of unkeyed entries: the only candidates a free text may merge with."""
        index: dict[tuple, list[str]] = {}
        for e in self.entries.values():
            if not e.key:
                index.setdefault((e.kind, e.scope, claim_signature(e.text)), []).append(e.id)
        return index

    def _new_id(self) -> str:
        while f"k{self._next_id:05d}" in self.entries:  # never reuse an id (e.g. after a hand-edited file)
            self._next_id += 1
        eid = f"k{self._next_id:05d}"
        self._next_id += 1
        return eid

    def apply(self, proposals: Iterable[Proposal], step: int) -> UpdateReport:
        """Fold ``proposals`` into memory at decision ``step``, decay/prune the rest, then persist atomically."""
        cfg, report, touched = self.cfg, UpdateReport(), set()
        self.version += 1
        claims = self._claim_index()
        for p in proposals:
            e = self._match(p, claims)
            if e is not None and p.replaces and e.key and not p.key:
                report.refused.append(f"{e.id}: a free-text revision of a measured (statistics-engine) entry")
                continue
            if e is None:
                eid = self._new_id()
                self.entries[eid] = Entry(eid, p.kind, p.text, p.scope, p.evidence, cfg.init_confidence, step, step,
                                          p.key, float(p.value), template=p.template)
                report.added.append(eid)
                touched.add(eid)
                if not p.key:
                    claims.setdefault((p.kind, p.scope, claim_signature(p.text)), []).append(eid)
                continue
            if p.mode == "set":  # the same measurement restated with more data: numbers replaced, not added
                flipped = abs(p.value) >= cfg.min_effect and abs(e.value) >= cfg.min_effect and \
                    np.sign(p.value) != np.sign(e.value)
                e.text, e.value, e.evidence = p.text, float(p.value), p.evidence
                e.template = p.template or e.template
                if flipped:
                    e.confidence *= cfg.revise_confidence_factor
                    e.revisions += 1
                    report.revised.append(e.id)
                else:
                    e.confidence = 1.0 - (1.0 - e.confidence) * (1.0 - cfg.init_confidence)
                    report.merged.append(e.id)
                e.updated = step
                touched.add(e.id)
                continue
            contradicted = bool(p.replaces) or (
                bool(p.key) and abs(p.value) >= cfg.min_effect and abs(e.value) >= cfg.min_effect
                and np.sign(p.value) != np.sign(e.value))
            if contradicted:
                if not e.key:  # the revised text may make another claim: re-file it
                    claims = None
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
                if p.key:  # measured confirmation; a text-only match is not evidence that the claim is true
                    e.confidence = 1.0 - (1.0 - e.confidence) * (1.0 - cfg.init_confidence)
                report.merged.append(e.id)
            e.updated = step
            touched.add(e.id)
            if claims is None:
                claims = self._claim_index()
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
    def load(cls, path: str | Path, cfg: MemoryConfig | None = None, bind: bool = True,
             recover: bool = False) -> "KnowledgeBase":
        """Read a JSONL knowledge file; ``bind``: later saves go to the same file.

        Every entry is validated (``Entry.from_dict``); a duplicate id is an error. Strict mode (default) refuses
        the file at the first bad line. ``recover=True`` keeps every valid entry (the first of duplicate ids) and
        lists each bad line in ``kb.load_errors`` -- for resuming after e.g. a truncated line. A file whose header
        is unreadable is refused in both modes. The next id is one past the highest id in the file (or the
        header's ``next_id`` if larger), so new entries never overwrite old ones.
        """
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
        next_id = header.get("next_id", 0)
        if isinstance(next_id, bool) or not isinstance(next_id, int) or next_id < 0:
            if not recover:
                raise ValueError(f"{path}:1: header next_id {next_id!r} is not a non-negative integer")
            kb.load_errors.append(f"{path}:1: header next_id {next_id!r} ignored (not a non-negative integer)")
            next_id = 0
        for n, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{n}: entry is not JSON ({err})") from None
                e = Entry.from_dict(d, where=f"{path}:{n}")
                if e.id in kb.entries:
                    raise ValueError(f"{path}:{n}: duplicate id {e.id!r} (ids must be unique)")
            except ValueError as err:
                if not recover:
                    raise
                kb.load_errors.append(str(err))
                continue
            kb.entries[e.id] = e
        highest = max((int(_ID.fullmatch(eid).group(1)) for eid in kb.entries), default=-1)
        kb._next_id = max(next_id, highest + 1)
        return kb

    def merge_from(self, other: "KnowledgeBase", scopes: Sequence[str] | None = None) -> int:
        """Copy entries of ``other`` (optionally only those whose scope is in ``scopes``) into this base.

        Used to carry seen-game knowledge over to unseen games. Returns the number of entries copied.
        """
        n = 0
        for e in other.entries.values():
            if scopes is not None and e.scope not in scopes:
                continue
            eid = self._new_id()
            self.entries[eid] = dataclasses.replace(e, id=eid)
            n += 1
        self.version += 1
        return n
