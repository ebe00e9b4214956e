"""``omnitask eval RUN_DIR --video``: play the newest checkpoint's policy in one env and save a GIF at real speed.

GIF frame delays are whole centiseconds and browsers slow down delays under 2 cs, so frames are written with a
stride that makes the delay at least 2 cs and close to real time (e.g. Atari at 15 agent steps/s: every step,
7 cs; Meta-World at 80 steps/s: every 4th step, 5 cs).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from omnitask.config import ConfigError


@dataclasses.dataclass
class Video:
    path: Path
    env_steps: int  # env steps of the checkpoint whose policy played
    frames: int  # frames written (after the stride)
    steps_per_second: float  # the env's real rate (simulated env steps per second)
    stride: int  # one frame written every ``stride`` env steps
    delay_cs: int  # GIF delay per written frame, centiseconds
    episode_return: float  # return of the episode (partial if it did not end within max_steps)
    episode_length: int
    finished: bool  # whether the episode ended within max_steps


def gif_timing(steps_per_second: float, max_stride: int = 8, tolerance: float = 0.05) -> tuple[int, int]:
    """(stride, delay in centiseconds) playing ``steps_per_second`` at real speed with a delay of >= 2 cs.

    The smallest stride whose rounded delay is within ``tolerance`` of real time; else the closest one.
    """
    if not steps_per_second > 0:
        raise ValueError(f"steps_per_second must be > 0, got {steps_per_second}")
    best = None
    for stride in range(max(1, math.ceil(2 * steps_per_second / 100)), max_stride + 1):
        exact = 100.0 * stride / steps_per_second
        delay = max(2, round(exact))
        error = abs(delay - exact) / exact
        if error <= tolerance:
            return stride, delay
        if best is None or error < best[0]:
            best = (error, stride, delay)
    if best is None:  # faster than 50 * max_stride steps/s: play at the fastest reliable rate
        return max_stride, 2
    return best[1], best[2]


def renders(env) -> bool:
    """Whether this env's family implements ``render()`` (Atari with the per-env backend, Meta-World)."""
    from envs.base import BatchedEnv
    return type(env).render is not BatchedEnv.render


def record_video(run_dir: Path, max_steps: int = 2000) -> Video:
    """Play one episode (at most ``max_steps`` env steps) of the newest checkpoint's evaluation policy -> GIF.

    The env is built and checked for rendering before the agent and checkpoint load, so an env that cannot render
    is refused at once. Needs a trainer with ``policy(state) -> (obs, key) -> actions``.
    """
    import imageio.v2 as imageio
    import jax

    import envs
    from envs.registry import entry
    from omnitask.run_dir import load_run_config
    from omnitask.runner import make_trainer, restore_latest

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    options = {**cfg.env.options, **cfg.env.eval_options}
    if entry(cfg.env.id).family == "atari":
        options.setdefault("backend", "ale")  # the per-env ALE backend renders; the vector one cannot
    context = {k: (v[0] if isinstance(v, (list, tuple)) else v) for k, v in cfg.env.context.items()}
    env = envs.make(cfg.env.id, num_envs=1, seed=cfg.seed + 7, context=context, **options)
    try:
        if not renders(env):
            raise ConfigError(f"{cfg.env.id} cannot render, so no video (families that render: Atari, Meta-World)")
        rate = getattr(env, "render_fps", None)
        if not rate:
            raise ConfigError(f"{cfg.env.id} does not state its real frame rate (render_fps), so no video")
        stride, delay_cs = gif_timing(rate)
        init_key, eval_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
        trainer = make_trainer(cfg, run_dir)
        try:
            if not hasattr(trainer, "policy"):
                raise ConfigError(f"agent {cfg.agent!r} does not expose policy(state); eval videos need it")
            state, meta = restore_latest(cfg, run_dir, trainer, init_key)
            act = trainer.policy(state)
        finally:
            trainer.close()
        env_steps = int(meta["env_steps"])
        ts = env.reset()
        frames = [np.asarray(env.render())[0]]  # [H, W, 3] uint8 each
        key = jax.random.fold_in(eval_key, env_steps)
        finished = False
        for t in range(1, max_steps + 1):
            key, sub = jax.random.split(key)
            ts = env.step(act(ts.observation, sub))
            finished = bool(envs.episode_over(ts)[0])
            if finished:  # same-step autoreset: the screen already shows the next episode
                break
            if t % stride == 0:
                frames.append(np.asarray(env.render())[0])
        episode_return = float(np.asarray(ts.info["episode_return"])[0])
        episode_length = int(np.asarray(ts.info["episode_length"])[0])
    finally:
        env.close()
    out = run_dir / f"eval_{env_steps}.gif"
    imageio.mimsave(out, frames, duration=10 * delay_cs, loop=0)  # imageio>=2.28 (pillow): milliseconds
    return Video(out, env_steps, len(frames), float(rate), stride, delay_cs, episode_return, episode_length,
                 finished)
