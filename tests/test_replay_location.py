"""``run.replay``: each agent accepts the replay locations it implements and refuses the others at config load."""
from __future__ import annotations

import pytest

from omnitask.config import ConfigError, load_config
from omnitask.replay_location import REPLAY_LOCATIONS, replay_location


def test_scalezero_implements_both_and_auto_is_host():
    cfg = load_config("configs/scalezero/cartpole.yaml")
    assert replay_location("scalezero", cfg.run.replay) == "host"
    for where in ("host", "device"):
        assert load_config("configs/scalezero/cartpole.yaml", [f"run.replay={where}"]).run.replay == where


@pytest.mark.parametrize("config,agent,where", [("configs/dqn/cartpole.yaml", "dqn", "device"),
                                                ("configs/pvn/minatar_breakout_cpu.yaml", "pvn", "device"),
                                                ("configs/scalezero/cartpole.yaml", "scalezero", "host")])
def test_each_agent_takes_its_implemented_locations_and_refuses_the_others(config, agent, where):
    cfg = load_config(config)
    assert cfg.run.replay == "auto" and replay_location(agent, cfg.run.replay) == where
    for location in ("device", "host"):
        if location in REPLAY_LOCATIONS[agent]:
            assert load_config(config, [f"run.replay={location}"]).run.replay == location
        else:
            with pytest.raises(ConfigError, match=rf"run.replay={location}: agent '{agent}' implements a"):
                load_config(config, [f"run.replay={location}"])


def test_pvn_refuses_a_host_replay_on_a_jax_native_env(tmp_path):
    """PVN takes run.replay=host for host-simulator envs (the DQN agent's host loop); its JAX-native online phase
    runs in jit and says so."""
    from agents.pvn.trainer import PVNTrainer
    cfg = load_config("configs/pvn/minatar_breakout_cpu.yaml", ["run.replay=host"])
    with pytest.raises(ValueError, match="run.replay=host: PVN's online phase on the JAX-native env minatar/Breakout"):
        PVNTrainer(cfg, tmp_path)


def test_unknown_location_and_agents_without_replay_refused():
    with pytest.raises(ConfigError, match="run.replay must be one of auto, device, host, got 'gpu'"):
        load_config("configs/dqn/cartpole.yaml", ["run.replay=gpu"])
    with pytest.raises(ConfigError, match="run.replay=device: agent 'ppo' has no replay buffer"):
        load_config("configs/ppo/cartpole.yaml", ["run.replay=device"])
    assert replay_location("ppo", "auto") is None
