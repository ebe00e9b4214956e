"""Pilot of one online linear Q head on a frozen RANDOM Nature encoder on an Atari game (the issue-14 item-3 debug:
why linear heads fell below random play on Krull). Prints the TD loss and Q per chunk, the head's greedy action
histogram over its replay, and an evaluation (capped games, eps 0.01) with its action histogram.

  python benchmarks/pvn_head_pilot.py --game UpNDown --lr 1e-3 --feature-norm standardize --data runs/pvn_atari_upndown/dataset

Settings default to configs/pvn/atari_upndown_cpu.yaml's online phase; ``--data`` (a suite-format dataset) gives the
states the feature mean/SD are measured on (needed for --feature-norm standardize).
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np


def main(argv=None) -> dict:
    import envs
    from agents.common.trainer_utils import evaluate_host
    from agents.pvn.dataset import TransitionDataset
    from agents.pvn.evaluate import LinearEvalConfig, feature_norm_stats, with_encoder, with_feature_norm
    from agents.pvn.host import HostLearner
    from agents.pvn.networks import Encoder, EncoderSpec

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="UpNDown")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--n-step", type=int, default=10)
    ap.add_argument("--target-period", type=int, default=100)
    ap.add_argument("--feature-norm", default="standardize", choices=["none", "standardize"])
    ap.add_argument("--data", default=None, help="suite dataset whose first chunk gives the normalisation states")
    ap.add_argument("--encoder-seed", type=int, default=100)
    ap.add_argument("--eval-episodes", type=int, default=16)
    args = ap.parse_args(argv)
    if args.feature_norm == "standardize" and not args.data:
        raise SystemExit("--feature-norm standardize needs --data (a suite-format dataset of the game's states)")

    ev = LinearEvalConfig(learning_rate=args.lr, adam_eps=1.5e-4, batch_size=32, n_step=args.n_step, gamma=0.99,
                          max_grad_norm=10.0, target_update_period=args.target_period, replay_capacity=args.steps,
                          min_replay=1600, update_period=4, eps_start=1.0, eps_final=0.05, eps_decay_steps=4000,
                          eval_epsilon=0.01, iterations_per_call=250, eval_max_steps=1000,
                          feature_norm=args.feature_norm)
    enc_spec = EncoderSpec("nature", 1, 256, "VALID", 255.0)
    options = {"protocol": "dqn", "mode": "train"}
    game = f"atari/{args.game}"
    spec = envs.spec(game, **options)
    learner = HostLearner(ev, enc_spec, spec, 4, lambda: envs.make(game, num_envs=4, seed=1000, **options),
                          fine_tune=False, seed=1000)
    state = learner.init(jax.random.PRNGKey(args.encoder_seed + 1))
    sample = np.zeros((1, *spec.observation.shape), np.uint8)
    enc = Encoder(enc_spec).init(jax.random.PRNGKey(args.encoder_seed), sample)
    state = with_encoder(state, enc)
    if args.feature_norm == "standardize":
        obs = next(iter(TransitionDataset(args.data).iter_chunks()))["observation"][:2000]  # [N, 84, 84, 4]
        state = with_feature_norm(state, *feature_norm_stats(enc_spec, enc, obs))
    t0, cpu0, done = time.perf_counter(), time.process_time(), 0
    while done < args.steps:
        state, metrics, n = learner.chunk(state)
        done += n
        print(done, {k: round(float(v), 4) for k, v in metrics.items()
                     if k in ("loss/td", "loss/q_mean", "episode_return", "epsilon")}, flush=True)
    feats = np.asarray(state.replay.obs).reshape(-1, np.asarray(state.replay.obs).shape[-1])[:done]  # [N, F]
    head = state.train_state.params["params"]["Dense_0"]
    q = feats @ np.asarray(head["kernel"]) + np.asarray(head["bias"])  # [N, A]
    greedy = np.bincount(q.argmax(1), minlength=q.shape[1])
    eval_env = envs.make(game, num_envs=4, seed=1, protocol="dqn", mode="eval", max_episode_frames=4000)
    policy, actions = learner.engine.policy(state), []

    def recorded(o, k):
        a = policy(o, k)
        actions.append(np.asarray(a))
        return a

    res = evaluate_host(eval_env, recorded, args.eval_episodes, jax.random.PRNGKey(7), 1000)
    eval_env.close()
    learner.close()
    out = {"game": args.game, "lr": args.lr, "feature_norm": args.feature_norm, "n_step": args.n_step,
           "target_period": args.target_period, "encoder_seed": args.encoder_seed,
           "replay_q_mean_per_action": q.mean(0).round(3).tolist(), "replay_greedy_hist": greedy.tolist(),
           "eval": {k: res[k] for k in ("return_mean", "return_std", "length_mean", "episodes")},
           "eval_action_hist": np.bincount(np.concatenate(actions), minlength=q.shape[1]).tolist(),
           "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - t0}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
