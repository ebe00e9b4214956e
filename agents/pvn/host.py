"""PVN's online linear-Q evaluation on host-simulator envs (Atari ``protocol='dqn'``), on the DQN baseline's host loop.

The JAX-native path runs the DQN baseline's jitted loop (``agents.pvn.evaluate.make_online_learner``); a host env
steps in Python, so here the same agent (``agents.dqn.agent.make_dqn_agent`` with PVN's
``QNetwork(PVNTorso(encoder), A)``, the settings of ``dqn_config_from_eval``) runs on the DQN baseline's host
chunk (``dqn_host_agent``) and host engine:

* ``PVNTorso`` stops the encoder's gradients unless ``fine_tune``: its params get exactly zero gradients, so Adam
  leaves them bit-for-bit unchanged and only the linear head learns. ``fine_tune=True`` trains encoder and head
  together (the end-to-end DQN baseline uses it with a random encoder).
* Sticky actions come from the env itself (Atari's dqn protocol repeats the previous action with p=0.25 in both
  train and eval modes); the trainer passes ``sticky_actions=sticky_prob`` to the env only under
  ``pvn.eval.preset: reference`` (0: none, as the reference), otherwise the protocol's own value stands.
* A frozen encoder (PVN-linear, random-linear) uses the DQN agent's ``store_features`` hook: the replay holds the
  encoder's features ``[R, E, F]`` (computed once when a step is stored) and an update is a linear-head step
  (optimiser state over the head only). The end-to-end learner (``fine_tune``) keeps the pixel replay (uint8
  ``[R, E, 84, 84, 4]`` obs and next_obs: 1M transitions = ~56 GB); ``run.replay: host`` keeps it in host memory.

Simulator state is not checkpointable: on resume the host envs restart from a seeded reset (as in DQNTrainer).
"""
from __future__ import annotations

import jax
import numpy as np

from agents.common.engines import HostEngine
from agents.common.trainer_utils import evaluate_host
from agents.dqn.agent import DQNState, make_dqn_agent
from agents.dqn.trainer import STATE_BATCH_AXES, dqn_host_agent
from agents.pvn.evaluate import (LinearEvalConfig, PVNTorso, dqn_config_from_eval, encoder_params, head_params,
                                 online_q_network, with_encoder)
from agents.pvn.networks import EncoderSpec
from envs.timestep import episode_over
from omnitask.mesh import DataParallel


def replay_bytes(ev: LinearEvalConfig, spec) -> int:
    """Bytes of one learner's pixel replay (obs and next_obs): ``2 * capacity * prod(obs_shape) * itemsize``."""
    return 2 * int(ev.replay_capacity) * int(np.prod(spec.observation.shape)) * np.dtype(spec.observation.dtype).itemsize


def available_memory_bytes(host: bool = False) -> int | None:
    """Free memory of the default JAX device (GPU: its allocator limit; CPU: MemAvailable), or of the host
    (``host``: MemAvailable), or None if unknown."""
    try:
        stats = {} if host else (jax.devices()[0].memory_stats() or {})
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    except Exception:  # backends without memory_stats
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_replay_memory(ev: LinearEvalConfig, spec, num_learners: int, host: bool = False) -> None:
    """Refuse (before allocating) replays that cannot fit: the DQN agent allocates them at ``init`` (on the device,
    or in host memory under ``run.replay: host``)."""
    need = num_learners * replay_bytes(ev, spec)
    free = available_memory_bytes(host)
    if free is not None and need > 0.9 * free:
        raise ValueError(f"pvn.eval.replay_capacity={ev.replay_capacity}: {num_learners} host-env learner(s) "
                         f"with a trained encoder (dqn, or eval.fine_tune) need {need / 2**30:.1f} GiB of pixel replay "
                         f"({tuple(spec.observation.shape)} uint8, obs and next_obs) but the "
                         f"{'host (run.replay=host)' if host else 'device'} has {free / 2**30:.1f} GiB free; lower "
                         "pvn.eval.replay_capacity or drop baselines")


class HostLearner:
    """One online learner (state: the DQN agent's ``DQNState``) on the host engine, with its own env (made on first
    use, reset from ``seed + env_steps``): the DQN baseline's ``dqn_host_agent`` with the PVN Q-network."""

    def __init__(self, ev: LinearEvalConfig, encoder_spec: EncoderSpec, spec, num_envs: int, make_env,
                 fine_tune: bool, seed: int, precision: str = "float32", replay: str = "device",
                 mesh: DataParallel | None = None):
        self.cfg = dqn_config_from_eval(ev, num_envs, fine_tune)
        self.num_envs, self.fine_tune = num_envs, fine_tune
        self.eval_max_steps = int(ev.eval_max_steps)
        network = online_q_network(encoder_spec, spec.action.num_actions, fine_tune, ev.feature_norm)
        self.agent = make_dqn_agent(self.cfg, spec, num_envs, network=network, precision=precision, replay=replay,
                                    store_features=not fine_tune)
        self.engine = HostEngine(make_env, dqn_host_agent(self.agent, self.cfg, episode_prefix=""), seed,
                                 make_eval_env=None, eval_max_steps=self.eval_max_steps, mesh=mesh)
        # a host replay is allocated in host memory: its init must not run under jit (that would place it on the
        # device); the state is laid out on run.mesh as the DQN trainer's
        init = self.agent.init if replay == "host" else jax.jit(self.agent.init)
        self.init = lambda key: self.engine.dp.put(init(key), STATE_BATCH_AXES)

    # ------------------------------------------------------------------ params
    encoder_params = staticmethod(encoder_params)
    head_params = staticmethod(head_params)
    with_encoder = staticmethod(with_encoder)

    # ------------------------------------------------------------------ loop
    def chunk(self, state: DQNState):
        """``iterations_per_call`` vector steps on the host env (the DQN baseline's host chunk)."""
        return self.engine.train_step(state)

    def evaluate(self, state: DQNState, eval_env, num_episodes: int, key) -> dict:
        return evaluate_host(eval_env, self.engine.policy(state), num_episodes, key, self.eval_max_steps)

    def close(self) -> None:
        self.engine.close()


def collect_host(env, num_transitions: int, seed: int, writer, num_actions: int) -> dict:
    """Uniform-random behaviour policy on a host BatchedEnv into ``writer`` (``TransitionWriter``)."""
    rng = np.random.default_rng(seed)
    obs = env.reset(seed=seed).observation
    written, returns = 0, []
    while written < num_transitions:
        actions = rng.integers(0, num_actions, env.num_envs).astype(np.int32)
        ts = env.step(actions)
        take = min(env.num_envs, num_transitions - written)
        batch = {"observation": obs, "action": actions, "reward": ts.reward, "terminated": ts.terminated,
                 "truncated": ts.truncated, "next_observation": ts.info["final_observation"]}
        writer.add({k: np.asarray(v)[:take] for k, v in batch.items()})
        written += take
        returns.extend(np.asarray(ts.info["episode_return"])[episode_over(ts)].tolist())
        obs = ts.observation
    writer.close()
    return {"transitions": written, "episodes": len(returns),
            "behaviour_return": float(np.mean(returns)) if returns else float("nan")}


__all__ = ["HostLearner", "PVNTorso", "check_replay_memory", "collect_host", "dqn_config_from_eval"]
