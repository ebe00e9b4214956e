"""PVN's typed config (the YAML section ``pvn:``): data source, pretraining, online linear evaluation, baselines.

Defaults are the paper's Atari settings (IMPALA x8, 100 rnd tasks, 1.56M updates, Dopamine DQN evaluation);
``configs/pvn/minatar_breakout_cpu.yaml`` shrinks them to a CPU-sized reproduction.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

from agents.pvn.evaluate import LinearEvalConfig
from agents.pvn.pretrain import PretrainConfig

DATA_SOURCES = ("collect", "suite", "dqn_replay")
BASELINES = ("random_linear", "dqn")


@dataclasses.dataclass
class DataConfig:
    """Where the offline pretraining data comes from."""

    source: str = "collect"  # 'collect': behaviour policy -> run_dir/dataset; 'suite': an existing dataset
    # directory (agents.pvn.dataset format) at ``path``; 'dqn_replay': a DQN Replay Dataset game directory at ``path``
    path: Optional[str] = None  # dataset directory for source 'suite' / 'dqn_replay'
    collect_transitions: int = 100_000  # transitions the behaviour policy collects (source 'collect')
    chunk_size: int = 20_000  # transitions per on-disk chunk
    chunks_in_memory: int = 4  # chunks a sampling call draws rows from (suite format)
    dqn_replay_checkpoints: List[int] = dataclasses.field(default_factory=list)  # [] = all found in ``path``
    dqn_replay_window: int = 4  # checkpoints held and mixed at once (shuffled mixture; ~7 GB of frames each)
    dqn_replay_updates_per_window: int = 50_000  # pretraining updates before the window moves on (through a
    # per-epoch random permutation of all checkpoints: every checkpoint is drawn from once per epoch)

    def __post_init__(self):
        if self.source not in DATA_SOURCES:
            raise ValueError(f"pvn.data.source {self.source!r} unknown; allowed: {', '.join(DATA_SOURCES)}")
        if self.source != "collect" and not self.path:
            raise ValueError(f"pvn.data.source {self.source!r} needs pvn.data.path (the dataset directory)")
        if self.dqn_replay_window < 1 or self.dqn_replay_updates_per_window < 1:
            raise ValueError(f"pvn.data.dqn_replay_window ({self.dqn_replay_window}) and "
                             f"pvn.data.dqn_replay_updates_per_window ({self.dqn_replay_updates_per_window}) must be >= 1")
        if self.collect_transitions < 1 or self.chunk_size < 1 or self.chunks_in_memory < 1:
            raise ValueError("pvn.data: collect_transitions, chunk_size and chunks_in_memory must be >= 1")


@dataclasses.dataclass
class PVNConfig:
    """Proto-Value Networks: offline pretraining, then online linear-Q evaluation (both inside one run).

    Phases of ``omnitask train``: (0) collect data (if ``data.source == 'collect'``), (1) pretrain for
    ``pretrain.num_updates`` (these iterations consume no env steps, so the progress bar waits at 0), then
    (2) train the linear Q head online for ``run.total_env_steps`` env steps, together with each baseline at the same
    budget. Metrics: ``collect/*``, ``pretrain/*``, ``<learner>/*``; evaluations report ``return_mean`` (PVN-linear)
    and ``return_mean/<learner>`` for every learner.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    eval: LinearEvalConfig = dataclasses.field(default_factory=LinearEvalConfig)
    baselines: List[str] = dataclasses.field(default_factory=lambda: ["random_linear", "dqn"])  # trained alongside
    # PVN-linear at equal budgets: 'random_linear' (frozen random encoder), 'dqn' (end-to-end, same architecture)
    eval_seeds: int = 1  # independent online learners per encoder (vmapped); evaluations average over them
    fire_rate_transitions: int = 20_000  # dataset transitions used to measure each indicator's firing rate
    export_encoder: bool = True  # save the pretrained encoder to run_dir/encoder (agents.pvn.export format)

    def __post_init__(self):
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad or len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"pvn.baselines {list(self.baselines)}: unknown or repeated entries {bad}; "
                             f"allowed: {', '.join(BASELINES)}")
        if self.fire_rate_transitions < 1 or self.eval_seeds < 1:
            raise ValueError(f"pvn.fire_rate_transitions ({self.fire_rate_transitions}) and pvn.eval_seeds "
                             f"({self.eval_seeds}) must be >= 1")
