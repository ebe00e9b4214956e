"""Experiment configs: typed loading, CLI-style overrides, and clear refusals of typos and bad values."""
import dataclasses
import pickle

import pytest

from omnitask.agents_table import AGENTS
from omnitask.config import ConfigError, build_config, load_config, to_yaml


@dataclasses.dataclass
class ToyAgentConfig:
    lr: float = 1e-3  # learning rate
    num_steps: int = 128  # rollout length
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])  # MLP widths


@pytest.fixture(autouse=True)
def toy_agent():
    AGENTS["toy"] = lambda: (ToyAgentConfig, object)
    yield
    AGENTS.pop("toy")


def test_yaml_and_overrides_give_typed_dataclasses(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("agent: toy\nseed: 3\nenv: {id: classic/CartPole-v1, num_envs: 4, context: {length: [1, 2, 3, 4]}}\n"
                    "toy: {lr: 0.01}\n")
    cfg = load_config(path, ["toy.num_steps=32", "run.total_env_steps=1000", "toy.hidden=[8,8,8]"])
    assert isinstance(cfg.toy, ToyAgentConfig)
    assert (cfg.seed, cfg.env.num_envs, cfg.toy.lr, cfg.toy.num_steps) == (3, 4, 0.01, 32)
    assert cfg.toy.hidden == [8, 8, 8] and cfg.env.context == {"length": [1, 2, 3, 4]}
    assert cfg.run.total_env_steps == 1000
    # Round trip through the YAML a run directory stores, and picklable for process pools / Ray.
    (tmp_path / "again.yaml").write_text(to_yaml(cfg))
    assert load_config(tmp_path / "again.yaml") == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg


@pytest.mark.parametrize("raw,overrides,message", [
    ({"agent": "toy", "toy": {"lrr": 1.0}}, [], r"unknown config key 'toy.lrr' \(did you mean 'lr'\?\)"),
    ({"agent": "toy"}, ["run.total_env_step=5"], r"'run.total_env_step' \(did you mean 'total_env_steps'\?\)"),
    ({"agent": "toy", "envv": {}}, [], r"'envv' \(did you mean 'env'\?\)"),
    ({"agent": "toy"}, ["toy.num_steps=abc"], r"bad value for 'toy.num_steps'"),
    ({"agent": "tyo"}, [], r"unknown agent 'tyo' \(did you mean 'toy'\?\)"),
    ({"agent": "toy", "ppo": {"lr": 1.0}}, [], r"unknown config key 'ppo'"),
])
def test_bad_configs_refused_naming_key_and_nearest(raw, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(raw, overrides)


def test_missing_file_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_every_shipped_config_loads():
    """Every YAML under configs/ is a valid experiment for its agent (typos there would break users)."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "configs"
    paths = sorted(root.rglob("*.yaml"))
    assert paths, "no configs shipped"
    for path in paths:
        text = path.read_text()
        if "agent:" not in text:  # non-experiment YAMLs (e.g. MBTL studies) are validated by their own tests
            continue
        cfg = load_config(path)
        assert cfg.env.id and cfg.run.total_env_steps > 0, path
