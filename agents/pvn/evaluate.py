"""Online evaluation of an encoder: a linear Q head on its features trained by n-step double DQN, in one jit.

The same learner runs three ways (equal budgets, same code):
  * PVN-linear:    encoder = pretrained PVN torso, frozen; only the linear head learns.
  * random-linear: encoder = randomly initialised torso, frozen.
  * DQN (end-to-end): encoder randomly initialised and trained with the head (``fine_tune=True``); also the
    optional fine-tuning of a PVN encoder.
Acting is epsilon-greedy with sticky actions (the environment repeats the previous action with probability
``sticky_prob``, as in ALE v5); evaluation episodes are greedy (``eval_epsilon``) with the same stickiness.
The replay buffer is ``[rows, E]`` per-env time-ordered storage so n-step returns are gathered at sample time.
With a frozen encoder the replay stores the encoder's features instead of pixels (computed once when acting), so
an update is a linear-head step: identical maths, ~``3 * batch / E`` times fewer encoder passes.
The gradient step is the DQN baseline's own double-DQN update (``agents.dqn.learner.make_dqn_update``) with a
pluggable Q-function, so PVN evaluation and the DQN agent share one implementation of the loss and target update.
Everything is a pure function of ``LearnerState``; ``make_learner`` returns the closures.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from agents.common.replay import NStepBatch
from agents.dqn.config import DQNConfig
from agents.dqn.learner import DQNTrainState, make_dqn_update, make_optimizer
from agents.pvn.networks import Encoder, EncoderSpec, LinearQ
from omnitask.nonfinite import FINITE_KEY


EVAL_PRESETS = ("omnitask", "reference")
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
    sticky_prob: float = 0.25  # probability the env repeats the previous action (train and eval)
    iterations_per_call: int = 250  # parallel env steps fused into one jitted train call
    eval_max_steps: int = 27_000  # cap on an evaluation episode's length (108k frames / 4 on Atari)

    def __post_init__(self):
        if self.preset not in EVAL_PRESETS:
            raise ValueError(f"pvn.eval.preset {self.preset!r} unknown; allowed: {', '.join(EVAL_PRESETS)}")
        if self.preset == "reference":
            for name, value in REFERENCE_PRESET.items():
                setattr(self, name, type(getattr(self, name))(value))


class Replay(NamedTuple):
    obs: jax.Array  # [R, E, *obs] uint8 pixels (fine_tune) or [R, E, D] f32 frozen features
    action: jax.Array  # [R, E] int32
    reward: jax.Array  # [R, E] f32
    terminated: jax.Array  # [R, E] bool
    done: jax.Array  # [R, E] bool  (terminated or truncated: n-step sums stop here)
    next_obs: jax.Array  # like obs, of the next observation (the final observation on done steps)
    ptr: jax.Array  # [] int32 next row to write
    size: jax.Array  # [] int32 rows written (<= R)


class LearnerState(NamedTuple):
    encoder_params: dict  # the encoder (frozen unless fine_tune; then the trained copy lives in train.params)
    train: DQNTrainState  # DQN learner state over the trainable params: head (frozen) or {encoder, head}
    replay: Replay
    env_state: Any  # batched env state [E]
    obs: jax.Array  # [E, *obs] uint8 current observations
    prev_action: jax.Array  # [E] int32 action the env executed last (for sticky actions)
    key: jax.Array
    env_steps: jax.Array  # [] int32 (summed over envs)


class Learner(NamedTuple):
    init: Callable[[jax.Array, dict | None], LearnerState]  # (key, encoder params or None=random) -> state
    train: Callable[[LearnerState], tuple[LearnerState, dict]]  # iterations_per_call env steps per env
    evaluate: Callable[[LearnerState, jax.Array, int], jax.Array]  # (state, key, num_episodes) -> returns [N]
    q_values: Callable[[dict, jax.Array], jax.Array]  # ({'encoder','head'} params, obs [B, *obs]) -> [B, A]
    full_params: Callable[[LearnerState], dict]  # the current {'encoder', 'head'} params


def to_pixels(obs):
    """Observations as uint8 pixels (MinAtar bool/float planes become 0/1)."""
    return obs if obs.dtype == jnp.uint8 else obs.astype(jnp.uint8)


def make_learner(cfg: LinearEvalConfig, encoder_spec: EncoderSpec, spec, fns, env_params, num_envs: int
                 ) -> Learner:
    """Closures for one online learner on the JAX-native env ``(spec, fns, env_params [E])``."""
    obs_shape = tuple(spec.observation.shape)
    num_actions = spec.action.num_actions
    if num_envs % cfg.update_period and cfg.update_period % num_envs:
        raise ValueError(f"num_envs ({num_envs}) and update_period ({cfg.update_period}) must divide one another")
    rows = cfg.replay_capacity // num_envs
    if rows <= cfg.n_step or cfg.min_replay // num_envs <= cfg.n_step:
        raise ValueError(f"replay_capacity ({cfg.replay_capacity}) and min_replay ({cfg.min_replay}) must exceed "
                         f"n_step * num_envs ({cfg.n_step * num_envs})")
    updates_per_iter = max(1, num_envs // cfg.update_period)
    iters_per_update = max(1, cfg.update_period // num_envs)
    encoder, head = Encoder(encoder_spec), LinearQ(num_actions)
    dqn_cfg = DQNConfig(lr=cfg.learning_rate, adam_eps=cfg.adam_eps, gamma=cfg.gamma, n_step=cfg.n_step,
                        batch_size=cfg.batch_size, target_update_period=cfg.target_update_period, target_tau=1.0,
                        double_q=True, huber_delta=cfg.huber_delta, max_grad_norm=cfg.max_grad_norm)
    optimizer = make_optimizer(dqn_cfg)

    def q_values(params, obs):  # [B, *obs] -> [B, A]
        feats = encoder.apply(params["encoder"], obs)
        if not cfg.fine_tune:
            feats = jax.lax.stop_gradient(feats)
        return head.apply(params["head"], feats)

    def embed(params, obs):  # what the replay stores: frozen features [B, D] or the pixels themselves
        return obs if cfg.fine_tune else encoder.apply(params["encoder"], obs)

    def q_stored(train_params, x):  # Q of the trainable params on stored replay entries: [B, A]
        return q_values(train_params, x) if cfg.fine_tune else head.apply(train_params, x)

    def full_params(state: LearnerState) -> dict:
        p = state.train.params
        return p if cfg.fine_tune else {"encoder": state.encoder_params, "head": p}

    dqn_update = make_dqn_update(q_stored, optimizer, dqn_cfg)

    def init(key, encoder_params=None) -> LearnerState:
        k_enc, k_head, k_env, k_run = jax.random.split(key, 4)
        dummy = jnp.zeros((1, *obs_shape), jnp.uint8)
        if encoder_params is None:
            encoder_params = encoder.init(k_enc, dummy)
        feats = encoder.apply(encoder_params, dummy)
        params = {"encoder": encoder_params, "head": head.init(k_head, feats)}
        env_state, ts = jax.vmap(fns.reset)(jax.random.split(k_env, num_envs), env_params)
        x_shape, x_dtype = (obs_shape, jnp.uint8) if cfg.fine_tune else (feats.shape[1:], jnp.float32)
        replay = Replay(jnp.zeros((rows, num_envs, *x_shape), x_dtype), jnp.zeros((rows, num_envs), jnp.int32),
                        jnp.zeros((rows, num_envs), jnp.float32), jnp.zeros((rows, num_envs), bool),
                        jnp.zeros((rows, num_envs), bool), jnp.zeros((rows, num_envs, *x_shape), x_dtype),
                        jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        train_params = params if cfg.fine_tune else params["head"]
        train = DQNTrainState(train_params, train_params, optimizer.init(train_params), jnp.zeros((), jnp.int32))
        return LearnerState(encoder_params, train, replay, env_state, to_pixels(ts.observation),
                            jnp.zeros((num_envs,), jnp.int32), k_run, jnp.zeros((), jnp.int32))

    def act(params, obs, prev_action, key, epsilon):
        """Epsilon-greedy choice, then sticky execution: returns (chosen [E], executed [E])."""
        k_eps, k_rand, k_sticky = jax.random.split(key, 3)
        n = obs.shape[0]
        greedy = jnp.argmax(q_values(params, obs), axis=-1).astype(jnp.int32)
        explore = jax.random.uniform(k_eps, (n,)) < epsilon
        chosen = jnp.where(explore, jax.random.randint(k_rand, (n,), 0, num_actions, jnp.int32), greedy)
        sticky = jax.random.uniform(k_sticky, (n,)) < cfg.sticky_prob
        return chosen, jnp.where(sticky, prev_action, chosen)

    def epsilon_at(env_steps):
        frac = jnp.clip((env_steps - cfg.min_replay) / max(1, cfg.eps_decay_steps), 0.0, 1.0)
        return cfg.eps_start + frac * (cfg.eps_final - cfg.eps_start)

    def sample(replay: Replay, key):
        """n-step transitions for ``batch_size`` uniformly drawn (row, env) starts."""
        k_i, k_e = jax.random.split(key)
        start = (replay.ptr - replay.size) % rows
        i = jax.random.randint(k_i, (cfg.batch_size,), 0, jnp.maximum(replay.size - cfg.n_step + 1, 1))
        r0 = (start + i) % rows  # [B]
        e = jax.random.randint(k_e, (cfg.batch_size,), 0, num_envs)
        rk = (r0[:, None] + jnp.arange(cfg.n_step)[None]) % rows  # [B, n]
        rew, done = replay.reward[rk, e[:, None]], replay.done[rk, e[:, None]]  # [B, n]
        term = replay.terminated[rk, e[:, None]]
        alive = jnp.cumprod(1.0 - done.astype(jnp.float32), axis=1)
        included = jnp.concatenate([jnp.ones((cfg.batch_size, 1)), alive[:, :-1]], axis=1)  # step k counted
        discounts = cfg.gamma ** jnp.arange(cfg.n_step, dtype=jnp.float32)
        returns = jnp.sum(included * discounts[None] * rew, axis=1)  # [B]
        m = jnp.sum(included, axis=1).astype(jnp.int32)  # steps taken, 1..n
        last = jnp.take_along_axis(rk, (m - 1)[:, None], axis=1)[:, 0]  # [B]
        last_term = jnp.take_along_axis(term, (m - 1)[:, None], axis=1)[:, 0]
        boot = (cfg.gamma ** m.astype(jnp.float32)) * (1.0 - last_term.astype(jnp.float32))
        return NStepBatch(replay.obs[r0, e], replay.action[r0, e], returns, boot, replay.next_obs[last, e])

    def sgd_step(state: LearnerState, key):
        train, metrics = dqn_update(state.train, sample(state.replay, key))
        return state._replace(train=train), (metrics["loss/td"], metrics[FINITE_KEY])

    def iteration(carry, _):
        state, ep_ret_sum, ep_count = carry
        key, k_act, k_env, k_upd = jax.random.split(state.key, 4)
        eps = epsilon_at(state.env_steps)
        params = full_params(state)
        chosen, executed = act(params, state.obs, state.prev_action, k_act, eps)
        env_state, ts = jax.vmap(fns.step)(jax.random.split(k_env, num_envs), state.env_state, executed, env_params)
        rp = state.replay
        rp = Replay(rp.obs.at[rp.ptr].set(embed(params, state.obs)), rp.action.at[rp.ptr].set(chosen),
                    rp.reward.at[rp.ptr].set(ts.reward), rp.terminated.at[rp.ptr].set(ts.terminated),
                    rp.done.at[rp.ptr].set(ts.done),
                    rp.next_obs.at[rp.ptr].set(embed(params, to_pixels(ts.info["final_observation"]))),
                    (rp.ptr + 1) % rows, jnp.minimum(rp.size + 1, rows))
        done = ts.done
        state = state._replace(replay=rp, env_state=env_state, obs=to_pixels(ts.observation),
                               prev_action=jnp.where(done, 0, executed), key=key,
                               env_steps=state.env_steps + num_envs)
        ep_ret_sum = ep_ret_sum + jnp.sum(jnp.where(done, ts.info["episode_return"], 0.0))
        ep_count = ep_count + jnp.sum(done)
        ready = (rp.size * num_envs >= cfg.min_replay) & ((state.env_steps // num_envs) % iters_per_update == 0)

        def do_updates(s):
            s, (losses, finite) = jax.lax.scan(sgd_step, s, jax.random.split(k_upd, updates_per_iter))
            return s, (jnp.mean(losses), jnp.mean(finite))

        state, (loss, finite) = jax.lax.cond(ready, do_updates, lambda s: (s, (jnp.zeros(()), jnp.ones(()))), state)
        return (state, ep_ret_sum, ep_count), (loss, finite, ready)

    def train(state: LearnerState):
        zero = jnp.zeros(())
        (state, ret_sum, count), (losses, finite, ready) = jax.lax.scan(iteration, (state, zero, zero), None,
                                                                         length=cfg.iterations_per_call)
        n_ready = jnp.sum(ready)
        metrics = {"episode_return": jnp.where(count > 0, ret_sum / jnp.maximum(count, 1), jnp.nan),
                   "episodes": count, "loss": jnp.where(n_ready > 0, jnp.sum(losses) / jnp.maximum(n_ready, 1),
                                                        jnp.nan),
                   FINITE_KEY: jnp.where(n_ready > 0, jnp.sum(finite * ready) / jnp.maximum(n_ready, 1), jnp.nan),
                   "epsilon": epsilon_at(state.env_steps), "updates": state.train.num_updates}
        return state, metrics

    def evaluate(state: LearnerState, key, num_episodes: int):
        """Returns of ``num_episodes`` greedy episodes (one per parallel env copy): [N]. Pure: state unchanged."""
        params = full_params(state)
        ep_params = jax.tree.map(lambda x: jnp.repeat(x[:1], num_episodes, axis=0), env_params)  # env 0's context
        k_reset, k_loop = jax.random.split(key)
        env_state, ts = jax.vmap(fns.reset)(jax.random.split(k_reset, num_episodes), ep_params)

        def cond(c):
            t, _, _, _, _, finished, _ = c
            return (t < cfg.eval_max_steps) & ~jnp.all(finished)

        def body(c):
            t, k, env_state, obs, prev, finished, ret = c
            k, k_act, k_env = jax.random.split(k, 3)
            _, executed = act(params, obs, prev, k_act, cfg.eval_epsilon)
            env_state, ts = jax.vmap(fns.step)(jax.random.split(k_env, num_episodes), env_state, executed,
                                               ep_params)
            ret = ret + jnp.where(finished, 0.0, ts.reward)
            return (t + 1, k, env_state, to_pixels(ts.observation), executed, finished | ts.done, ret)

        init_c = (jnp.zeros((), jnp.int32), k_loop, env_state, to_pixels(ts.observation),
                  jnp.zeros((num_episodes,), jnp.int32), jnp.zeros((num_episodes,), bool),
                  jnp.zeros((num_episodes,), jnp.float32))
        return jax.lax.while_loop(cond, body, init_c)[-1]

    return Learner(init, train, evaluate, q_values, full_params)
