"""JAX-native MinAtar (gymnax): ``minatar/<Game>`` for Asterix, Breakout, Freeway, Seaquest, SpaceInvaders, and
``minatar/multitask`` (several games in one batch, as ``atari/multitask``).

MinAtar (Young & Tian, 2019) shrinks five Atari games to 10x10 grids of object channels, so image agents learn
them on a CPU in minutes. Observations are uint8 0/1 planes ``[10, 10, C]`` (C = 4, 4, 7, 10, 6 in the order
above); actions are gymnax's minimal set per game. Same-step autoreset with ``final_observation`` (envs.timestep).
No context variables: the games' parameters are integers used as static shapes in places, so they are not
exposed as continuous contexts. Episodes truncate at ``max_steps_in_episode`` (1000; Freeway 2500).
"""
from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from envs.base import BatchedEnv
from envs.jax_env import JaxBatchedEnv, JaxEnvFunctions
from envs.registry import register
from envs.spec import ArraySpec, DiscreteActionSpec, EnvSpec
from envs.timestep import TimeStep

GAMES = {"Asterix": "Asterix-MinAtar", "Breakout": "Breakout-MinAtar", "Freeway": "Freeway-MinAtar",
         "Seaquest": "Seaquest-MinAtar", "SpaceInvaders": "SpaceInvaders-MinAtar"}


@functools.lru_cache(maxsize=None)
def minatar_functions(game: str, full_action_set: bool = False) -> tuple[EnvSpec, JaxEnvFunctions]:
    """Spec and pure single-env functions of one MinAtar game (cached: stable jit identity). ``full_action_set``:
    MinAtar's 6 actions (no-op, left, up, right, down, fire) for every game; the ones a game lacks do nothing."""
    import gymnax  # lazy: keeps `import envs` light

    env_id = f"minatar/{game}"
    env, default_params = gymnax.make(GAMES[game], use_minimal_action_set=not full_action_set)
    num_actions = int(env.num_actions)
    obs_shape = tuple(env.observation_space(default_params).shape)
    spec = EnvSpec(env_id, ArraySpec(obs_shape, "uint8", 0, 1), DiscreteActionSpec(num_actions), ("default",), (),
                   int(default_params.max_steps_in_episode))

    def make_ts(obs, reward, term, trunc, final_obs, ret, length):
        return TimeStep(obs.astype(jnp.uint8), jnp.asarray(reward, jnp.float32), jnp.asarray(term, bool),
                        jnp.asarray(trunc, bool), jnp.zeros((), jnp.int32), jnp.zeros((0,), jnp.float32),
                        {"final_observation": final_obs.astype(jnp.uint8), "episode_return": ret,
                         "episode_length": length, "success": jnp.zeros((), bool)})

    def reset(key, params):
        obs, env_state = env.reset(key, params)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        return (env_state, zero_f, zero_i), make_ts(obs, 0.0, False, False, obs, zero_f, zero_i)

    def step(key, state, action, params):
        env_state, ret, length = state
        action = jnp.clip(jnp.asarray(action).astype(jnp.int32), 0, num_actions - 1)  # in-jit clamp (envs.jax_env)
        obs, env_state, reward, term, trunc, info = env.step(key, env_state, action, params)
        ret, length = ret + reward.astype(jnp.float32), length + 1
        ts = make_ts(obs, reward, term, trunc, info["final_observation"], ret, length)
        done = jnp.logical_or(term, trunc)
        return (env_state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length)), ts

    return spec, JaxEnvFunctions(reset, step, lambda context: default_params)


def _factory(game: str):
    def make(num_envs: int, seed: int, context=None, **options) -> JaxBatchedEnv:
        if options:
            raise ValueError(f"minatar/{game}: unknown option(s) {sorted(options)}; MinAtar envs take none")
        spec, fns = minatar_functions(game)
        return JaxBatchedEnv(spec, fns, spec.resolve_context(context, num_envs), seed)
    return make


def _spec_fn(game: str):
    def spec(**options) -> EnvSpec:
        if options:
            raise ValueError(f"minatar/{game}: unknown option(s) {sorted(options)}; MinAtar envs take none")
        return minatar_functions(game)[0]
    return spec


for _game in GAMES:
    register(f"minatar/{_game}", _factory(_game), family="minatar", spec_fn=_spec_fn(_game),
             description=f"gymnax {GAMES[_game]}: 10x10 object planes, JAX-native")


MAX_CHANNELS = 10  # Seaquest's object planes; other games are zero-padded to it
FULL_ACTIONS = 6


class MinAtarMultiTask(BatchedEnv):
    """``minatar/multitask``: several MinAtar games in one batch, envs split into contiguous blocks across ``games``
    (as even as possible), ``task_id`` = the env's game index in ``spec.task_names``. One observation and action
    space for all: object planes zero-padded to 10 channels, MinAtar's full 6-action set. Each game runs as its own
    JAX-native batch; ``snapshot``/``restore`` cover all of them (exact resume)."""

    def __init__(self, games, num_envs: int, seed: int):
        self.games = list(games)
        g = len(self.games)
        self.counts = [num_envs // g + (k < num_envs % g) for k in range(g)]
        self.num_envs = num_envs
        specs = []
        self.parts = []
        for k, (game, n) in enumerate(zip(self.games, self.counts)):
            spec, fns = minatar_functions(game, full_action_set=True)
            specs.append(spec)
            self.parts.append(JaxBatchedEnv(spec, fns, spec.resolve_context(None, n), seed + 7919 * k))
        self.spec = EnvSpec("minatar/multitask", ArraySpec((10, 10, MAX_CHANNELS), "uint8", 0, 1),
                            DiscreteActionSpec(FULL_ACTIONS), tuple(self.games), (),
                            max(s.max_episode_steps for s in specs))
        self.task_id = np.repeat(np.arange(g, dtype=np.int32), self.counts)
        self._bounds = np.cumsum([0] + self.counts)

    def _merge(self, steps) -> TimeStep:
        pad = lambda x: np.pad(np.asarray(x), [(0, 0)] * 3 + [(0, MAX_CHANNELS - np.asarray(x).shape[-1])])
        cat = lambda xs: np.concatenate([np.asarray(x) for x in xs])
        info = {"final_observation": cat([pad(t.info["final_observation"]) for t in steps])}
        for name in ("episode_return", "episode_length", "success"):
            info[name] = cat([t.info[name] for t in steps])
        return TimeStep(cat([pad(t.observation) for t in steps]), cat([t.reward for t in steps]),
                        cat([t.terminated for t in steps]), cat([t.truncated for t in steps]), self.task_id.copy(),
                        np.zeros((self.num_envs, 0), np.float32), info)

    def reset(self, seed: int | None = None) -> TimeStep:
        return self._merge([p.reset(None if seed is None else seed + 7919 * k) for k, p in enumerate(self.parts)])

    def step(self, actions) -> TimeStep:
        actions = self.spec.check_actions(actions, self.num_envs)
        b = self._bounds
        return self._merge([p.step(actions[b[k]:b[k + 1]]) for k, p in enumerate(self.parts)])

    def snapshot(self):
        return tuple(p.snapshot() for p in self.parts)

    def restore(self, snapshot) -> None:
        for p, snap in zip(self.parts, snapshot):
            p.restore(snap)


def make_multitask(num_envs: int, seed: int, context=None, **options) -> MinAtarMultiTask:
    unknown = sorted(set(options) - {"games"})
    if unknown:
        raise ValueError(f"minatar/multitask: unknown option(s) {unknown}; allowed: games")
    games = options.get("games") or list(GAMES)
    games = [games] if isinstance(games, str) else list(games)
    bad = [g for g in games if g not in GAMES]
    if bad or len(set(games)) != len(games):
        raise ValueError(f"minatar/multitask: games={games}: each at most once, from {', '.join(GAMES)}")
    if num_envs < len(games):
        raise ValueError(f"minatar/multitask: num_envs={num_envs} is smaller than the number of games "
                         f"({len(games)}); every game needs at least one env")
    if context:
        raise ValueError(f"minatar/multitask: no context variables, got {sorted(context)}")
    return MinAtarMultiTask(games, num_envs, seed)


def _multitask_spec(**options) -> EnvSpec:
    """Spec from a one-env-per-game batch (the smallest batch it accepts)."""
    games = options.get("games") or list(GAMES)
    return make_multitask(num_envs=1 if isinstance(games, str) else len(games), seed=0, **options).spec


register("minatar/multitask", make_multitask, family="minatar", spec_fn=_multitask_spec,
         description="several MinAtar games in one batch (option games=[...], default all five), task ids, "
                     "6 actions, planes padded to 10 channels")
