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
    timeout_s: float = 60.0  # per-request timeout
    max_retries: int = 3  # retries on 5xx, 429, timeouts and connection errors
    backoff_s: float = 1.0  # first retry delay; doubles per retry (plus up to 25% jitter)
    concurrency: int = 8  # parallel requests (one per env at a decision)
    text_only: bool = False  # describe frames through the extracted object list instead of sending images
    max_tokens: int = 512  # completion budget of an action answer
    meta_max_tokens: int = 1024  # completion budget of a meta-reasoning answer
    temperature: float = 0.2  # sampling temperature
    chosen_logit: float = 3.0  # reasoner logit of the answered action (others 0) inside the policy


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
