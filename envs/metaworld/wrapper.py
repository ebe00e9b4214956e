"""The outermost per-env gymnasium wrapper: the hooks ``MetaWorldEnv`` calls on each env (in-process or in a worker).

It only adds methods (goal read-out, explicit goals, re-seeding, ML task switching) and a uniform observation space
(Meta-World's bounds differ per task, and gymnasium's AsyncVectorEnv requires identical spaces); step/reset results
pass through unchanged.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class OmniWrapper(gym.Wrapper):
    """Wraps Meta-World's ``_init_each_env`` stack for env ``index`` of a batch."""

    def __init__(self, env: gym.Env, index: int, goal: np.ndarray | None, obs_dim: int, max_goal_tries: int):
        super().__init__(env)
        from metaworld.wrappers import PseudoRandomTaskSelectWrapper, RandomTaskSelectWrapper

        self.index = int(index)
        self._observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
        self._max_goal_tries = int(max_goal_tries)
        self._goal_tries = 0
        self._selector = None  # Meta-World's task-select wrapper somewhere in the stack
        inner = env
        while isinstance(inner, gym.Wrapper):
            if isinstance(inner, (PseudoRandomTaskSelectWrapper, RandomTaskSelectWrapper)):
                self._selector = inner
            inner = inner.env
        if self._selector is None:
            raise RuntimeError("Meta-World task-select wrapper not found in the env stack")
        self._pseudo = isinstance(self._selector, PseudoRandomTaskSelectWrapper)
        self._initial_tasks = list(self._selector.tasks)
        self._new_task_next_reset = True  # ML envs must get a task before their first reset
        self._install_goal(goal)

    # -------------------------------------------------------------- gym API
    def reset(self, **kwargs):
        self._goal_tries = 0
        if self._pseudo and self._new_task_next_reset:
            self._selector.toggle_sample_tasks_on_reset(True)
            try:
                return self.env.reset(**kwargs)
            finally:
                self._selector.toggle_sample_tasks_on_reset(False)
                self._new_task_next_reset = False
        return self.env.reset(**kwargs)

    # -------------------------------------------------------------- hooks called through VectorEnv.call
    def current_goal(self) -> np.ndarray:
        """The target position of the current episode, float32 [3]."""
        return np.asarray(self.env.unwrapped._target_pos, np.float32).copy()

    def request_new_task(self) -> None:
        """ML: draw the next goal at the next reset (MT envs draw one at every reset anyway)."""
        self._new_task_next_reset = True

    def reseed(self, seeds: np.ndarray) -> None:
        """Re-seed this env with ``seeds[index]`` and restart its task sequence (reproducible from here)."""
        self.env.unwrapped.seed(int(seeds[self.index]))
        if self._pseudo:
            self._selector.tasks = list(self._initial_tasks)
            self._selector.current_task_idx = -1
        self._new_task_next_reset = True

    def set_goal(self, goals: np.ndarray | None) -> None:
        """Fix this env's goal to ``goals[index]`` (xyz) from its next reset on, or release it (None).

        Meta-World's reset reads the task vector (object xyz + goal xyz) through ``_get_state_rand_vec`` and asks
        again when the pair is invalid (e.g. goal too close to the object). The override returns the benchmark
        task's object placement with our goal, then fresh object placements from the env's seeded RNG.
        """
        self._install_goal(None if goals is None else goals[self.index])

    def _install_goal(self, goal: np.ndarray | None) -> None:
        unwrapped = self.env.unwrapped
        unwrapped.__dict__.pop("_get_state_rand_vec", None)
        if goal is None:
            return
        goal = np.asarray(goal, np.float64)  # [3]
        space = unwrapped._random_reset_space

        def rand_vec() -> np.ndarray:
            self._goal_tries += 1
            if self._goal_tries == 1:
                base = np.asarray(unwrapped._last_rand_vec, np.float64)
            elif self._goal_tries <= self._max_goal_tries:
                base = unwrapped.np_random.uniform(space.low, space.high)
            else:
                raise ValueError(
                    f"{self._initial_tasks[0].env_name}: goal {[round(float(x), 4) for x in goal]} was rejected by "
                    f"Meta-World's reset for "
                    f"{self._max_goal_tries} object placements (goals must keep a minimum distance from the object); "
                    "choose another goal")
            return np.concatenate([base[:-3], goal])

        unwrapped._get_state_rand_vec = rand_vec
