"""Normalisation references: the Atari table covers every game the suite ships, each mode maps its anchors to 0
and 1, and the measured CartPole random-policy return still holds."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.atari.games import ROM_IDS
from omnitask.compare import atari_scores
from omnitask.compare.normalise import RANDOM_MAX, Reference, normalise, reference_for
from omnitask.config import ConfigError


def test_atari_table_covers_every_shipped_game_exactly_once():
    with_scores, without = set(atari_scores.ATARI_57), set(atari_scores.NO_HUMAN_REFERENCE)
    assert len(with_scores) == 57 and not with_scores & without
    assert with_scores | without == set(ROM_IDS)
    assert all(human > random for random, human in atari_scores.ATARI_57.values())


@pytest.mark.parametrize("env_id, task, raw, expected", [
    ("atari/Pong", None, 14.6, 1.0), ("atari/Pong", None, -20.7, 0.0),
    ("atari/multitask", "MsPacman", 307.3 + 0.5 * (6951.6 - 307.3), 0.5),
    ("atari/Skiing", None, -4336.9, 1.0),  # negative scores: still random -> 0, human -> 1
])
def test_human_normalised_anchors(env_id, task, raw, expected):
    assert normalise(raw, reference_for(env_id, task, "human")) == pytest.approx(expected)


def test_random_max_and_meta_world_and_errors():
    cart = reference_for("classic/CartPole-v1", "long_pole", "random-max")
    assert normalise(500.0, cart) == 1.0 and normalise(22.5, cart) == 0.0
    breakout = reference_for("minatar/Breakout", None, "random-max")
    assert breakout.high is None and normalise(20.4, breakout, best=40.4) == pytest.approx(0.5)
    assert reference_for("metaworld/MT10", "reach-v3", "human") is None  # success rate as is
    assert reference_for("classic/CartPole-v1", None, "none") is None
    with pytest.raises(ConfigError, match="Tetris.*no published human score"):
        reference_for("atari/Tetris", None, "human")
    with pytest.raises(ConfigError, match="needs Atari runs"):
        reference_for("classic/CartPole-v1", None, "human")
    with pytest.raises(ConfigError, match="Atari games have no maximum score"):
        reference_for("atari/Pong", None, "random-max")
    with pytest.raises(ConfigError, match="no random/max reference for traffic/signal-1x1.*--reference"):
        reference_for("traffic/signal-1x1", None, "random-max")
    extra = {"traffic/signal-1x1": Reference(-500.0, -100.0, "mine")}
    assert normalise(-300.0, reference_for("traffic/signal-1x1", None, "random-max", extra)) == 0.5


def test_cartpole_random_return_matches_the_table():
    """400 uniform-random CartPole-v1 episodes (gymnax) average within 4 standard errors of the table's 22.5."""
    import gymnax
    env, params = gymnax.make("CartPole-v1")

    def episode(key):
        k0, key = jax.random.split(key)
        _, state = env.reset(k0, params)

        def step(carry, k):
            state, ret, alive = carry
            ka, ks = jax.random.split(k)
            _, state, r, term, trunc, _ = env.step(ks, state, jax.random.randint(ka, (), 0, 2), params)
            return (state, ret + alive * r, alive * (1.0 - jnp.logical_or(term, trunc))), None

        (_, ret, _), _ = jax.lax.scan(step, (state, 0.0, 1.0), jax.random.split(key, 500))
        return ret

    returns = np.asarray(jax.jit(jax.vmap(episode))(jax.random.split(jax.random.PRNGKey(42), 400)))
    se = returns.std() / np.sqrt(len(returns))
    assert abs(returns.mean() - RANDOM_MAX["classic/CartPole-v1"].low) < 4 * se, (returns.mean(), se)
