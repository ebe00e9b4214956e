"""ScaleZero: multi-task UniZero world-model planner with Mixture-of-Experts and LoRA Dynamic Parameter Scaling.

Public API: ``ScaleZeroConfig`` (the typed config) and ``ScaleZeroTrainer`` (the run-loop adapter).
Modules: transforms (h, two-hot), encoders, moe, lora, transformer, world_model, search (mctx), replay, losses,
learner (pure update), curriculum (DPS controller), trainer.
"""
from agents.scalezero.config import ScaleZeroConfig
from agents.scalezero.trainer import ScaleZeroTrainer

__all__ = ["ScaleZeroConfig", "ScaleZeroTrainer"]
