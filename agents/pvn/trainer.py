"""The run loop's PVN agent: collect -> pretrain -> online linear-Q evaluation (with baselines), in one run.

State (a pytree of arrays, everything needed to resume exactly)::

    {'phase': [] int32 (0 collect, 1 pretrain, 2 online), 'pretrain': PretrainState,
     'learners': {'pvn_linear': DQNRunner, 'random_linear': ..., 'dqn': ...}}   # leaves [S, ...]

Each learner is the DQN baseline's JAX-native loop state (``agents.dqn.jax_loop.DQNRunner``) with PVN's Q-network
(``agents.pvn.evaluate``), ``eval_seeds`` (S) independent copies vmapped together; metrics and evaluations average
over them. On ``run.mesh`` each copy's env batch (env states, replay columns, minibatches) is split over the
``data`` axis, the params replicated. On host-simulator envs (Atari) each learner is instead one
``agents.dqn.agent.DQNState`` (no seed axis) trained by the DQN baseline's host loop with the frozen PVN encoder as
its torso (``agents.pvn.host``); ``eval_seeds`` must be 1. Both paths take ``run.precision`` (the learners' Q-network
compute dtype); ``run.replay: host`` (a numpy replay) runs on the host loop only.

Pretraining batches are drawn on the host by a generator seeded with ``(seed, update step)``, so a resumed run
reads exactly the batches of an uninterrupted one. PVN-linear and random-linear share the learner seed (same head
init, env seeds and exploration noise); they differ only in the frozen encoder.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.common.trainer_utils import env_settings, eval_env_options, mean_metrics
from agents.pvn.collect import collect_jax, uniform_policy
from agents.pvn.config import PVNConfig
from agents.pvn.dataset import DQNReplayDataset, TransitionDataset, TransitionWriter, replay_window
from agents.pvn.env_access import jax_env, observation_dtype_ok
from agents.pvn.evaluate import (ONLINE_BATCH_AXES, encoder_params, feature_norm_stats, make_online_learner,
                                 with_encoder, with_feature_norm)
from agents.pvn.export import save_encoder
from agents.pvn.host import HostLearner, check_replay_memory, collect_host
from agents.pvn.indicators import firing_rates
from agents.pvn.pretrain import make_pretrainer
from agents.pvn.score_cache import cache_enabled, make_score_cache
from omnitask.fileio import atomic_write_json
from omnitask.mesh import DataParallel
from omnitask.precision import precision_of
from omnitask.replay_location import replay_location

PHASE_COLLECT, PHASE_PRETRAIN, PHASE_ONLINE = 0, 1, 2


def whole_dataset_observations(ds, num: int, rng: np.random.Generator, batch: int = 1000):
    """Yields ``[b, *obs]`` observation batches, ``~num`` states in all, spread over every checkpoint (DQN Replay) or
    chunk (suite format) in proportion to its size, loading one at a time."""
    if isinstance(ds, DQNReplayDataset):
        parts = [(c, None) for c in ds.checkpoints]
        weights = np.ones(len(parts))
    else:
        parts = [(None, i) for i in range(len(ds.meta["chunks"]))]
        weights = np.array([c["size"] for c in ds.meta["chunks"]], np.float64)
    counts = np.maximum(1, np.round(num * weights / weights.sum()).astype(int))
    for (ckpt, chunk), count in zip(parts, counts):
        if ckpt is not None:
            obs = ds.sample(rng, int(count), 1, [ckpt])["observation"][0]
        else:
            data = ds.load_chunk(chunk)["observation"]
            obs = data[np.sort(rng.choice(len(data), size=min(int(count), len(data)), replace=False))]
        for i in range(0, len(obs), batch):
            yield np.asarray(obs[i:i + batch])


def jit_online(learner, dp: DataParallel) -> tuple:
    """``(init(keys [S]), train(state), evaluate(state, keys [S], num_episodes))`` of ``learner`` (an
    ``OnlineLearner``) vmapped over S learner seeds and jitted on ``dp``'s mesh (env batch split, params
    replicated; no mesh: plain ``jax.jit``)."""
    init = dp.jit(jax.vmap(learner.init), out_axes=ONLINE_BATCH_AXES)
    train = dp.jit(jax.vmap(learner.chunk), out_axes=(ONLINE_BATCH_AXES, None))
    evaluate = jax.jit(jax.vmap(learner.evaluate, in_axes=(0, 0, None)), static_argnums=2)
    return init, train, evaluate


class PVNTrainer:
    """Trainer contract of ``omnitask.runner`` for PVN (see ``agents.pvn.config.PVNConfig`` for the phases)."""

    def __init__(self, cfg: Any, run_dir: str | Path):
        self.cfg = cfg
        self.pcfg: PVNConfig = cfg.pvn
        self.run_dir = Path(run_dir)
        env_id, self.num_envs, context, options = env_settings(cfg)
        try:
            self.spec, self.fns, self.env_params = jax_env(env_id, self.num_envs, context, options)
            self.host_env = False
        except ValueError as err:  # a host simulator (Atari): online phase on the DQN baseline's host loop
            if "host-simulator" not in str(err):
                raise
            self.spec, self.fns, self.env_params, self.host_env = envs.spec(env_id, **options), None, None, True
        self.env_id, self.context, self.options = env_id, context, options
        run_cfg = getattr(cfg, "run", None)
        self.dp = DataParallel.from_run(run_cfg)  # run.mesh: batches split, state replicated
        self.precision = precision_of(run_cfg)  # the online learners' compute dtype (the DQN agent's)
        self.replay = replay_location("pvn", str(getattr(run_cfg, "replay", "auto") or "auto"))
        if self.replay == "host" and not self.host_env:
            raise ValueError(f"run.replay=host: PVN's online phase on the JAX-native env {env_id} runs inside jit "
                             "with the replay on the device; the host replay serves host-simulator envs (Atari); "
                             "use run.replay=auto")
        self._eval_env = None
        self.online_options = dict(options)  # the online learners' envs (the reference preset turns stickiness off)
        if self.host_env and self.pcfg.eval.preset == "reference":
            self.online_options["sticky_actions"] = float(self.pcfg.eval.sticky_prob)
        observation_dtype_ok(self.spec)
        self.obs_shape = tuple(self.spec.observation.shape)
        num_actions = self.spec.action.num_actions
        pre = self.pcfg.pretrain
        self.pretrainer = make_pretrainer(pre, self.obs_shape, num_actions, self.precision)
        enc_spec = pre.encoder.spec()
        self.names, self.learners = ["pvn_linear"] + list(self.pcfg.baselines), {}
        if self.host_env:
            self._setup_host(enc_spec)
            self._setup_jits()
            return
        contexts = self.spec.resolve_context(context, self.num_envs)  # [E, C]
        for name in self.names:
            same = "pvn_linear" if name == "random_linear" else None  # same closures: identical compiled code
            self.learners[name] = self.learners[same] if same else make_online_learner(
                self.pcfg.eval, enc_spec, self.spec, self.fns, contexts, self.num_envs, self._trains_encoder(name),
                self.precision)
        self._setup_jits()

    def _trains_encoder(self, name: str) -> bool:
        """Whether learner ``name`` trains its encoder: end-to-end DQN always, the linear learners only with
        ``eval.fine_tune`` (otherwise frozen features: stored in the replay, optionally standardised)."""
        return name == "dqn" or bool(self.pcfg.eval.fine_tune)

    def _setup_host(self, enc_spec) -> None:
        """Host-env learners: PVN-linear (frozen unless ``eval.fine_tune``) and the baselines, each with its own env."""
        if int(self.pcfg.eval_seeds) != 1:
            raise ValueError(f"pvn.eval_seeds={self.pcfg.eval_seeds}: host envs ({self.env_id}) run one learner "
                             "per encoder; set pvn.eval_seeds=1")
        pixel_learners = sum(map(self._trains_encoder, self.names))  # frozen
        # encoders store features, not pixels (agents.pvn.host)
        check_replay_memory(self.pcfg.eval, self.spec, pixel_learners, host=self.replay == "host")
        for i, name in enumerate(self.names):
            def make_env(i=i):
                return envs.make(self.env_id, num_envs=self.num_envs, seed=int(self.cfg.seed) + 1000 * (i + 1),
                                 context=self.context, **self.online_options)
            self.learners[name] = HostLearner(self.pcfg.eval, enc_spec, self.spec, self.num_envs, make_env,
                                              self._trains_encoder(name),
                                              seed=int(self.cfg.seed) + 1000 * (i + 1), precision=self.precision,
                                              replay=self.replay, mesh=self.dp)

    def _setup_jits(self) -> None:
        self._cpu: dict[str, float] = {}  # CPU seconds of this process per stage (not restored on resume)
        self._dataset = None
        self._scores_decided, self._scores = False, None  # the indicator score cache, opened at the first batch
        self.firing_rates: np.ndarray | None = None
        self.seeds = int(self.pcfg.eval_seeds)
        dp = self.dp
        self._pretrain_init = dp.jit(self.pretrainer.init, out_axes=None)
        self._pretrain_many = dp.jit(self.pretrainer.update_many, out_axes=None)
        self._init, self._train, self._eval = {}, {}, {}
        if self.host_env:
            for name, learner in self.learners.items():
                self._init[name] = learner.init
            return
        for name, learner in self.learners.items():  # learners sharing closures share jitted (compiled) code
            same = next((n for n in self._init if self.learners[n] is learner), None)
            if same is not None:
                self._init[name], self._train[name], self._eval[name] = (
                    self._init[same], self._train[same], self._eval[same])
                continue
            self._init[name], self._train[name], self._eval[name] = jit_online(learner, dp)

    # ------------------------------------------------------------------ contract
    def init(self, key) -> dict:
        k_pre, k_learn, k_dqn = jax.random.split(key, 3)
        learners = {}
        for name in self.names:  # pvn_linear and random_linear share k_learn: only the encoder differs
            keys = jax.random.split(k_dqn if name == "dqn" else k_learn, self.seeds)
            learners[name] = self._init[name](keys[0] if self.host_env else keys)
        return {"phase": jnp.asarray(PHASE_COLLECT, jnp.int32), "pretrain": self._pretrain_init(k_pre),
                "learners": learners}

    def train_step(self, state: dict):
        phase = int(state["phase"])
        if phase == PHASE_COLLECT:
            metrics = self._collect()
            return dict(state, phase=jnp.asarray(PHASE_PRETRAIN, jnp.int32)), metrics, 0
        if phase == PHASE_PRETRAIN:
            return self._pretrain_step(state)
        return self._online_step(state)

    def evaluate(self, state: dict, num_episodes: int, key) -> dict:
        if self.host_env:
            return self._evaluate_host(state, num_episodes, key)
        out = {"return_mean": float("nan")}
        for i, name in enumerate(self.names):
            keys = jax.random.split(jax.random.fold_in(key, i), self.seeds)
            returns = np.asarray(self._eval[name](state["learners"][name], keys, int(num_episodes)))  # [S, N]
            out[f"return_mean/{name}"] = float(returns.mean())
            if name == "pvn_linear":
                out["return_mean"], out["return_std"] = float(returns.mean()), float(returns.std())
        return out

    def close(self) -> None:
        for learner in self.learners.values():
            if isinstance(learner, HostLearner):
                learner.close()
        if self._eval_env is not None:
            self._eval_env.close()
            self._eval_env = None
        try:
            plot_comparison(self.run_dir)
        except Exception:  # plotting must never hide a training error
            pass

    def _evaluate_host(self, state: dict, num_episodes: int, key) -> dict:
        """``num_episodes`` eval-mode games (``env.eval_options``; sticky actions from the env) per learner."""
        out = {"return_mean": float("nan")}
        if int(state["phase"]) != PHASE_ONLINE:  # nothing trained online yet (pretraining in progress)
            return out
        if self._eval_env is None:
            options = dict(eval_env_options(self.cfg))
            if "sticky_actions" in self.online_options:
                options["sticky_actions"] = self.online_options["sticky_actions"]
            self._eval_env = envs.make(self.env_id, num_envs=min(self.num_envs, int(num_episodes)),
                                       seed=int(self.cfg.seed) + 1, context=self.context, **options)
        for i, name in enumerate(self.names):
            cpu0 = time.process_time()
            res = self.learners[name].evaluate(state["learners"][name], self._eval_env, int(num_episodes),
                                               jax.random.fold_in(key, i))
            out[f"return_mean/{name}"] = res["return_mean"]
            out[f"return_std/{name}"] = res["return_std"]
            out[f"cpu_s/eval_{name}"] = self._count_cpu(f"eval/{name}", cpu0)
            if name == "pvn_linear":
                out.update(res)
        return out

    # ------------------------------------------------------------------ phases
    def dataset(self):
        if self._dataset is None:
            d = self.pcfg.data
            if d.source == "dqn_replay":
                self._dataset = DQNReplayDataset(d.path, list(d.dqn_replay_checkpoints) or None)
            else:
                self._dataset = TransitionDataset(str(self._dataset_dir()))
        return self._dataset

    def _dataset_dir(self) -> Path:
        d = self.pcfg.data
        return self.run_dir / "dataset" if d.source == "collect" else Path(d.path)

    def _collect(self) -> dict:
        d = self.pcfg.data
        if d.source != "collect":
            self.dataset()  # validates the path now, with the reader's error messages
            return {"collect/transitions": 0.0}
        root = self._dataset_dir()
        meta = root / "meta.json"
        if meta.exists() and json.loads(meta.read_text())["num_transitions"] >= d.collect_transitions:
            return {"collect/transitions": float(json.loads(meta.read_text())["num_transitions"])}
        shutil.rmtree(root, ignore_errors=True)  # a partial collection from an interrupted run
        if self.host_env:
            env = envs.make(self.env_id, num_envs=self.num_envs, seed=int(self.cfg.seed) + 0xC0, context=self.context,
                            **self.options)
            try:
                stats = collect_host(env, d.collect_transitions, int(self.cfg.seed) + 0xC0,
                                     TransitionWriter(str(root), d.chunk_size), self.spec.action.num_actions)
            finally:
                env.close()
            return {f"collect/{k}": float(v) for k, v in stats.items()}
        key = jax.random.fold_in(jax.random.PRNGKey(self.cfg.seed), 0xC011EC7)
        stats = collect_jax(self.fns, self.env_params, self.num_envs, d.collect_transitions, key,
                            TransitionWriter(str(root), d.chunk_size), uniform_policy(self.spec.action.num_actions))
        return {f"collect/{k}": float(v) for k, v in stats.items()}

    def _batches(self, step: int, num_batches: int, indicator=None) -> dict:
        pre, d = self.pcfg.pretrain, self.pcfg.data
        rng = np.random.default_rng([int(self.cfg.seed), step])
        ds = self.dataset()
        scores = self._score_cache(indicator) if indicator is not None else None
        if isinstance(ds, DQNReplayDataset):
            window = replay_window(ds.checkpoints, step, int(self.cfg.seed), d.dqn_replay_window,
                                   d.dqn_replay_updates_per_window)
            return ds.sample(rng, pre.batch_size, num_batches, window, scores=scores)
        return ds.sample(rng, pre.batch_size, num_batches, d.chunks_in_memory, scores=scores)

    def _score_cache(self, indicator):
        """The indicator score cache (agents.pvn.score_cache) if ``indicators.score_cache`` enables it, else None."""
        if not self._scores_decided:
            self._scores_decided = True
            pre, ds = self.pcfg.pretrain, self.dataset()
            per_transition = (None if isinstance(ds, DQNReplayDataset)
                              else pre.num_updates * pre.batch_size / ds.num_transitions)
            on = cache_enabled(pre.indicators.score_cache, pre.indicators.family, per_transition)
            self._scores = make_score_cache(self.pretrainer.indicators, pre.indicators, pre.num_tasks, self.obs_shape,
                                            indicator, str(self.run_dir / "indicator_scores"),
                                            pre.batch_size) if on else None
        return self._scores

    def _count_cpu(self, stage: str, since: float) -> float:
        """Adds the process CPU seconds since ``since`` to ``stage``; returns the stage's total."""
        self._cpu[stage] = self._cpu.get(stage, 0.0) + time.process_time() - since
        return self._cpu[stage]

    def _pretrain_step(self, state: dict):
        cpu0 = time.process_time()
        state, metrics, n = self._pretrain_step_timed(state)
        metrics["cpu_s/pretrain"] = self._count_cpu("pretrain", cpu0)
        return state, metrics, n

    def _pretrain_step_timed(self, state: dict):
        pre = self.pcfg.pretrain
        step = int(state["pretrain"].step)
        k = pre.updates_per_call
        batches = self._batches(step, k, state["pretrain"].indicator)
        batches = {name: jnp.asarray(v) for name, v in batches.items()}
        new_pre, m = self._pretrain_many(state["pretrain"], batches)
        metrics = {f"pretrain/{name}": float(v) for name, v in m.items()}
        metrics["pretrain/updates"] = float(step + k)
        state = dict(state, pretrain=new_pre)
        if step + k >= pre.num_updates:
            metrics.update(self._finish_pretraining(new_pre))
            torso = jax.tree.map(lambda x: jnp.broadcast_to(x, (self.seeds, *x.shape)),
                                 {"params": new_pre.params["params"]["torso"]})  # one copy per learner seed
            learners = dict(state["learners"])
            if self.host_env:
                learners["pvn_linear"] = with_encoder(learners["pvn_linear"],
                                                      {"params": new_pre.params["params"]["torso"]})
            else:
                learners["pvn_linear"] = learners["pvn_linear"]._replace(
                    agent=with_encoder(learners["pvn_linear"].agent, torso))
            if self.pcfg.eval.feature_norm == "standardize":
                learners = self._standardize_features(learners)
            state = dict(state, learners=learners, phase=jnp.asarray(PHASE_ONLINE, jnp.int32))
        return state, metrics, 0

    def _standardize_features(self, learners: dict) -> dict:
        """``pvn.eval.feature_norm: standardize``: every frozen-encoder learner's features get the mean/SD of its own
        encoder over the same ``feature_norm_states`` states drawn across the dataset (host learners: a
        ``DQNState``; JAX-native: seed axis [S] on the params, one mean/SD per seed)."""
        ev = self.pcfg.eval
        rng = np.random.default_rng([int(self.cfg.seed), 0xFEA7])
        obs = jnp.asarray(np.concatenate(list(whole_dataset_observations(self.dataset(), int(ev.feature_norm_states),
                                                                        rng))))
        spec = self.pcfg.pretrain.encoder.spec()
        stats = jax.jit(lambda params, o: feature_norm_stats(spec, params, o))
        out = dict(learners)
        for name in self.names:
            if self._trains_encoder(name):  # features change as the encoder trains: nothing to standardise
                continue
            if self.host_env:
                out[name] = with_feature_norm(learners[name], *stats(encoder_params(learners[name]), obs))
            else:
                agent = learners[name].agent
                out[name] = learners[name]._replace(
                    agent=with_feature_norm(agent, *jax.vmap(stats, in_axes=(0, None))(encoder_params(agent), obs)))
        return out

    def _finish_pretraining(self, pre_state) -> dict:
        """Measure indicator firing rates on the data and export the encoder."""
        self.firing_rates = self.measure_firing_rates(pre_state)
        fr = self.firing_rates
        atomic_write_json(self.run_dir / "firing_rates.json",
                          {"target": self.pcfg.pretrain.indicators.fire_fraction
                           if self.pcfg.pretrain.indicators.family == "rnd"
                           else 1.0 / self.pcfg.pretrain.indicators.hash_bins,
                           "mean": float(fr.mean()), "min": float(fr.min()), "max": float(fr.max()),
                           "per_task": [float(x) for x in fr]})
        if self.pcfg.export_encoder:
            save_encoder(self.run_dir / "encoder", self.pcfg.pretrain.encoder.spec(),
                         {"params": pre_state.params["params"]["torso"]}, self.obs_shape, source="pvn",
                         env_id=self.spec.env_id, num_tasks=self.pcfg.pretrain.num_tasks,
                         pretrain_updates=int(pre_state.step))
        return {"pretrain/fire_rate_mean": float(fr.mean()), "pretrain/fire_rate_min": float(fr.min()),
                "pretrain/fire_rate_max": float(fr.max())}

    def measure_firing_rates(self, pre_state) -> np.ndarray:
        """Per-task fraction of dataset states on which each indicator fires: [T].

        ``fire_rate_transitions`` states drawn across the WHOLE dataset (every DQN Replay checkpoint, or every chunk
        of a suite dataset, in proportion to its size), one checkpoint/chunk in memory at a time.
        """
        rng = np.random.default_rng([int(self.cfg.seed), 0xF1])
        return firing_rates(self.pretrainer.indicators, pre_state.indicator,
                            whole_dataset_observations(self.dataset(), self.pcfg.fire_rate_transitions, rng))

    def _online_step(self, state: dict):
        if self.host_env:
            return self._online_step_host(state)
        learners = dict(state["learners"])
        metrics = {}
        for name in self.names:
            learners[name], m = self._train[name](learners[name])
            metrics.update(mean_metrics({f"{name}/{k}": v for k, v in jax.device_get(m).items()}))  # over seeds [S]
        if "pvn_linear/episode_return" in metrics:
            metrics["episode_return"] = metrics["pvn_linear/episode_return"]
        n = self.pcfg.eval.iterations_per_call * self.num_envs
        return dict(state, learners=learners), metrics, n

    def _online_step_host(self, state: dict):
        """``eval.iterations_per_call`` vector steps of every learner on its own host env (equal budgets)."""
        learners = dict(state["learners"])
        metrics, n = {}, 0
        for i, name in enumerate(self.names):
            cpu0 = time.process_time()
            learners[name], m, n = self.learners[name].chunk(learners[name])
            metrics.update({f"{name}/{k}": v for k, v in m.items()})
            metrics[f"{name}/cpu_s"] = self._count_cpu(f"online/{name}", cpu0)
        if "pvn_linear/episode_return" in metrics:
            metrics["episode_return"] = metrics["pvn_linear/episode_return"]
        return dict(state, learners=learners), metrics, n


LABELS = {"pvn_linear": "PVN + linear Q (frozen)", "random_linear": "random encoder + linear Q (frozen)",
          "dqn": "DQN end-to-end (same architecture)"}


def plot_comparison(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """PNG of the evaluation return of every learner vs online env steps (from the run's metrics.jsonl)."""
    from omnitask.metrics_log import read_metrics
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omnitask.plotting import format_step_axis

    evals = [r for r in read_metrics(Path(run_dir)) if r.get("split") == "eval"]
    if not evals:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, label in LABELS.items():
        pts = [(r["env_steps"], r[f"return_mean/{name}"]) for r in evals if f"return_mean/{name}" in r]
        if pts:
            ax.plot(*zip(*pts), "o-", label=label)
    ax.set_xlabel("online env steps (per learner)")
    format_step_axis(ax)  # 250k, 1.2M: tick labels never run together
    ax.set_ylabel("evaluation return")
    ax.set_title(f"PVN vs baselines: {Path(run_dir).name}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "pvn_comparison.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
