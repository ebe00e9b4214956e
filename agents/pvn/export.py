"""Feature export: save a trained encoder so other agents (ScaleZero, MCTR, DQN) can use it as their torso.

Layout of an export directory::

    encoder.json     {"format": "omnitask-encoder", "version": 1, "encoder": EncoderSpec fields,
                      "observation_shape": [...], "feature_dim": D, "source": "...", ...}
    params.msgpack   flax-serialised parameters of ``networks.Encoder(spec)``

Both files are written atomically. ``load_encoder`` returns the flax module, its params and a jitted
``features(obs [B, *obs]) -> [B, D]``; agents that embed the torso in a bigger module use ``module``/``params``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from agents.pvn.networks import Encoder, EncoderSpec
from omnitask.fileio import atomic_write_bytes, atomic_write_json

FORMAT = "omnitask-encoder"


class LoadedEncoder(NamedTuple):
    spec: EncoderSpec
    module: Encoder
    params: Any
    observation_shape: tuple[int, ...]
    meta: dict
    features: Callable[[jax.Array], jax.Array]  # jitted: obs [B, *obs] (raw pixels) -> [B, feature_dim]


def save_encoder(path: str | Path, spec: EncoderSpec, params: Any, observation_shape: tuple[int, ...],
                 **extra: Any) -> Path:
    """Write ``params`` of ``Encoder(spec)`` plus its JSON description to directory ``path``."""
    path = Path(path)
    module = Encoder(spec)
    out = module.apply(params, jnp.zeros((1, *observation_shape), jnp.uint8))  # checks params fit the spec
    meta = {"format": FORMAT, "version": 1, "encoder": dataclasses.asdict(spec),
            "observation_shape": list(observation_shape), "feature_dim": int(out.shape[-1]), **extra}
    atomic_write_bytes(path / "params.msgpack", serialization.to_bytes(jax.device_get(params)))
    atomic_write_json(path / "encoder.json", meta)
    return path


def load_encoder(path: str | Path) -> LoadedEncoder:
    """Rebuild an exported encoder; raises with what is missing/wrong if ``path`` is not an export."""
    path = Path(path)
    meta_path = path / "encoder.json"
    if not meta_path.is_file() or not (path / "params.msgpack").is_file():
        raise FileNotFoundError(f"{path} is not an encoder export (needs encoder.json and params.msgpack; "
                                "write one with agents.pvn.export.save_encoder)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT!r}")
    spec = EncoderSpec(**meta["encoder"])
    obs_shape = tuple(meta["observation_shape"])
    module = Encoder(spec)
    template = module.init(jax.random.PRNGKey(0), jnp.zeros((1, *obs_shape), jnp.uint8))
    params = serialization.from_bytes(template, (path / "params.msgpack").read_bytes())
    shapes_t = jax.tree.map(np.shape, template)
    shapes_p = jax.tree.map(np.shape, params)
    if shapes_t != shapes_p:
        raise ValueError(f"{path}: saved parameter shapes do not match encoder.json's architecture")
    features = jax.jit(lambda obs: module.apply(params, obs))
    return LoadedEncoder(spec, module, params, obs_shape, meta, features)
