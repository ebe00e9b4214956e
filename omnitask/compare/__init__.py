"""Comparing runs the way RL papers do (Agarwal et al. 2021): aggregate metrics with stratified-bootstrap CIs over
runs and tasks (``rliable``), normalised scores, paired tests for same-seed groups. ``omnitask compare`` drives it."""
from omnitask.compare.pipeline import CompareOptions, Comparison, compare

__all__ = ["CompareOptions", "Comparison", "compare"]
