"""Exact cache of the rnd indicator nets' raw scores, one row per stored transition.

The random indicator nets are frozen, so a transition's scores ``f(x)`` [T] never change; only the thresholds
``q`` move. The pretraining update reads ``f(x)`` of the transition's ``observation`` (the reference scores
``batch['observation']`` for both the rewards ``1{f(x) > q}`` and the quantile step; never ``next_observation``),
so each stored transition is scored once, when its chunk / checkpoint is first loaded, and the update applies the
current thresholds to the cached rows. At the reference's protocol (1.56M updates x 256 over 50M transitions: ~8
samples per transition) this replaces ~8 scorings of each transition with one.

Layout: ``<directory>/<entry>.npy`` [N, T] float32 (row i = transition i of the chunk, or of the checkpoint's valid
indices) and ``<entry>.json`` {key, rows, fingerprint}, both written atomically (the JSON last: an entry without it is
incomplete and recomputed). ``key`` hashes the frozen nets' parameters and every config field that changes the
scores, so a cache written by other nets is refused with an error, never used; ``fingerprint`` hashes the entry's
size and a few of its observations, so a cache of other data under the same entry name is refused too.

float32 on purpose: float16 would move scores by ~1e-3 relative, enough to flip ``f(x) > q`` for states near a
threshold, so the rewards would no longer be those of the update that scores on the fly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from agents.pvn.indicators import SCORE_CACHE_MODES as MODES
from omnitask.fileio import atomic_write_bytes, atomic_write_json

CACHE_VERSION = 1
SCORES_KEY = "indicator_scores"  # batch field the pretraining update reads instead of scoring ``observation``


def cache_key(indicator_cfg, num_tasks: int, obs_shape: tuple[int, ...], frozen) -> str:
    """sha256 of the frozen nets' parameters (paths, shapes, dtypes, bytes) and the config that defines the scores."""
    h = hashlib.sha256()
    fields = dataclasses.asdict(indicator_cfg)
    for name in ("score_cache", "net_batching", "threshold_lr", "fire_fraction"):  # do not change the scores
        fields.pop(name, None)
    h.update(json.dumps({"version": CACHE_VERSION, "cfg": fields, "num_tasks": int(num_tasks),
                         "obs_shape": list(obs_shape)}, sort_keys=True, default=str).encode())
    for path, leaf in jax.tree_util.tree_flatten_with_path(frozen)[0]:
        a = np.asarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}:{a.shape}:{a.dtype}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def fingerprint(observations, rows: int) -> str:
    """Hash of an entry's size and its first, middle and last observation (cheap; catches data swapped under a name)."""
    h = hashlib.sha256(str(int(rows)).encode())
    for i in sorted({0, rows // 2, rows - 1}):
        h.update(np.ascontiguousarray(observations(np.array([i]))).tobytes())
    return h.hexdigest()[:32]


class ScoreCache:
    """Scores per stored transition, computed once per entry and kept as memory-mapped sidecar files.

    ``score_fn(obs [b, *obs] uint8) -> [b, T] float32`` is the indicators' scoring (jitted, fixed batch ``batch``;
    the last partial batch is padded so one compiled program serves every entry).
    """

    def __init__(self, directory: str, key: str, score_fn: Callable[[np.ndarray], np.ndarray], batch: int = 256):
        self.directory, self.key, self.batch = str(directory), key, int(batch)
        self._score_fn = score_fn
        self._loaded: dict[str, np.ndarray] = {}
        self.scored_transitions = 0  # instrumentation: transitions scored by this process (0 = all read from files)
        os.makedirs(self.directory, exist_ok=True)

    def scores(self, entry: str, rows: int, observations: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """[rows, T] float32 scores of ``entry`` (a chunk / checkpoint name); ``observations(indices)`` returns the
        entry's observations at those row indices [len, *obs] uint8. Read from the sidecar if present (after checking
        it belongs to these nets and this data), else computed and written."""
        if entry in self._loaded:
            return self._loaded[entry]
        npy, meta_path = (os.path.join(self.directory, f"{entry}.{ext}") for ext in ("npy", "json"))
        fp = fingerprint(observations, rows)
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            if meta.get("key") != self.key:
                raise ValueError(f"indicator score cache {npy} was computed by other indicator nets or settings "
                                 f"(key {str(meta.get('key'))[:12]}..., these nets {self.key[:12]}...); delete "
                                 f"{self.directory} or set pvn.pretrain.indicators.score_cache=never")
            if meta.get("rows") != rows or meta.get("fingerprint") != fp:
                raise ValueError(f"indicator score cache {npy} is stale: it holds {meta.get('rows')} rows of other "
                                 f"data, the entry now has {rows} (or different observations); delete "
                                 f"{self.directory} or set pvn.pretrain.indicators.score_cache=never")
            out = np.load(npy, mmap_mode="r")
        else:
            out = self._compute(rows, observations)
            buf = io.BytesIO()
            np.save(buf, out, allow_pickle=False)
            atomic_write_bytes(npy, buf.getvalue())
            atomic_write_json(meta_path, {"key": self.key, "rows": int(rows), "fingerprint": fp,
                                          "version": CACHE_VERSION})
        self._loaded[entry] = out
        return out

    def release(self, keep) -> None:
        """Forget entries not in ``keep`` (their files stay; a later call maps them again)."""
        self._loaded = {k: v for k, v in self._loaded.items() if k in set(keep)}

    def _compute(self, rows: int, observations) -> np.ndarray:
        parts = []
        for start in range(0, rows, self.batch):
            idx = np.arange(start, min(rows, start + self.batch))
            obs = np.asarray(observations(idx))
            pad = self.batch - len(idx)
            if pad:
                obs = np.concatenate([obs, np.zeros((pad, *obs.shape[1:]), obs.dtype)])
            parts.append(np.asarray(self._score_fn(obs))[:len(idx)])
        self.scored_transitions += rows
        return np.concatenate(parts).astype(np.float32)


def cache_enabled(mode: str, family: str, samples_per_transition: Optional[float]) -> bool:
    """Whether pretraining reads cached scores. ``auto``: rnd indicators whose data is sampled at least once per
    transition on average (else scoring every stored transition costs more than scoring the sampled ones);
    ``samples_per_transition`` None = unknown size (DQN Replay: ~1M transitions per checkpoint), treated as large."""
    if mode not in MODES:
        raise ValueError(f"pvn.pretrain.indicators.score_cache {mode!r} unknown; allowed: {', '.join(MODES)}")
    if mode == "never":
        return False
    if family != "rnd":
        if mode == "always":
            raise ValueError(f"pvn.pretrain.indicators.score_cache=always needs family rnd (frozen random nets), got "
                             f"{family!r}: the hash is computed in the update; use auto or never")
        return False
    return mode == "always" or samples_per_transition is None or samples_per_transition >= 1.0


def make_score_cache(indicators, indicator_cfg, num_tasks: int, obs_shape: tuple[int, ...], indicator_state,
                     directory: str, batch: int) -> ScoreCache:
    """A ScoreCache scoring with ``indicators.scores`` under ``indicator_state``'s frozen nets, at batch ``batch``."""
    frozen = indicator_state.frozen  # passed as an argument (as in the update), not baked in as constants
    fn = jax.jit(lambda params, obs: indicators.scores(indicator_state._replace(frozen=params), obs))
    return ScoreCache(directory, cache_key(indicator_cfg, num_tasks, obs_shape, frozen),
                      lambda obs: fn(frozen, jnp.asarray(obs)), batch)
