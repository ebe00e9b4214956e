"""MBTL's typed config (the YAML section ``mbtl:``).

The experiment's shared sections keep their usual meaning: ``env.id`` / ``env.num_envs`` (envs per trained
policy) / ``env.options``; ``seed``; ``run.out_dir`` / ``run.name``; for the online MBTL Trainer,
``run.total_env_steps`` is the total training budget (it trains ``total_env_steps / steps_per_task`` contexts).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from agents.mbtl.contexts import ContextAxis
from agents.mbtl.selector import SelectorConfig
from agents.ppo.config import PPOConfig
from omnitask.executors import EXECUTORS
from omnitask.schema import section_as

SOURCE_TRAINERS = ("ppo_jax", "run_loop")
NORMALISATIONS = ("global", "per_target")


@dataclasses.dataclass
class MBTLConfig:
    """Model-Based Transfer Learning: which contexts, how each source is trained, how tasks are selected."""

    axes: List[ContextAxis] = dataclasses.field(default_factory=lambda: [ContextAxis()])
    """Varied context variables; the context grid is their Cartesian product (N = prod(num))."""
    source_trainer: str = "ppo_jax"
    """'ppo_jax': vmapped PPO over many contexts at once (JAX-native envs); 'run_loop': any suite agent through
    the ordinary run loop, one source at a time (host envs: traffic, Meta-World)."""
    base_agent: str = "ppo"
    """Agent used by the 'run_loop' source trainer (a key of omnitask.agents_table.AGENTS)."""
    base_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    """The base agent's own config section for 'run_loop' (validated by that agent's config class)."""
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    """PPO hyper-parameters for the 'ppo_jax' source trainer."""
    steps_per_task: int = 100_000
    """Training budget (env steps) of one source policy."""
    eval_episodes: int = 10
    """Episodes per (source, target) zero-shot evaluation."""
    seeds: List[int] = dataclasses.field(default_factory=lambda: [0])
    """Training seeds of the transfer matrix (the paper uses 3); replay averages the matrix over them."""
    chunk_size: int = 10
    """Sources trained together in one job ('ppo_jax' vmaps them); results depend on (seed, chunk layout)."""
    executor: str = "local"
    """Where jobs run: 'local' process pool, 'ray' (local or existing cluster) or 'inline' (this process)."""
    max_workers: int = 2
    """Parallel jobs (process-pool workers / Ray CPUs)."""
    ray_address: Optional[str] = None
    """Existing Ray cluster address (None: start a local Ray)."""
    multitask: bool = True
    """Also train the multi-task baseline (one policy over all contexts) when building the matrix."""
    multitask_steps: int = 0
    """Multi-task budget in env steps (0: N * steps_per_task, the same total budget as independent training)."""
    perf_low: Optional[float] = None
    """Raw return mapped to 0 when normalising (None: the matrix minimum)."""
    perf_high: Optional[float] = None
    """Raw return mapped to 1 (None: the matrix maximum)."""
    normalise: str = "global"
    """'global': one [perf_low, perf_high] for the whole matrix; 'per_target': each target column min-max
    normalised on its own (for envs whose return scale differs by context, e.g. the ring road's hold duration
    changes the number of agent steps per episode)."""
    k_max: int = 15
    """Number of trained tasks the strategies are replayed / plotted up to."""
    num_random_orders: int = 100
    """Orders averaged by the Random strategy."""
    selector: SelectorConfig = dataclasses.field(default_factory=SelectorConfig)
    """How MBTL selects the next context (acquisition, beta schedule, gap slope, GP)."""
    matrix_dir: Optional[str] = None
    """Transfer-matrix directory (None: <run.out_dir>/<run.name or 'mbtl-<env>'>/matrix)."""

    def __post_init__(self) -> None:
        if self.source_trainer not in SOURCE_TRAINERS:
            raise ValueError(f"mbtl.source_trainer={self.source_trainer!r}; allowed: {', '.join(SOURCE_TRAINERS)}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"mbtl.executor={self.executor!r}; allowed: {', '.join(EXECUTORS)}")
        for name in ("steps_per_task", "eval_episodes", "chunk_size", "max_workers", "k_max", "num_random_orders"):
            if getattr(self, name) < 1:
                raise ValueError(f"mbtl.{name} must be >= 1, got {getattr(self, name)}")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"mbtl.normalise={self.normalise!r}; allowed: {', '.join(NORMALISATIONS)}")
        if not self.seeds:
            raise ValueError("mbtl.seeds must list at least one seed")


def mbtl_config_from(section: Any) -> MBTLConfig:
    """An MBTLConfig from an MBTLConfig, an OmegaConf node or a plain mapping (unknown keys refused)."""
    return section_as(MBTLConfig, section, "mbtl")

