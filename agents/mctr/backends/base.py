"""The one interface both reasoning backends implement (embedded offline reasoner, OpenAI-compatible VLM server).

Two levels, as in MCTR: an *action reasoner* turns what one env perceives (+ retrieved knowledge) into action
logits, and a *meta-reasoner* turns a trajectory slice into knowledge proposals for the memory.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Protocol, Sequence

import numpy as np

from agents.mctr.memory import Entry, KnowledgeBase, Proposal
from agents.mctr.perception import Obj, Situation


@dataclasses.dataclass
class Observation:
    """What the action reasoner gets for one env at one decision."""

    game: str  # e.g. 'Breakout'
    genre: str  # e.g. 'paddle' (see evaluation.GENRES)
    frames: np.ndarray  # [K, 210, 160, 3] uint8, the last K RGB frames, oldest first
    objects: list[Obj]  # motion-matched objects of the newest frame
    situation: Situation
    action_names: tuple[str, ...]  # ALE action meanings, index = action id
    knowledge: list[Entry]  # retrieved entries (empty without memory)
    moves: np.ndarray  # [A, 2] float32 learned player displacement per action (zeros while unknown)
    examples: list[dict] = dataclasses.field(default_factory=list)  # in-context examples (ICL baseline only)


@dataclasses.dataclass
class ReasonerOutput:
    logits: np.ndarray  # [B, A] float32 action preferences (added, scaled, to the trainable head's logits)
    fallbacks: int = 0  # answers that fell back to NOOP
    fallback_reasons: list[str] = dataclasses.field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # summed request latency (wall time is lower with concurrency)
    thoughts: list[str] = dataclasses.field(default_factory=list)
    finish_reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # server's, + 'failed'


@dataclasses.dataclass
class Transition:
    """One real decision of one env, as the meta-reasoner sees it."""

    situation: Situation
    action: str  # action name
    reward: float
    life_lost: bool
    motion: list[tuple[str, float, float]]  # (object signature, dx, dy) of matched objects after the action


@dataclasses.dataclass
class BranchOutcome:
    """One branched rollout of a test-time-RL group: first action and its group-relative advantage."""

    situation: Situation
    action: str
    towardness: float  # how much the first action moves the player toward the target, in [-1, 1]
    ret: float  # branch return (reward minus life-loss penalty)
    advantage: float  # (ret - group mean) / (group std + eps)


@dataclasses.dataclass
class TrajectorySlice:
    game: str
    genre: str
    action_names: tuple[str, ...]
    transitions: list[Transition]
    branches: list[BranchOutcome]
    frames: np.ndarray | None = None  # [K, 210, 160, 3] uint8 a few recent frames (VLM meta-reasoning only)
    # acting-routine A/B test of this game so far (cumulative, routine.py): (routine, interval return) per
    # informative interval, and the routine verdicts the memory held per scope when this game started
    routine_trials: list = dataclasses.field(default_factory=list)
    routine_carried: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class MetaOutput:
    proposals: list[Proposal]
    malformed: int = 0  # proposals that could not be parsed (VLM) and were dropped
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    failed: int = 0  # calls that got no answer (this run's VLM meta-reasoning was skipped)
    errors: list[str] = dataclasses.field(default_factory=list)  # why they failed


class ActionReasoner(Protocol):
    def propose(self, observations: Sequence[Observation]) -> ReasonerOutput: ...


class MetaReasoner(Protocol):
    def reflect(self, traj: TrajectorySlice, memory: KnowledgeBase, step: int) -> MetaOutput: ...
