"""Reasoning backends: ``embedded`` (offline, default) and ``openai_http`` (a VLM behind an OpenAI-compatible API)."""
from __future__ import annotations

from agents.mctr.backends.base import MetaOutput, TrajectorySlice
from agents.mctr.backends.embedded import EmbeddedActionReasoner, EmbeddedMetaReasoner
from agents.mctr.memory import KnowledgeBase


class CombinedMetaReasoner:
    """VLM meta-reasoning plus the embedded statistics (the embedded entries drive perception and branch policy)."""

    def __init__(self, *reasoners):
        self.reasoners = reasoners

    def reflect(self, traj: TrajectorySlice, memory: KnowledgeBase, step: int) -> MetaOutput:
        total = MetaOutput([])
        for r in self.reasoners:
            out = r.reflect(traj, memory, step)
            total.proposals += out.proposals
            total.malformed += out.malformed
            total.prompt_tokens += out.prompt_tokens
            total.completion_tokens += out.completion_tokens
            total.latency_s += out.latency_s
            total.failed += out.failed
            total.errors += out.errors
        return total


def make_backends(cfg):
    """(action_reasoner, meta_reasoner) for an ``MCTRConfig``: the VLM server if ``server.base_url`` is set."""
    if cfg.server.base_url:
        from agents.mctr.backends.openai_http import ChatClient, OpenAIActionReasoner, OpenAIMetaReasoner

        client = ChatClient(cfg.server)
        return (OpenAIActionReasoner(cfg.server, client),
                CombinedMetaReasoner(OpenAIMetaReasoner(cfg.server, client), EmbeddedMetaReasoner(cfg.embedded)))
    return EmbeddedActionReasoner(cfg.embedded), EmbeddedMetaReasoner(cfg.embedded)
