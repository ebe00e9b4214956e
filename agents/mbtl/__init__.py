"""MBTL: Model-Based Transfer Learning (Cho et al., NeurIPS 2024) — choose which contexts to train on.

Public API:
  MBTLConfig, MBTLTrainer                      -- config section ``mbtl:`` / online MBTL behind the Trainer contract
  Selector, SelectorConfig, GPConfig           -- the jitted GP + acquisition selection step
  strategies                                   -- every baseline replayable on a transfer matrix
  build_matrix, load_normalised                -- build/resume a transfer matrix, load it for replay
  TransferStore                                -- one row per (source, target, seed), atomically written
  synthetic                                    -- seeded family of transfer matrices (tuning / held-out seeds)
CLI: ``python -m agents.mbtl {build,replay,run,online} CONFIG.yaml [--set k=v] [--executor local|ray|inline]``;
``python -m agents.mbtl replay --matrix M.csv`` replays on any N x N matrix.
"""
from agents.mbtl.config import MBTLConfig, mbtl_config_from
from agents.mbtl.gp import GPConfig
from agents.mbtl.matrix import TransferStore
from agents.mbtl.online import MBTLTrainer, OnlineState
from agents.mbtl.selector import Selector, SelectorConfig

__all__ = ["GPConfig", "MBTLConfig", "MBTLTrainer", "OnlineState", "Selector", "SelectorConfig", "TransferStore",
           "mbtl_config_from"]
