"""Online evaluation of an encoder: a linear Q head on its features, trained by the DQN baseline (n-step double DQN).

The same learner runs three ways (equal budgets, same code):
  * PVN-linear:    encoder = pretrained PVN torso, frozen; only the linear head learns.
  * random-linear: encoder = randomly initialised torso, frozen.
  * DQN (end-to-end): encoder randomly initialised and trained with the head (``fine_tune=True``); also the
    optional fine-tuning of a PVN encoder.
Everything DQN-shaped is the DQN baseline's own code: ``agents.dqn`` (replay, n-step sampling, epsilon schedule,
double-DQN update, its jitted JAX-native loop ``make_jax_dqn``) and ``agents.common.jax_eval.run_episodes`` for the
evaluation episodes. PVN adds only its Q-network, ``QNetwork(PVNTorso(encoder), A)``, and the settings mapping
``LinearEvalConfig -> DQNConfig`` (``dqn_config_from_eval``). With a frozen encoder the DQN agent's
``store_features`` hook keeps the encoder's features in the replay instead of pixels (computed once when a step is
stored), so an update is a linear-head step: identical maths, ~``3 * batch / E`` times fewer encoder passes.
Sticky actions (``sticky_prob``, as ALE v5: the env repeats the previous action) wrap the env functions
(``sticky_actions``), so training and evaluation episodes both have them. Host-simulator envs (Atari) run the
same agent on the DQN baseline's host loop (``agents.pvn.host``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from agents.common.jax_eval import run_episodes
from agents.common.networks import QNetwork
from agents.dqn.agent import DQNAgent, DQNState
from agents.dqn.config import DQNConfig
from agents.dqn.jax_loop import DQNRunner, make_jax_dqn, summarize
from agents.dqn.trainer import STATE_BATCH_AXES
from agents.pvn.networks import Encoder, EncoderSpec
from envs.jax_env import JaxEnvFunctions


EVAL_PRESETS = ("omnitask", "reference")
FEATURE_NORMS = ("none", "standardize")
REFERENCE_PRESET = dict(eps_start=0.01, eps_final=0.01, min_replay=2_000, max_grad_norm=10.0, sticky_prob=0.0)


@dataclasses.dataclass
class LinearEvalConfig:
    """Online linear-Q evaluation (defaults: Dopamine's DQN, as the paper's text).

    ``preset``: 'omnitask' (the fields as given: epsilon annealed 1.0 -> eps_final over eps_decay_steps after a
    min_replay warm-up, no gradient clipping, sticky actions 0.25 on Atari) or 'reference' (google-research pvn's
    Acme double-Q evaluation: constant epsilon 0.01, a 2k warm-up, gradient clipping at norm 10, no sticky actions
    in training or evaluation); 'reference' overrides exactly the fields of ``REFERENCE_PRESET``.
    """

    preset: str = "omnitask"  # 'omnitask' or 'reference' (see above)
    fine_tune: bool = False  # also train the encoder (off: frozen features, the PVN protocol)
    learning_rate: float = 6.25e-5  # Adam step size
    # Adam step size of a learner whose encoder is frozen (PVN-linear, random-linear: only the linear head trains);
    # None = learning_rate. A head on frozen features may need a larger step than an end-to-end CNN at a small
    # budget (pilots: README, PVN section; configs/pvn/atari_upndown_cpu.yaml); the end-to-end DQN keeps
    # learning_rate.
    head_learning_rate: Optional[float] = None
    adam_eps: float = 1.5e-4  # Adam epsilon
    batch_size: int = 32  # transitions per update
    n_step: int = 5  # n-step returns
    gamma: float = 0.99  # discount
    huber_delta: float = 1.0  # Huber loss threshold (0 = plain L2)
    max_grad_norm: float = 0.0  # global gradient-norm clip (0 = none; the reference preset clips at 10)
    target_update_period: int = 2000  # updates between hard target-network copies
    replay_capacity: int = 1_000_000  # transitions held (split evenly over the parallel envs)
    min_replay: int = 20_000  # transitions collected before updates start
    update_period: int = 4  # env steps (summed over envs) per gradient update
    eps_start: float = 1.0  # initial exploration epsilon
    eps_final: float = 0.01  # final exploration epsilon
    eps_decay_steps: int = 250_000  # env steps of linear epsilon decay (after min_replay)
    eval_epsilon: float = 0.001  # epsilon of evaluation episodes
    # 'none' (the reference: raw features) or 'standardize': a frozen encoder's features enter the linear head as
    # (f - mean) / SD per feature, measured on ``feature_norm_states`` dataset states when the online phase starts
    # (the same states for every frozen encoder). Raw ReLU features of a Nature CNN on Atari vary little across
    # states (SD ~0.03 against a mean ~0.02-0.07), so Adam moves the state-dependent part of a linear Q far slower
    # than its bias and the greedy policy stays near one constant action (measured: configs/pvn/atari_upndown_cpu.yaml).
    feature_norm: str = "none"
    feature_norm_states: int = 2000  # dataset states the feature mean/SD are measured on
    sticky_prob: float = 0.25  # probability the env repeats the previous action (train and eval)
    iterations_per_call: int = 250  # parallel env steps fused into one jitted train call
    eval_max_steps: int = 27_000  # cap on an evaluation episode's length (108k frames / 4 on Atari)

    def __post_init__(self):
        if self.preset not in EVAL_PRESETS:
            raise ValueError(f"pvn.eval.preset {self.preset!r} unknown; allowed: {', '.join(EVAL_PRESETS)}")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"pvn.eval.feature_norm {self.feature_norm!r} unknown; allowed: {', '.join(FEATURE_NORMS)}")
        if self.feature_norm_states < 2:
            raise ValueError(f"pvn.eval.feature_norm_states must be >= 2, got {self.feature_norm_states}")
        if self.head_learning_rate is not None and not self.head_learning_rate > 0:
            raise ValueError(f"pvn.eval.head_learning_rate must be > 0 or null (= pvn.eval.learning_rate), got "
                             f"{self.head_learning_rate}")
        if self.preset == "reference":
            for name, value in REFERENCE_PRESET.items():
                setattr(self, name, type(getattr(self, name))(value))


def dqn_config_from_eval(ev: LinearEvalConfig, num_envs: int, fine_tune: bool = True) -> DQNConfig:
    """The DQN baseline's config for PVN's online evaluation settings on ``num_envs`` envs: ``fine_tune=False``
    (a frozen encoder, only the head trains) -> Adam at ``head_learning_rate`` if set; ``min_replay`` ->
    ``learning_starts`` (also where epsilon starts to decay), ``update_period`` env steps per gradient update ->
    ``train_every``/``gradient_steps``, hard target copies, ``iterations_per_call`` vector steps per train step."""
    if num_envs % ev.update_period and ev.update_period % num_envs:
        raise ValueError(f"env.num_envs ({num_envs}) and pvn.eval.update_period ({ev.update_period}) must divide "
                         "one another")
    lr = ev.learning_rate if fine_tune or ev.head_learning_rate is None else ev.head_learning_rate
    return DQNConfig(lr=lr, adam_eps=ev.adam_eps, gamma=ev.gamma, n_step=ev.n_step,
                     buffer_size=ev.replay_capacity, batch_size=ev.batch_size, learning_starts=ev.min_replay,
                     train_every=max(1, ev.update_period // num_envs),
                     gradient_steps=max(1, num_envs // ev.update_period),
                     target_update_period=ev.target_update_period, target_tau=1.0, double_q=True,
                     huber_delta=ev.huber_delta, max_grad_norm=ev.max_grad_norm, epsilon_start=ev.eps_start,
                     epsilon_end=ev.eps_final, epsilon_decay_steps=ev.eps_decay_steps,
                     eval_epsilon=ev.eval_epsilon, steps_per_train_step=ev.iterations_per_call)


class PVNTorso(nn.Module):
    """``Encoder(spec)`` (params under ``'encoder'``) whose features are gradient-stopped unless ``fine_tune``.

    ``standardize``: features ``[B, F]`` become ``(f - feature_mean) * feature_scale``, two frozen ``[F]`` params
    (identity at init; ``with_feature_norm`` sets them from the encoder's features on dataset states)."""

    spec: EncoderSpec
    fine_tune: bool = False
    standardize: bool = False

    @nn.compact
    def __call__(self, obs):
        features = Encoder(self.spec, name="encoder")(obs)
        if self.standardize:
            dim = features.shape[-1]
            mean = self.param("feature_mean", nn.initializers.zeros, (dim,))
            scale = self.param("feature_scale", nn.initializers.ones, (dim,))
            features = (features - jax.lax.stop_gradient(mean)) * jax.lax.stop_gradient(scale)
        return features if self.fine_tune else jax.lax.stop_gradient(features)


def online_q_network(encoder_spec: EncoderSpec, num_actions: int, fine_tune: bool,
                     feature_norm: str = "none") -> QNetwork:
    """The online learners' Q-network: the (frozen unless ``fine_tune``) encoder and a linear head; a frozen
    encoder's features are standardised when ``feature_norm == 'standardize'``."""
    return QNetwork(PVNTorso(encoder_spec, fine_tune, feature_norm == "standardize" and not fine_tune), num_actions)


def feature_norm_stats(encoder_spec: EncoderSpec, params: dict, obs: jax.Array, batch: int = 500
                       ) -> tuple[jax.Array, jax.Array]:
    """Per-feature mean ``[F]`` and scale ``[F]`` (1 / SD) of ``Encoder(spec)`` features over ``obs [N, ...]``.
    A feature whose SD is below 1% of the mean SD (dead or nearly constant ReLU units) gets scale 1 / (1% of the
    mean SD), so a unit silent on these states cannot blow up on others."""
    encoder = Encoder(encoder_spec)
    feats = jnp.concatenate([encoder.apply(params, obs[i:i + batch]) for i in range(0, obs.shape[0], batch)])
    sd = jnp.std(feats, axis=0)
    return jnp.mean(feats, axis=0), 1.0 / jnp.maximum(sd, 0.01 * jnp.mean(sd) + 1e-12)


def with_feature_norm(state: DQNState, mean: jax.Array, scale: jax.Array) -> DQNState:
    """``state`` (a frozen, ``standardize`` torso) with feature mean/scale ``[F]`` in online and target networks."""
    return _with_torso_entries(state, feature_mean=mean, feature_scale=scale)


def _with_torso_entries(state: DQNState, **entries) -> DQNState:
    """``state`` with the torso's params ``entries`` replaced in online and target networks (fresh copies)."""
    def put(net_params):
        inner = dict(net_params["params"])
        inner["torso"] = dict(inner["torso"], **jax.tree.map(jnp.array, entries))
        return dict(net_params, params=inner)

    ts = state.train_state
    return state._replace(train_state=ts._replace(params=put(ts.params), target_params=put(ts.target_params)))


def encoder_params(state: DQNState) -> dict:
    """The encoder's params inside the online Q-network: ``{'params': ...}`` of ``Encoder(spec)``."""
    return {"params": state.train_state.params["params"]["torso"]["encoder"]}


def head_params(state: DQNState) -> dict:
    return {k: v for k, v in state.train_state.params["params"].items() if k != "torso"}


def with_encoder(state: DQNState, params: dict) -> DQNState:
    """``state`` with the (pretrained) ``Encoder`` params ``{'params': ...}`` in online and target networks (fresh
    copies; leading learner-seed axes, if any, must already be on ``params``)."""
    return _with_torso_entries(state, encoder=params["params"])


def sticky_actions(fns: JaxEnvFunctions, prob: float) -> JaxEnvFunctions:
    """Env functions that repeat the previous executed action with probability ``prob`` (ALE v5's sticky actions;
    the previous action is 0 after a reset). ``prob <= 0``: ``fns`` unchanged."""
    if prob <= 0:
        return fns

    def reset(key, params):
        state, ts = fns.reset(key, params)
        return (state, jnp.zeros((), jnp.int32)), ts

    def step(key, state, action, params):
        inner, previous = state
        k_sticky, k_env = jax.random.split(key)
        executed = jnp.where(jax.random.uniform(k_sticky) < prob, previous, action).astype(jnp.int32)
        inner, ts = fns.step(k_env, inner, executed, params)
        return (inner, jnp.where(ts.done, 0, executed)), ts

    return JaxEnvFunctions(reset, step, fns.params_from_context)


# Where the env batch sits in a vmapped learner state [S, ...] (split over run.mesh): the DQN state's env columns
# and the env states, one axis after the learner-seed axis; the learners' params stay replicated.
ONLINE_BATCH_AXES = DQNRunner(jax.tree.map(lambda axis: axis + 1, STATE_BATCH_AXES), 1, 1, 1)


class OnlineLearner(NamedTuple):
    """One online learner on a JAX-native env (pure; the trainer vmaps it over learner seeds)."""

    agent: DQNAgent
    init: Callable[[jax.Array], DQNRunner]  # key -> state (random encoder; ``with_encoder`` puts another in)
    chunk: Callable[[DQNRunner], tuple[DQNRunner, dict]]  # ``iterations_per_call`` vector steps -> scalar metrics
    evaluate: Callable[[DQNRunner, jax.Array, int], jax.Array]  # (state, key, num_episodes) -> returns [N]


def make_online_learner(ev: LinearEvalConfig, encoder_spec: EncoderSpec, spec, fns: JaxEnvFunctions,
                        contexts: jax.Array, num_envs: int, fine_tune: bool, precision: str = "float32"
                        ) -> OnlineLearner:
    """The DQN baseline's JAX-native loop with PVN's Q-network on ``num_envs`` envs of contexts ``[E, C]``."""
    cfg = dqn_config_from_eval(ev, num_envs, fine_tune)
    fns = sticky_actions(fns, ev.sticky_prob)
    network = online_q_network(encoder_spec, spec.action.num_actions, fine_tune, ev.feature_norm)
    agent, init_runner, run = make_jax_dqn(cfg, spec, fns, num_envs, network, precision,
                                           store_features=not fine_tune)
    contexts = jnp.asarray(contexts, jnp.float32)

    def init(key):
        return init_runner(key, contexts)

    def chunk(runner: DQNRunner):
        runner, metrics = run(runner, ev.iterations_per_call)
        out = summarize(metrics)
        out["episode_return"], out["episodes"] = out.pop("train/episode_return"), out.pop("train/episodes")
        out["updates"] = runner.agent.train_state.num_updates
        return runner, out

    def evaluate(runner: DQNRunner, key, num_episodes: int):
        """Returns of ``num_episodes`` episodes of the ``eval_epsilon``-greedy policy, all in env 0's context."""
        params = runner.agent.train_state.params
        rows = jnp.repeat(contexts[:1], num_episodes, axis=0)  # [N, C]
        policy = lambda obs, k: agent.act(params, obs, k, ev.eval_epsilon)  # noqa: E731
        return run_episodes(policy, fns, rows, key, ev.eval_max_steps)["return"]

    return OnlineLearner(agent, init, chunk, evaluate)
