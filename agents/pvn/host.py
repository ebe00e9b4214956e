"""PVN's online linear-Q evaluation on host-simulator envs (Atari ``protocol='dqn'``), on the DQN baseline's machinery.

The JAX-native path (``agents.pvn.evaluate``) runs the whole online phase inside jit; a host env steps in Python,
so here the DQN baseline's host pieces are reused unchanged: ``agents.dqn.agent.make_dqn_agent`` (epsilon-greedy
``act``, replay, n-step double-DQN ``observe``) with the Q-network ``QNetwork(PVNTorso(encoder), A)``:

* ``PVNTorso`` wraps ``networks.Encoder`` (the pretrained PVN torso once ``with_encoder`` has put its params in)
  and applies ``jax.lax.stop_gradient`` to its features unless ``fine_tune``: the encoder's gradients are exactly
  zero, so Adam (no weight decay, no clipping: ``max_grad_norm=0``) leaves its params bit-for-bit unchanged and
  only the linear head learns. ``fine_tune=True`` trains encoder and head together (the end-to-end DQN baseline
  uses it with a random encoder).
* ``LinearEvalConfig`` maps onto ``DQNConfig`` (``dqn_config_from_eval``): n-step, lr, Adam eps, batch, target
  period (hard copies), replay capacity, ``min_replay`` -> ``learning_starts``, ``update_period`` env steps per
  gradient update, epsilon schedule, ``eval_epsilon``; ``iterations_per_call`` vector steps per ``train_step``.
* Sticky actions come from the env itself (Atari's dqn protocol repeats the previous action with p=0.25 in both
  train and eval modes); the trainer passes ``sticky_actions=sticky_prob`` to the env only under
  ``pvn.eval.preset: reference`` (0: none, as the reference), otherwise the protocol's own value stands.
* Replay holds pixels (the DQN agent's uint8 ``[R, E, 84, 84, 4]`` obs and next_obs): 1M transitions = ~56 GB.

Simulator state is not checkpointable: on resume the host envs restart from a seeded reset (as in DQNTrainer).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from agents.common.networks import QNetwork
from agents.common.engines import HostEngine
from agents.common.trainer_utils import evaluate_host
from agents.dqn.agent import DQNState, make_dqn_agent
from agents.dqn.config import DQNConfig
from agents.dqn.trainer import dqn_host_agent
from agents.pvn.evaluate import LinearEvalConfig
from agents.pvn.networks import Encoder, EncoderSpec
from envs.timestep import episode_over


class PVNTorso(nn.Module):
    """``Encoder(spec)`` (params under ``'encoder'``) whose features are gradient-stopped unless ``fine_tune``."""

    spec: EncoderSpec
    fine_tune: bool = False

    @nn.compact
    def __call__(self, obs):
        features = Encoder(self.spec, name="encoder")(obs)
        return features if self.fine_tune else jax.lax.stop_gradient(features)


def dqn_config_from_eval(ev: LinearEvalConfig, num_envs: int) -> DQNConfig:
    """The DQN baseline's config for PVN's online evaluation settings on ``num_envs`` host envs."""
    if num_envs % ev.update_period and ev.update_period % num_envs:
        raise ValueError(f"env.num_envs ({num_envs}) and pvn.eval.update_period ({ev.update_period}) must divide "
                         "one another")
    if ev.huber_delta <= 0:
        raise ValueError("pvn.eval.huber_delta must be > 0 on host envs (the DQN baseline's Huber loss)")
    return DQNConfig(lr=ev.learning_rate, adam_eps=ev.adam_eps, gamma=ev.gamma, n_step=ev.n_step,
                     buffer_size=ev.replay_capacity, batch_size=ev.batch_size, learning_starts=ev.min_replay,
                     train_every=max(1, ev.update_period // num_envs),
                     gradient_steps=max(1, num_envs // ev.update_period),
                     target_update_period=ev.target_update_period, target_tau=1.0, double_q=True,
                     huber_delta=ev.huber_delta, max_grad_norm=ev.max_grad_norm, epsilon_start=ev.eps_start,
                     epsilon_end=ev.eps_final, epsilon_decay_steps=ev.eps_decay_steps,
                     eval_epsilon=ev.eval_epsilon, steps_per_train_step=ev.iterations_per_call)


def replay_bytes(ev: LinearEvalConfig, spec) -> int:
    """Bytes of one learner's pixel replay (obs and next_obs): ``2 * capacity * prod(obs_shape) * itemsize``."""
    return 2 * int(ev.replay_capacity) * int(np.prod(spec.observation.shape)) * np.dtype(spec.observation.dtype).itemsize


def available_memory_bytes() -> int | None:
    """Free memory of the default JAX device (GPU: its allocator limit; CPU: MemAvailable), or None if unknown."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
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


def check_replay_memory(ev: LinearEvalConfig, spec, num_learners: int) -> None:
    """Refuse (before allocating) replays that cannot fit: the DQN agent allocates them at ``init``."""
    need = num_learners * replay_bytes(ev, spec)
    free = available_memory_bytes()
    if free is not None and need > 0.9 * free:
        raise ValueError(f"pvn.eval.replay_capacity={ev.replay_capacity}: {num_learners} host-env learner(s) "
                         f"(pvn_linear + pvn.baselines) need {need / 2**30:.1f} GiB of pixel replay "
                         f"({tuple(spec.observation.shape)} uint8, obs and next_obs) but the device has "
                         f"{free / 2**30:.1f} GiB free; lower pvn.eval.replay_capacity or drop baselines")


class HostLearner:
    """One online learner (state: the DQN agent's ``DQNState``) on the host engine, with its own env (made on first
    use, reset from ``seed + env_steps``): the DQN baseline's ``dqn_host_agent`` with the PVN Q-network."""

    def __init__(self, ev: LinearEvalConfig, encoder_spec: EncoderSpec, spec, num_envs: int, make_env,
                 fine_tune: bool, seed: int):
        self.cfg = dqn_config_from_eval(ev, num_envs)
        self.num_envs, self.fine_tune = num_envs, fine_tune
        self.eval_max_steps = int(ev.eval_max_steps)
        network = QNetwork(PVNTorso(encoder_spec, fine_tune), spec.action.num_actions)
        self.agent = make_dqn_agent(self.cfg, spec, num_envs, network=network)
        self.engine = HostEngine(make_env, dqn_host_agent(self.agent, self.cfg, episode_prefix=""), seed,
                                 make_eval_env=None, eval_max_steps=self.eval_max_steps)

    # ------------------------------------------------------------------ params
    @staticmethod
    def encoder_params(state: DQNState) -> dict:
        """The encoder's params inside the online Q-network: ``{'params': ...}`` of ``Encoder(spec)``."""
        return {"params": state.train_state.params["params"]["torso"]["encoder"]}

    @staticmethod
    def head_params(state: DQNState) -> dict:
        return {k: v for k, v in state.train_state.params["params"].items() if k != "torso"}

    @staticmethod
    def with_encoder(state: DQNState, encoder_params: dict) -> DQNState:
        """``state`` with the (pretrained) ``Encoder`` params in online and target networks (fresh copies)."""
        def put(params):
            inner = dict(params["params"])
            inner["torso"] = {"encoder": jax.tree.map(jnp.array, encoder_params["params"])}
            return dict(params, params=inner)

        ts = state.train_state
        return state._replace(train_state=ts._replace(params=put(ts.params), target_params=put(ts.target_params)))

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
