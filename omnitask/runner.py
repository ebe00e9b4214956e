"""The training loop shared by every agent: progress bar, logging, evaluation, checkpoints, exact resume.

Trainer contract (see README "Writing an agent"):
    Trainer(cfg, run_dir)
    init(key) -> state                          # pytree of arrays: everything needed to resume exactly
    train_step(state) -> (state, metrics, n)    # one iteration that consumed n env steps
    evaluate(state, num_episodes, key) -> dict  # must not change ``state``; includes 'return_mean'
    close()
Evaluation keys are ``fold_in(eval_key, env_steps)``: evaluations never consume the training PRNG stream, so a run
resumed from a checkpoint continues bit-for-bit like the uninterrupted run. Most trainers are the engines of
``agents.common.engines``. Stop/save rules: the loop stops only between two ``train_step`` calls (Ctrl-C), saves the
state the last call returned, saves before the final evaluation, and closes everything in ``finally``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from omnitask.agents_table import AGENTS
from omnitask.checkpoint import Checkpoints
from omnitask.config import ConfigError
from omnitask.distributed import initialize as initialize_processes
from omnitask.distributed import is_primary
from omnitask.fileio import atomic_write_json
from omnitask.metrics_log import MetricsLogger
from omnitask.nonfinite import Watch
from omnitask.plotting import plot_run
from omnitask.resume_log import finished_eval, record_resume, trim_metrics
from omnitask.run_dir import config_differences, load_run_config


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} steps/s" if speed else "-- steps/s", style="progress.data.speed")


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    env_steps: int
    state: Any
    final_eval: dict


class _NoLogger:
    """The metrics sink of processes other than 0 in a multi-process run."""

    def log(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _next_multiple(x: int, every: int) -> int:
    return (x // every + 1) * every if every > 0 else np.iinfo(np.int64).max


def make_trainer(cfg: Any, run_dir: Path):
    return AGENTS[cfg.agent]()[1](cfg, run_dir)


def restore_latest(cfg: Any, run_dir: Path, trainer, init_key, warn=print) -> tuple[Any, dict]:
    """The newest readable checkpoint of ``run_dir``, restored into the shapes of ``trainer.init``."""
    saved = load_run_config(run_dir)
    diffs = config_differences(saved, cfg)
    if diffs:
        raise ConfigError(f"checkpoint in {run_dir} comes from another config; differing keys: {', '.join(diffs)} "
                          "(only run.* keys may change on resume)")
    try:  # shapes and dtypes only: nothing allocated, host simulators not touched (engines skip them when traced);
        # engines give their shardings too (run.mesh), so orbax restores straight into the current device layout
        template = (trainer.state_template(init_key) if hasattr(trainer, "state_template")
                    else jax.eval_shape(trainer.init, init_key))
    except jax.errors.JAXTypeError:  # an init that needs concrete host values (ScaleZero's replay task map)
        template = trainer.init(init_key)
    ckpts = Checkpoints(run_dir)
    try:
        return ckpts.restore(template, warn)
    finally:
        ckpts.close()


@contextlib.contextmanager
def stop_between_steps(console: Console):
    """Ctrl-C (SIGINT) asks the loop to stop after the current step; a second Ctrl-C aborts at once.

    Yields a function telling whether a stop was asked. Only the main thread can install signal handlers;
    elsewhere Ctrl-C keeps Python's default behaviour.
    """
    asked = []

    def handler(signum, frame):
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)
        console.print("stopping after this step (Ctrl-C again to abort without saving)")

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(asked)
    finally:
        signal.signal(signal.SIGINT, previous)


class Interrupted(KeyboardInterrupt):
    """The run stopped on Ctrl-C after saving a checkpoint (the CLI exits 130)."""


def train(cfg: Any, run_dir: Path, resume: bool = False, console: Console | None = None) -> RunResult:
    console = console or Console(stderr=True)
    run_dir = Path(run_dir)
    initialize_processes(cfg.run)  # run.distributed: join the other processes before any JAX computation
    primary = is_primary()  # only process 0 writes metrics, plots and run files (checkpoints: orbax, all together)
    init_key, eval_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    trainer = make_trainer(cfg, run_dir)
    env_steps, iteration = 0, 0
    total = int(cfg.run.total_env_steps)
    ckpts = logger = None
    try:
        if resume:
            state, meta = restore_latest(cfg, run_dir, trainer, init_key, warn=lambda m: console.print(
                f"[yellow]warning:[/yellow] {escape(m)}", highlight=False, soft_wrap=True))
            env_steps, iteration = int(meta["env_steps"]), int(meta["iteration"])
            stored = finished_eval(run_dir, env_steps) if env_steps >= total else None
            if stored is not None:  # already finished: resuming again changes nothing
                console.print(f"{run_dir} already finished at {env_steps:,} env steps (budget {total:,}); nothing to "
                              f"do (continue with --set run.total_env_steps=N, N > {env_steps:,})")
                return RunResult(run_dir, env_steps, state, stored)
            if primary:
                trim_metrics(run_dir, env_steps, total)
                record_resume(run_dir, cfg, env_steps)
            console.print(f"resumed {run_dir} at {env_steps:,} env steps (iteration {iteration}) with a budget of "
                          f"{total:,}; recorded in provenance.json")
        else:
            state = trainer.init(init_key)
        ckpts = Checkpoints(run_dir, keep=cfg.run.keep_checkpoints)
        logger = (MetricsLogger(run_dir, loggers=cfg.run.loggers, run_config=dataclasses.asdict(cfg)) if primary
                  else _NoLogger())
        next_eval = _next_multiple(env_steps, cfg.run.eval_every)
        next_ckpt = _next_multiple(env_steps, cfg.run.checkpoint_every)
        last_eval: dict = {}
        watch = Watch(cfg.agent, cfg.run.on_nonfinite)

        def save():  # ``state`` is always the live result of the last completed step
            ckpts.save(env_steps, state, {"env_steps": env_steps, "iteration": iteration, "agent": cfg.agent})

        def evaluate():
            nonlocal last_eval
            last_eval = {k: float(v) for k, v in trainer.evaluate(
                state, cfg.run.eval_episodes, jax.random.fold_in(eval_key, env_steps)).items()}
            logger.log("eval", env_steps, last_eval)

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                   TimeRemainingColumn(), TextColumn("{task.fields[status]}")]
        with Progress(*columns, console=console, disable=not (cfg.run.progress and primary), transient=False) as bar, \
                stop_between_steps(console) as stop_asked:
            task = bar.add_task(f"{cfg.agent} {cfg.env.id}", total=total, completed=min(env_steps, total), status="")
            while env_steps < total and not stop_asked():
                t0 = time.perf_counter()
                state, metrics, n = trainer.train_step(state)
                env_steps += int(n)
                iteration += 1
                if iteration % max(1, cfg.run.log_every) == 0:
                    metrics = dict(metrics, steps_per_second=n / max(time.perf_counter() - t0, 1e-9))
                    logger.log("train", env_steps, metrics)
                warning = watch.check(metrics, env_steps)  # stop: raises before this state is evaluated/saved
                if warning:
                    console.print(warning, markup=False, highlight=False, soft_wrap=True)
                if env_steps >= next_eval and env_steps < total:
                    evaluate()
                    next_eval = _next_multiple(env_steps, cfg.run.eval_every)
                if env_steps >= next_ckpt and env_steps < total:
                    save()
                    next_ckpt = _next_multiple(env_steps, cfg.run.checkpoint_every)
                status = f"eval return {last_eval['return_mean']:.1f}" if "return_mean" in last_eval else ""
                bar.update(task, completed=min(env_steps, total), status=status)
            if env_steps < total:  # Ctrl-C: stopped between two steps
                save()
                ckpts.wait()
                raise Interrupted(f"interrupted: checkpoint saved at {env_steps:,} env steps; continue with "
                                  f"`omnitask train --resume {run_dir}`")
            if ckpts.latest_step() != env_steps:  # a resume past the budget restored exactly this step
                save()  # before the final evaluation: a failing evaluation never loses the trained state
            ckpts.wait()
            evaluate()
            bar.update(task, status=f"final eval return {last_eval['return_mean']:.1f}"
                       if "return_mean" in last_eval else "")
        logger.close()
        logger = None
        if primary:
            atomic_write_json(run_dir / "final_eval.json", {"env_steps": env_steps, **last_eval})
            plot_run(run_dir)
        return RunResult(run_dir, env_steps, state, last_eval)
    finally:
        try:
            if ckpts is not None:
                ckpts.close()
        finally:
            if logger is not None:
                logger.close()
            trainer.close()


def evaluate_run(run_dir: Path, num_episodes: int | None = None, seed_offset: int = 0) -> dict:
    """Restore the newest checkpoint of a run and evaluate it (``omnitask eval``)."""
    cfg = load_run_config(run_dir)
    init_key, eval_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    trainer = make_trainer(cfg, Path(run_dir))
    try:
        state, meta = restore_latest(cfg, Path(run_dir), trainer, init_key)
        key = jax.random.fold_in(jax.random.fold_in(eval_key, meta["env_steps"]), 1_000_003 + seed_offset)
        episodes = num_episodes or cfg.run.eval_episodes
        result = {k: float(v) for k, v in trainer.evaluate(state, episodes, key).items()}
        result.update(env_steps=int(meta["env_steps"]), episodes=int(episodes),
                      checkpoint=str(Path(run_dir) / "checkpoints" / str(int(meta["env_steps"]))))
        atomic_write_json(Path(run_dir) / "eval.json", result)
        return result
    finally:
        trainer.close()
