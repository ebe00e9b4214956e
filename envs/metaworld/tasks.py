"""Static facts about the Meta-World v3 benchmarks (no mujoco import needed to list ids or build specs).

Task order matches ``metaworld.env_dict`` (metaworld 3.1.1); ``tests/test_env_metaworld.py`` checks it against the
installed package. ``GOAL_SPACES`` is each task's ``goal_space`` box; ``SETTABLE_GOAL_TASKS`` are the tasks whose
target position is exactly the goal part of Meta-World's task vector (``rand_vec[-3:]``), so an explicit goal context
can set it. For the other tasks the target is derived from the object placement (e.g. the button's hole), so their
goal is reported in ``TimeStep.context`` but cannot be chosen.
"""
from __future__ import annotations

ALL_TASKS: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3",
    "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3", "door-open-v3",
    "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3", "faucet-close-v3",
    "hammer-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3",
    "plate-slide-back-v3", "plate-slide-back-side-v3", "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3",
    "stick-push-v3", "stick-pull-v3", "push-v3", "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3",
    "shelf-place-v3", "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3")

MT10_TASKS: tuple[str, ...] = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3")

MT50_TASKS: tuple[str, ...] = ALL_TASKS

ML10_TRAIN_TASKS: tuple[str, ...] = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-close-v3", "button-press-topdown-v3",
    "peg-insert-side-v3", "window-open-v3", "sweep-v3", "basketball-v3")
ML10_TEST_TASKS: tuple[str, ...] = (
    "drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3")

ML45_TEST_TASKS: tuple[str, ...] = (
    "bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3")
ML45_TRAIN_TASKS: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-v3",
    "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3",
    "disassemble-v3", "door-close-v3", "door-open-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3",
    "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3",
    "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3", "pick-out-of-hole-v3", "push-back-v3",
    "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3", "plate-slide-back-side-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3", "push-wall-v3",
    "push-v3", "reach-wall-v3", "reach-v3", "shelf-place-v3", "sweep-into-v3", "sweep-v3", "window-open-v3",
    "window-close-v3")

# Each task's goal_space (low xyz, high xyz), metres, as declared by metaworld 3.1.1.
GOAL_SPACES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "assembly-v3": ((-0.1, 0.75, 0.1), (0.1, 0.85, 0.1)),
    "basketball-v3": ((-0.1, 0.767, 0.2499), (0.1, 0.8170001, 0.2501)),
    "bin-picking-v3": ((0.1199, 0.699, -0.001), (0.1201, 0.701, 0.001)),
    "box-close-v3": ((-0.1, 0.7, 0.133), (0.1, 0.8, 0.133)),
    "button-press-topdown-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "button-press-topdown-wall-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "button-press-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "button-press-wall-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "coffee-button-v3": ((-0.101, 0.6100000000000001, 0.298), (0.101, 0.71, 0.302)),
    "coffee-pull-v3": ((-0.1, 0.55, -0.001), (0.1, 0.65, 0.001)),
    "coffee-push-v3": ((-0.05, 0.7, -0.001), (0.05, 0.75, 0.001)),
    "dial-turn-v3": ((-0.1, 0.73, 0.0299), (0.1, 0.83, 0.0301)),
    "disassemble-v3": ((-0.1, 0.6, 0.1749), (0.1, 0.75, 0.1751)),
    "door-close-v3": ((0.2, 0.65, 0.1499), (0.3, 0.75, 0.1501)),
    "door-lock-v3": ((-0.5, 0.4, -0.15), (0.5, 1.0, 0.5)),
    "door-open-v3": ((-0.3, 0.4, 0.1499), (-0.2, 0.5, 0.1501)),
    "door-unlock-v3": ((0.0, 0.64, 0.21), (0.2, 0.7, 0.2111)),
    "hand-insert-v3": ((-0.04, 0.8, -0.0201), (0.04, 0.88, -0.0199)),
    "drawer-close-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "drawer-open-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "faucet-open-v3": ((-0.5, 0.4, -0.15), (0.5, 1.0, 0.5)),
    "faucet-close-v3": ((-0.5, 0.4, -0.15), (0.5, 1.0, 0.5)),
    "hammer-v3": ((0.2399, 0.7399, 0.109), (0.2401, 0.7401, 0.111)),
    "handle-press-side-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "handle-press-v3": ((-0.1, 0.55, 0.04), (0.1, 0.7, 0.08)),
    "handle-pull-side-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "handle-pull-v3": ((-0.1, 0.55, 0.04), (0.1, 0.7, 0.18)),
    "lever-pull-v3": ((-0.5, 0.4, -0.15), (0.5, 1.0, 0.5)),
    "pick-place-wall-v3": ((-0.05, 0.85, 0.05), (0.05, 0.9, 0.3)),
    "pick-out-of-hole-v3": ((-0.1, 0.5, 0.15), (0.1, 0.6, 0.3)),
    "pick-place-v3": ((-0.1, 0.8, 0.05), (0.1, 0.9, 0.3)),
    "plate-slide-v3": ((-0.1, 0.85, 0.0), (0.1, 0.9, 0.0)),
    "plate-slide-side-v3": ((-0.3, 0.54, 0.0), (-0.25, 0.66, 0.0)),
    "plate-slide-back-v3": ((-0.1, 0.6, 0.015), (0.1, 0.6, 0.015)),
    "plate-slide-back-side-v3": ((-0.05, 0.6, 0.015), (0.15, 0.6, 0.015)),
    "peg-insert-side-v3": ((-0.31999999999999995, 0.4, 0.129), (-0.22, 0.7, 0.131)),
    "peg-unplug-side-v3": ((-0.055999999999999994, 0.6, 0.13), (0.04400000000000001, 0.8, 0.132)),
    "soccer-v3": ((-0.1, 0.8, 0.0), (0.1, 0.9, 0.0)),
    "stick-push-v3": ((0.399, 0.55, 0.1319), (0.401, 0.6, 0.1321)),
    "stick-pull-v3": ((0.35, 0.45, 0.0199), (0.45, 0.55, 0.0201)),
    "push-v3": ((-0.1, 0.8, 0.01), (0.1, 0.9, 0.02)),
    "push-wall-v3": ((-0.05, 0.85, 0.01), (0.05, 0.9, 0.02)),
    "push-back-v3": ((-0.1, 0.6, 0.0199), (0.1, 0.7, 0.0201)),
    "reach-v3": ((-0.1, 0.8, 0.05), (0.1, 0.9, 0.3)),
    "reach-wall-v3": ((-0.05, 0.85, 0.05), (0.05, 0.9, 0.3)),
    "shelf-place-v3": ((-0.1, 0.8, 0.299), (0.1, 0.9, 0.301)),
    "sweep-into-v3": ((-0.001, 0.8399, 0.0199), (0.001, 0.8401, 0.0201)),
    "sweep-v3": ((0.49, 0.6, 0.0), (0.51, 0.7, 0.02)),
    "window-open-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
    "window-close-v3": ((-0.5, 0.4, 0.05), (0.5, 1.0, 0.5)),
}

# Tasks whose target position == rand_vec[-3:] (measured on metaworld 3.1.1: 6-d task vector = object xyz + goal
# xyz, goal_space == the last three dims of the reset space, and the target equals them after reset).
SETTABLE_GOAL_TASKS: frozenset[str] = frozenset({
    "assembly-v3", "box-close-v3", "coffee-pull-v3", "coffee-push-v3", "hand-insert-v3", "pick-place-wall-v3",
    "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3",
    "plate-slide-back-side-v3", "soccer-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3"})

# Cameras defined in Meta-World's scene (xyz_base.xml); render(camera=...) accepts these.
CAMERAS: tuple[str, ...] = ("corner", "corner2", "corner3", "corner4", "behindGripper", "gripperPOV")

# Meta-World's episode horizon (SawyerXYZEnv.max_path_length).
MAX_PATH_LENGTH = 500
