"""Env-steps/s of the jitted PPO training loop (rollout + GAE + minibatch epochs) on gymnax CartPole.

    .venv/bin/python benchmarks/bench_ppo.py [--num-envs 4 16 64 256 1024] [--iterations 20] [--contexts 8]

For each ``num_envs`` the loop is compiled once, run once to warm up, then timed over ``--iterations`` PPO
iterations (``num_envs * num_steps`` env steps each, including the update). Compile time is reported
separately. ``--contexts N`` also times ``N`` independent policies vmapped over contexts (as
``train_over_contexts`` does). Prints a table; nothing is asserted.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from agents.ppo import PPOConfig, make_jax_ppo
from envs.functional import jax_functions


def bench(num_envs: int, iterations: int, num_contexts: int, cfg: PPOConfig) -> tuple[float, float]:
    """(compile seconds, env steps per second) for one setting (``num_contexts`` = 0: no context vmap)."""
    spec, fns = jax_functions("classic/CartPole-v1")
    _, init, run = make_jax_ppo(cfg, spec, fns, num_envs, num_updates=10 * iterations)
    ctx = jnp.tile(jnp.asarray([[v.default for v in spec.context_vars]], jnp.float32), (num_envs, 1))
    n = max(1, num_contexts)
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    runners = jax.lax.map(lambda k: init(k, ctx), keys)  # sequential init (see train_over_contexts)

    def step(runners):
        return jax.vmap(lambda r: run(r, iterations)[0])(runners)

    t0 = time.perf_counter()
    compiled = jax.jit(step).lower(runners).compile()
    compile_s = time.perf_counter() - t0
    runners = jax.block_until_ready(compiled(runners))  # warm-up
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(runners))
    seconds = time.perf_counter() - t0
    return compile_s, n * iterations * num_envs * cfg.num_steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[4, 16, 64, 256, 1024])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--contexts", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=128)
    args = parser.parse_args()
    cfg = PPOConfig(num_steps=args.num_steps)
    print(f"PPO on classic/CartPole-v1, jitted loop, {jax.devices()[0].platform} ({jax.device_count()} device), "
          f"num_steps={cfg.num_steps}, epochs={cfg.num_epochs}, minibatches={cfg.num_minibatches}")
    print(f"{'policies':>8} {'num_envs':>8} {'compile s':>10} {'env-steps/s':>14}")
    settings = [(1, b) for b in args.num_envs]
    if args.contexts > 1:
        settings += [(args.contexts, b) for b in args.num_envs if b <= 256]
    for policies, num_envs in settings:
        compile_s, rate = bench(num_envs, args.iterations, policies, cfg)
        print(f"{policies:>8} {num_envs:>8} {compile_s:>10.1f} {rate:>14,.0f}", flush=True)


if __name__ == "__main__":
    main()
