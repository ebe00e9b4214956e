"""The MCTR agent's typed config (the ``mctr:`` section of an experiment YAML)."""
from __future__ import annotations

import dataclasses

from agents.mctr.backends.embedded import EmbeddedConfig
from agents.mctr.memory import MemoryConfig
from agents.mctr.scheduler import SchedulerConfig
from agents.mctr.ttrl import TTRLConfig


@dataclasses.dataclass
class ServerConfig:
    """An OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama). Empty ``base_url``: embedded backend."""

    base_url: str = ""  # e.g. http://127.0.0.1:8000/v1 (vLLM) or http://127.0.0.1:11434/v1 (Ollama); '' = offline
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"  # model name the server serves
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the API key (never put keys in configs)
    timeout_s: float = 60.0  # hard deadline of one attempt: connect + send + the whole reply, however it trickles
    call_deadline_s: float = 180.0  # hard deadline of one call: all attempts and waits between them
    max_retries: int = 3  # retries on 408, 409, 429, 5xx, timeouts and connection errors
    backoff_s: float = 1.0  # first retry delay; doubles per retry (plus up to 25% jitter); >= Retry-After
    max_retry_after_s: float = 60.0  # a longer Retry-After ends the call (counted as failed) instead of waiting
    max_response_bytes: int = 4_000_000  # a larger reply is cut off and counted as malformed
    concurrency: int = 8  # parallel requests (one per env at a decision)
    text_only: bool = False  # describe frames through the extracted object list instead of sending images
    max_tokens: int = 512  # completion budget of an action answer
    meta_max_tokens: int = 1024  # completion budget of a meta-reasoning answer
    temperature: float = 0.2  # sampling temperature
    chosen_logit: float = 3.0  # reasoner logit of the answered action (others 0); must be >= ttrl.obey_margin

    def __post_init__(self) -> None:
        for name in ("timeout_s", "call_deadline_s", "max_response_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"mctr.server.{name} must be > 0, got {getattr(self, name)}")
        if self.call_deadline_s < self.timeout_s:
            raise ValueError(f"mctr.server.call_deadline_s ({self.call_deadline_s}) must be >= timeout_s "
                             f"({self.timeout_s})")
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("mctr.server.max_retries, backoff_s and max_retry_after_s must be >= 0")


@dataclasses.dataclass
class MCTRConfig:
    """Metacognitive agent with test-time reasoning (see agents/mctr/README.md)."""

    server: ServerConfig = dataclasses.field(default_factory=ServerConfig)
    memory: MemoryConfig = dataclasses.field(default_factory=MemoryConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    ttrl: TTRLConfig = dataclasses.field(default_factory=TTRLConfig)
    embedded: EmbeddedConfig = dataclasses.field(default_factory=EmbeddedConfig)
    use_memory: bool = True  # False: no retrieval and no meta-reasoning (the "no memory" ablation)
    branching: bool = True  # clone/restore branched rollouts (needed by test-time RL and action-outcome statistics)
    retrieval_k: int = 16  # entries retrieved per env and decision
    in_context_examples: int = 0  # > 0: the in-context-examples baseline (that many recent branch outcomes)
    frames: int = 3  # RGB frames the action reasoner sees (oldest first)
    phase_window: int = 6  # decisions after an episode start / life loss that count as that phase
    decisions_per_step: int = 16  # real decisions (per env) per trainer step
    memory_init: str = ""  # knowledge JSONL to start from (e.g. a seen-games run's knowledge.jsonl)
    genre: str = ""  # genre of the game ('' = look it up in evaluation.GENRES)
    eval_max_decisions: int = 2000  # cap on decisions per evaluation episode
    log_all_scheduler_decisions: bool = True  # also log the scheduler's "skip" decisions (one JSON line each)

    def __post_init__(self) -> None:
        if self.server.chosen_logit < self.ttrl.obey_margin:
            raise ValueError(f"mctr.server.chosen_logit ({self.server.chosen_logit}) must be >= mctr.ttrl.obey_margin "
                             f"({self.ttrl.obey_margin}), else the VLM's answers would not be executed")
