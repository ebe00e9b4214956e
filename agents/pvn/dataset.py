"""Offline transition datasets: the suite's own chunked on-disk format, and a DQN Replay Dataset reader.

Suite format (a directory), written by ``TransitionWriter`` from any collector or behaviour policy::

    meta.json                 {"format": "omnitask-transitions", "version": 1, "fields": {name: {shape, dtype}},
                               "chunks": [{"name": "chunk_000000", "size": N}, ...], "num_transitions": total}
    chunk_000000/<field>.npy  one .npy per field, leading axis = transition, ``chunk_size`` rows per chunk

Fields: observation [N, *obs] uint8, action [N] int32, reward [N] f32, terminated [N] bool, truncated [N] bool,
next_observation [N, *obs] uint8 (the env's ``info['final_observation']``, so truncated steps bootstrap correctly).
Chunks and meta.json are written atomically (temporary name, then rename), so a crash never leaves a half chunk
visible. ``TransitionDataset`` streams: it memory-maps one chunk at a time and holds at most
``chunks_in_memory`` chunks, so datasets larger than memory pretrain fine.

DQN Replay Dataset (Agarwal et al. 2020) layout, per game/run directory: gzipped ``np.save`` arrays named
``$store$_<field>_ckpt.<N>.gz`` for field in observation [M, 84, 84] uint8 (single frames), action [M],
reward [M], terminal [M]. ``DQNReplayDataset`` holds a window of a few checkpoints and samples a shuffled
mixture of them (``replay_window`` picks the window; the reference mixes all 50 checkpoints, a window is what fits
in memory: ~7 GB of frames per checkpoint), building 4-frame stacks on the fly (a stack never crosses an episode
end, as in Dopamine's replay buffer).

Both readers' ``sample(..., scores=ScoreCache)`` also return each drawn transition's cached rnd indicator scores
(``agents.pvn.score_cache``: a chunk / checkpoint is scored once, when first drawn, into a float32 sidecar file).
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from typing import Iterator

import numpy as np

from agents.pvn.score_cache import SCORES_KEY
from omnitask.fileio import atomic_write_text

FIELDS = ("observation", "action", "reward", "terminated", "truncated", "next_observation")
_DTYPES = {"action": np.int32, "reward": np.float32, "terminated": np.bool_, "truncated": np.bool_}
FORMAT = "omnitask-transitions"


class TransitionWriter:
    """Append transitions to a chunked dataset directory (created if absent, appended to if it exists).

    ``add(batch)`` takes a dict of equally long arrays (the FIELDS); ``add_timestep(obs, actions, ts)`` takes what
    a collector holds after ``ts = env.step(actions)`` on the suite's env API. Call ``close()`` (or use ``with``)
    to flush the last partial chunk.
    """

    def __init__(self, root: str, chunk_size: int = 10_000):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.root = root
        self.chunk_size = int(chunk_size)
        os.makedirs(root, exist_ok=True)
        meta_path = os.path.join(root, "meta.json")
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                self.meta = json.load(f)
            if self.meta.get("format") != FORMAT:
                raise ValueError(f"{root}: meta.json format {self.meta.get('format')!r} is not {FORMAT!r}")
        else:
            self.meta = {"format": FORMAT, "version": 1, "fields": None, "chunks": [], "num_transitions": 0}
        self._buffer: dict[str, list[np.ndarray]] = {k: [] for k in FIELDS}
        self._buffered = 0

    def add(self, batch: dict) -> None:
        missing = [k for k in FIELDS if k not in batch]
        extra = [k for k in batch if k not in FIELDS]
        if missing or extra:
            raise ValueError(f"transition batch: missing fields {missing}, unknown fields {extra}; "
                             f"expected exactly {list(FIELDS)}")
        arrays = {}
        for k in FIELDS:
            a = np.asarray(batch[k])
            if k in ("observation", "next_observation"):
                if a.dtype != np.uint8:
                    if np.issubdtype(a.dtype, np.floating) and not np.all((a == np.round(a)) & (a >= 0) & (a < 256)):
                        raise ValueError(f"{k}: dtype {a.dtype} with non-integer or out-of-[0,255] values; "
                                         "the dataset stores uint8 pixels")
                    a = a.astype(np.uint8)
            else:
                a = a.astype(_DTYPES[k])
            arrays[k] = a
        n = arrays["observation"].shape[0]
        if any(a.shape[0] != n for a in arrays.values()):
            raise ValueError(f"transition batch fields have different lengths: "
                             f"{ {k: a.shape[0] for k, a in arrays.items()} }")
        fields = {k: {"shape": list(a.shape[1:]), "dtype": str(a.dtype)} for k, a in arrays.items()}
        if self.meta["fields"] is None:
            self.meta["fields"] = fields
        elif self.meta["fields"] != fields:
            raise ValueError(f"transition batch shapes/dtypes {fields} differ from the dataset's {self.meta['fields']}")
        for k, a in arrays.items():
            self._buffer[k].append(a)
        self._buffered += n
        while self._buffered >= self.chunk_size:
            self._flush(self.chunk_size)

    def add_timestep(self, observation, actions, ts) -> None:
        """Log ``B`` transitions from ``ts = env.step(actions)`` taken in ``observation`` [B, *obs]."""
        self.add({"observation": observation, "action": actions, "reward": ts.reward,
                  "terminated": ts.terminated, "truncated": ts.truncated,
                  "next_observation": ts.info["final_observation"]})

    def _flush(self, n: int) -> None:
        data = {k: np.concatenate(v, axis=0) for k, v in self._buffer.items()}
        name = f"chunk_{len(self.meta['chunks']):06d}"
        tmp = tempfile.mkdtemp(dir=self.root, prefix=".tmp_chunk_")
        for k, a in data.items():
            np.save(os.path.join(tmp, f"{k}.npy"), a[:n])
        final = os.path.join(self.root, name)
        if os.path.exists(final):  # left over from a crashed writer that never recorded it in meta.json
            shutil.rmtree(final)
        os.rename(tmp, final)
        self.meta["chunks"].append({"name": name, "size": int(n)})
        self.meta["num_transitions"] += int(n)
        atomic_write_text(os.path.join(self.root, "meta.json"), json.dumps(self.meta, indent=1))
        self._buffer = {k: [a[n:]] for k, a in data.items()}
        self._buffered -= n

    def close(self) -> None:
        if self._buffered:
            self._flush(self._buffered)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TransitionDataset:
    """Streaming reader of the suite format; never holds more than ``chunks_in_memory`` chunks."""

    def __init__(self, root: str):
        meta_path = os.path.join(root, "meta.json")
        if not os.path.exists(meta_path):
            raise FileNotFoundError(f"{root} is not a transition dataset (no meta.json); write one with "
                                    "agents.pvn.dataset.TransitionWriter")
        with open(meta_path) as f:
            self.meta = json.load(f)
        if self.meta.get("format") != FORMAT or not self.meta["chunks"]:
            raise ValueError(f"{root}: not a non-empty {FORMAT} dataset")
        self.root = root
        self.max_resident_chunks = 0  # instrumentation: the most chunks ever held at once

    @property
    def num_transitions(self) -> int:
        return int(self.meta["num_transitions"])

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["fields"]["observation"]["shape"])

    def load_chunk(self, index: int) -> dict[str, np.ndarray]:
        """One chunk as memory-mapped arrays (pages are read only when touched)."""
        d = os.path.join(self.root, self.meta["chunks"][index]["name"])
        return {k: np.load(os.path.join(d, f"{k}.npy"), mmap_mode="r") for k in FIELDS}

    def iter_chunks(self) -> Iterator[dict[str, np.ndarray]]:
        """Every chunk in order, one at a time (e.g. to measure indicator firing rates over the data)."""
        for i in range(len(self.meta["chunks"])):
            yield self.load_chunk(i)

    def sample(self, rng: np.random.Generator, batch_size: int, num_batches: int, chunks_in_memory: int = 4,
               scores=None) -> dict[str, np.ndarray]:
        """``num_batches`` uniformly drawn batches as ``[num_batches, batch_size, ...]`` arrays.

        ``scores`` (an ``agents.pvn.score_cache.ScoreCache``) adds the field ``indicator_scores`` [.., T] f32: each
        drawn row's cached indicator scores (a chunk is scored once, when first drawn, then read from its sidecar).

        A pure function of ``rng``'s state (the trainer seeds it with (seed, update step), so a resumed run reads
        exactly the batches of an uninterrupted one). Draws ``chunks_in_memory`` chunks (weighted by size), then
        rows inside them; chunks are memory-mapped, so only the sampled rows are read from disk.
        """
        sizes = np.array([c["size"] for c in self.meta["chunks"]], np.float64)
        k = max(1, min(chunks_in_memory, len(sizes)))
        chosen = rng.choice(len(sizes), size=k, replace=False, p=sizes / sizes.sum())
        window = [self.load_chunk(int(c)) for c in chosen]
        self.max_resident_chunks = max(self.max_resident_chunks, len(window))
        keys = FIELDS
        if scores is not None:
            keys = FIELDS + (SCORES_KEY,)
            for c, w in zip(chosen, window):
                w[SCORES_KEY] = scores.scores(self.meta["chunks"][int(c)]["name"], int(sizes[c]),
                                              lambda idx, w=w: w["observation"][idx])
            scores.release([self.meta["chunks"][int(c)]["name"] for c in chosen])
        w_sizes = sizes[chosen]
        n = batch_size * num_batches
        which = rng.choice(k, size=n, p=w_sizes / w_sizes.sum())
        rows = rng.integers(0, w_sizes[which].astype(np.int64))
        out = {key: _gather(window, key, which, rows) for key in keys}
        return {key: v.reshape(num_batches, batch_size, *v.shape[1:]) for key, v in out.items()}

    def iter_batches(self, batch_size: int, seed: int, chunks_in_memory: int = 4,
                     batches_per_refill: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Endless stream of uniformly sampled batches (dict of [batch_size, ...] arrays).

        A window of ``chunks_in_memory`` chunks is held; after ``batches_per_refill`` batches (default: enough to
        touch each held transition about once) the oldest chunk is swapped for the next one of a shuffled order.
        """
        rng = np.random.default_rng(seed)
        n_chunks = len(self.meta["chunks"])
        window_n = max(1, min(chunks_in_memory, n_chunks))
        order: list[int] = []

        def next_chunk():
            nonlocal order
            if not order:
                order = list(rng.permutation(n_chunks))
            c = self.load_chunk(order.pop())
            return {k: np.ascontiguousarray(v) for k, v in c.items()}

        window = [next_chunk() for _ in range(window_n)]
        while True:
            self.max_resident_chunks = max(self.max_resident_chunks, len(window))
            sizes = np.array([w["action"].shape[0] for w in window])
            per_refill = batches_per_refill or max(1, int(sizes.sum()) // (window_n * batch_size))
            for _ in range(per_refill):
                which = rng.choice(len(window), size=batch_size, p=sizes / sizes.sum())
                rows = rng.integers(0, sizes[which])
                yield {k: _gather(window, k, which, rows) for k in FIELDS}
            if n_chunks > window_n:
                window.pop(0)
                window.append(next_chunk())


def _gather(window, key, which, rows):
    """Rows ``rows[i]`` of chunk ``window[which[i]]`` for field ``key`` (sorted reads per chunk, mmap-friendly)."""
    out = np.empty((len(rows), *window[0][key].shape[1:]), window[0][key].dtype)
    for w in np.unique(which):
        m = np.nonzero(which == w)[0]
        order = np.argsort(rows[m])
        out[m[order]] = window[w][key][rows[m][order]]
    return out


# ----------------------------------------------------------------------------------------------------------------
# DQN Replay Dataset
# ----------------------------------------------------------------------------------------------------------------

DQN_REPLAY_FIELDS = ("observation", "action", "reward", "terminal")


def dqn_replay_filename(field: str, checkpoint: int) -> str:
    return f"$store$_{field}_ckpt.{checkpoint}.gz"


def write_dqn_replay_checkpoint(directory: str, checkpoint: int, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays in the DQN Replay Dataset layout (gzipped ``np.save``); used by tests and converters."""
    os.makedirs(directory, exist_ok=True)
    for field in DQN_REPLAY_FIELDS:
        path = os.path.join(directory, dqn_replay_filename(field, checkpoint))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_")
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as f:
            np.save(f, np.asarray(arrays[field]), allow_pickle=False)
        os.replace(tmp, path)


def replay_window(checkpoints: list[int], step: int, seed: int, window: int, updates_per_window: int) -> list[int]:
    """The checkpoints a pretraining update at ``step`` samples from: a shuffled mixture of ``window`` of them.

    Windows advance every ``updates_per_window`` updates through a per-epoch random permutation of all
    checkpoints (an epoch = ``ceil(C / window)`` windows), so every checkpoint is drawn from once per epoch and the
    order differs between epochs and seeds. A pure function of its arguments (exact resume). [window] ints.
    """
    num = len(checkpoints)
    window = max(1, min(int(window), num))
    per_epoch = -(-num // window)
    w = step // max(1, int(updates_per_window))
    epoch, slot = divmod(w, per_epoch)
    order = np.random.default_rng([int(seed), 0x5EED, epoch]).permutation(num)
    picked = order[slot * window:(slot + 1) * window]
    if len(picked) < window:  # the last window of an epoch is topped up so every window mixes ``window`` of them
        picked = np.concatenate([picked, order[:window - len(picked)]])
    return [int(checkpoints[i]) for i in picked]


class DQNReplayDataset:
    """Reader of DQN Replay Dataset checkpoints: 4-frame stacked transitions, one checkpoint in memory at a time."""

    def __init__(self, directory: str, checkpoints: list[int] | None = None, stack: int = 4):
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"DQN replay directory {directory} does not exist")
        found = sorted(int(n.split("ckpt.")[1][:-3]) for n in os.listdir(directory)
                       if n.startswith("$store$_observation_ckpt.") and n.endswith(".gz"))
        if not found:
            raise FileNotFoundError(f"{directory} holds no $store$_observation_ckpt.<N>.gz files")
        if checkpoints is None:
            checkpoints = found
        bad = [c for c in checkpoints if c not in found]
        if bad:
            raise ValueError(f"checkpoints {bad} not in {directory}; available: {found}")
        for c in checkpoints:
            for field in DQN_REPLAY_FIELDS:
                if not os.path.exists(os.path.join(directory, dqn_replay_filename(field, c))):
                    raise FileNotFoundError(f"{directory}: missing {dqn_replay_filename(field, c)}")
        self.directory, self.checkpoints, self.stack = directory, list(checkpoints), int(stack)

    def load_checkpoint(self, checkpoint: int) -> dict[str, np.ndarray]:
        out = {}
        for field in DQN_REPLAY_FIELDS:
            with gzip.open(os.path.join(self.directory, dqn_replay_filename(field, checkpoint)), "rb") as f:
                out[field] = np.load(f, allow_pickle=False)
        n = out["observation"].shape[0]
        if any(v.shape[0] != n for v in out.values()):
            raise ValueError(f"checkpoint {checkpoint}: fields have different lengths "
                             f"{ {k: v.shape[0] for k, v in out.items()} }")
        return out

    def valid_indices(self, data: dict[str, np.ndarray]) -> np.ndarray:
        """Indices i whose stack [i-stack+1, i] lies within one episode and whose next frame i+1 exists."""
        term = data["terminal"].astype(bool)
        n = term.shape[0]
        idx = np.arange(self.stack - 1, n - 1)
        crosses = np.zeros(idx.shape, bool)
        for k in range(1, self.stack):  # a terminal at i-k (k >= 1) means frame i-k ended an earlier episode
            crosses |= term[idx - k]
        return idx[~crosses]

    def transitions(self, data: dict[str, np.ndarray], indices: np.ndarray) -> dict[str, np.ndarray]:
        """Stacked transitions at ``indices`` (from ``valid_indices``): observation [N, 84, 84, stack] etc."""
        offsets = np.arange(-self.stack + 1, 1)
        frames = data["observation"]
        obs = np.moveaxis(frames[indices[:, None] + offsets[None]], 1, -1)  # [N, H, W, stack]
        nxt = np.moveaxis(frames[indices[:, None] + offsets[None] + 1], 1, -1)
        return {"observation": obs, "action": data["action"][indices].astype(np.int32),
                "reward": data["reward"][indices].astype(np.float32),
                "terminated": data["terminal"][indices].astype(bool),
                "truncated": np.zeros(indices.shape, bool), "next_observation": nxt}

    def sample(self, rng: np.random.Generator, batch_size: int, num_batches: int, checkpoints, scores=None
               ) -> dict[str, np.ndarray]:
        """``[num_batches, batch_size, ...]`` transitions drawn uniformly from the union of ``checkpoints`` (an int
        or a list: a shuffled mixture, each row's checkpoint drawn in proportion to its valid transitions).

        Checkpoints stay loaded until a call no longer names them (at most ``len(checkpoints)`` held at once).
        ``scores`` (a ``ScoreCache``) adds ``indicator_scores`` [.., T] f32, one row per valid index of a checkpoint,
        scored when the checkpoint is first loaded (then read from its sidecar file on every later load).
        """
        window = [int(c) for c in np.atleast_1d(checkpoints)]
        cache = getattr(self, "_cache", {})
        self._cache = {c: v for c, v in cache.items() if c in window}  # free the ones that left the window first
        for c in window:
            if c not in self._cache:
                data = self.load_checkpoint(c)
                self._cache[c] = (data, self.valid_indices(data))
        if scores is not None:
            table = {c: scores.scores(f"ckpt_{c}", len(self._cache[c][1]),
                                      lambda idx, c=c: self.transitions(self._cache[c][0],
                                                                        self._cache[c][1][idx])["observation"])
                     for c in window}
            scores.release([f"ckpt_{c}" for c in window])
        sizes = np.array([len(self._cache[c][1]) for c in window], np.float64)
        n = batch_size * num_batches
        which = rng.choice(len(window), size=n, p=sizes / sizes.sum())  # [n] window slot of each row
        parts: dict[str, np.ndarray] = {}
        for slot in np.unique(which):
            rows = np.nonzero(which == slot)[0]
            data, valid = self._cache[window[slot]]
            pos = rng.choice(len(valid), size=len(rows))  # = rng.choice(valid, ...): the same draws, positions kept
            got = self.transitions(data, valid[pos])
            if scores is not None:
                got[SCORES_KEY] = np.asarray(table[window[slot]][pos])  # [len(rows), T]
            for k, v in got.items():
                if k not in parts:
                    parts[k] = np.empty((n, *v.shape[1:]), v.dtype)
                parts[k][rows] = v
        return {k: v.reshape(num_batches, batch_size, *v.shape[1:]) for k, v in parts.items()}

    def iter_batches(self, batch_size: int, seed: int, batches_per_checkpoint: int | None = None
                     ) -> Iterator[dict[str, np.ndarray]]:
        """Endless stream: checkpoints in shuffled order, ``batches_per_checkpoint`` batches from each."""
        rng = np.random.default_rng(seed)
        while True:
            for c in rng.permutation(self.checkpoints):
                data = self.load_checkpoint(int(c))
                valid = self.valid_indices(data)
                per = batches_per_checkpoint or max(1, len(valid) // batch_size)
                for _ in range(per):
                    yield self.transitions(data, rng.choice(valid, size=batch_size))
                del data
