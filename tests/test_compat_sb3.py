"""A real gymnasium client: Stable-Baselines3's PPO trains on ``envs.as_gymnasium_env`` with no adapter code.

Needs the `compat` extra (SB3 + torch; `make install-compat`): skipped without it, failed without it under
`make test-full` (OMNITASK_REQUIRE_COMPAT=1). Short form (default suite, where the extra is installed): SB3's own
env checker and one PPO rollout + update (2,048 steps). Long form (OMNITASK_FULL=1): 8,192 steps, then the stochastic
policy's mean return over 20 evaluation episodes must be at least twice the untrained policy's on the same episodes
(margin chosen before the runs; measured on seeds 0, 1, 2: 23.1 -> 123.1, 21.6 -> 123.2, 20.9 -> 113.4).
"""
import warnings

from conftest import FULL, import_compat

import envs


def test_sb3_ppo_trains_on_the_single_gymnasium_view():
    sb3 = import_compat("stable_baselines3")
    torch = import_compat("torch")
    from stable_baselines3.common.env_checker import check_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)  # the CI machine has 2 cores; torch's default thread pool oversubscribes them
    env = envs.as_gymnasium_env("classic/CartPole-v1", seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught if "infinity" not in str(w.message)] == []

    model = sb3.PPO("MlpPolicy", env, seed=0, device="cpu", verbose=0)

    def mean_return() -> float:
        evaluation = envs.as_gymnasium_env("classic/CartPole-v1", seed=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "not wrapped with a Monitor": the view reports true episodes
            mean, _ = evaluate_policy(model, evaluation, n_eval_episodes=20, deterministic=False)
        evaluation.close()
        return mean

    untrained = mean_return()
    steps = 8192 if FULL else 2048
    model.learn(total_timesteps=steps)
    assert model.num_timesteps == steps
    episodes = list(model.ep_info_buffer)  # SB3's Monitor, wrapped around our view by PPO itself
    assert episodes and all(e["r"] == e["l"] for e in episodes)  # CartPole: +1 per step
    if FULL:
        trained = mean_return()
        assert trained >= 2 * untrained, (untrained, trained)
    env.close()
