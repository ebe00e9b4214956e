"""SUMO worker processes: libsumo runs one simulation per process, so each simulation lives in its own worker.

Protocol (over one socket pair per worker, framed by ``multiprocessing.connection.Connection``):
    ("reset", seed)                  -> ("ok", obs)                           obs [A, *obs_shape]    (pickled)
    encode_step(actions, next_seed)  -> encode_answer(pack_step(obs, reward, final_obs, info), terminated, truncated)
    ("close",)                       -> worker exits
Errors inside the worker come back as ("error", traceback-string) and are raised in the parent. The step messages,
sent every few hundred microseconds, are raw bytes (a small header + the array's bytes) instead of pickles: pickling
and unpickling the two ndarrays cost about as much as the rest of the parent's step. A raw message starts with a
tag byte that no pickle starts with (pickles start with 0x80), so one ``recv_bytes`` serves both kinds.

``A`` is the number of agents in one simulation (lights of a grid; 1 otherwise). The worker runs *same-step
autoreset*: when an episode ends it resets with ``next_seed`` and returns the new first observation plus the final
observation of the finished episode.

The host side (``WorkerPool``) steps all workers concurrently (send all, then receive all), detects a worker that
died (EOF / broken pipe / not alive) or hangs (no answer within ``timeout_s``), kills it with SIGKILL, reaps it and
starts a fresh one. Workers are plain ``python`` subprocesses (startup ~0.3 s: numpy + libsumo imports) that exit
when their socket to the parent closes, so they die with the parent; ``close`` reaps them all.
"""
from __future__ import annotations

import logging
import math
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import time
import traceback
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

log = logging.getLogger("envs.traffic")

class Simulation(Protocol):
    """What a worker runs: one SUMO simulation with ``A`` agents. Built inside the worker by ``SimConfig.build``."""

    def reset(self, seed: int) -> np.ndarray: ...  # -> obs [A, *obs_shape]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict]: ...
    # -> (obs [A, ...], reward [A], terminated, truncated, info {name: [A, ...]})

    def close(self) -> None: ...


class SimConfig(Protocol):
    """Picklable description of one simulation; ``build()`` runs in the worker process."""

    def build(self) -> Simulation: ...


def pack_step(obs, reward, final_obs, info: dict) -> np.ndarray:
    """One float32 vector [obs | reward | final_obs | info values in sorted key order] (one array to pickle
    instead of ~8: the per-step IPC cost matters next to a 1-2 ms SUMO step). ``unpack_step`` inverts it."""
    parts = [np.asarray(obs, np.float32).ravel(), np.asarray(reward, np.float32).ravel(),
             np.asarray(final_obs, np.float32).ravel()]
    parts += [np.asarray(info[k], np.float32).ravel() for k in sorted(info)]
    return np.concatenate(parts)


def step_layout(agents: int, obs_shape: tuple, info_shapes: dict) -> list[tuple[str, int, int, tuple]]:
    """Slices of a ``pack_step`` vector: (name, start, stop, shape) for obs, reward, final_obs, then info keys."""
    out, start = [], 0
    entries = [("obs", tuple(obs_shape)), ("reward", ()), ("final_obs", tuple(obs_shape))]
    entries += [(k, tuple(info_shapes[k])) for k in sorted(info_shapes)]
    for name, shape in entries:
        size = agents * int(math.prod(shape))
        out.append((name, start, start + size, (agents, *shape)))
        start += size
    return out


def unpack_step(vec: np.ndarray, layout: list) -> dict[str, np.ndarray]:
    """``{'obs', 'reward', 'final_obs', *info keys}`` arrays from a ``pack_step`` vector (see ``step_layout``)."""
    if vec.size != layout[-1][2]:
        raise ValueError(f"traffic worker answer has {vec.size} values, expected {layout[-1][2]} "
                         f"(fields {[name for name, *_ in layout]})")
    return {name: vec[a:b].reshape(shape) for name, a, b, shape in layout}


_STEP_TAG = b"S"  # parent -> worker: a step request
_ANSWER_TAG = b"K"  # worker -> parent: a step answer
_STEP_HEAD = struct.Struct("<cBBxq")  # tag, dtype char, ndim, pad, next_seed; then ndim uint32 dims, then the data
_ANSWER_HEAD = struct.Struct("<c??x")  # tag, terminated, truncated, pad (keeps the float32 payload 4-aligned)


def encode_step(actions: np.ndarray, next_seed: int) -> bytes:
    """A step request as raw bytes: the actions array (any dtype/shape, sent exactly) and the next episode's seed."""
    a = np.ascontiguousarray(actions)
    return (_STEP_HEAD.pack(_STEP_TAG, ord(a.dtype.char), a.ndim, int(next_seed))
            + struct.pack(f"<{a.ndim}I", *a.shape) + a.tobytes())


def decode_step(buf) -> tuple[np.ndarray, int]:
    """Inverse of ``encode_step``: (actions, next_seed)."""
    _, char, ndim, seed = _STEP_HEAD.unpack_from(buf)
    shape = struct.unpack_from(f"<{ndim}I", buf, _STEP_HEAD.size)
    data = np.frombuffer(buf, np.dtype(chr(char)), offset=_STEP_HEAD.size + 4 * ndim)
    return data.reshape(shape), seed


def encode_answer(vec: np.ndarray, terminated: bool, truncated: bool) -> bytes:
    """A step answer as raw bytes: the ``pack_step`` float32 vector and the episode-end flags."""
    return _ANSWER_HEAD.pack(_ANSWER_TAG, bool(terminated), bool(truncated)) + np.asarray(vec, np.float32).tobytes()


def decode_answer(buf) -> tuple[np.ndarray, bool, bool]:
    """Inverse of ``encode_answer``: (vec, terminated, truncated), the same tuple the inline pool returns."""
    _, term, trunc = _ANSWER_HEAD.unpack_from(buf)
    return np.frombuffer(buf, np.float32, offset=_ANSWER_HEAD.size), term, trunc


def _worker_main(conn, cfg) -> None:
    """Worker process loop. Exits on ("close",), on EOF (parent gone) or on SIGTERM."""
    sim = None
    try:
        while True:
            try:
                buf = conn.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                if buf[:1] == _STEP_TAG:  # the hot path: raw bytes in and out
                    actions, next_seed = decode_step(buf)
                    obs, reward, term, trunc, info = sim.step(actions)
                    final_obs = obs
                    if term or trunc:
                        obs = sim.reset(next_seed)
                    conn.send_bytes(encode_answer(pack_step(obs, reward, final_obs, info), term, trunc))
                    continue
                msg = pickle.loads(buf)
                cmd = msg[0]
                if cmd == "reset":
                    if sim is None:
                        sim = cfg.build()
                    conn.send(("ok", sim.reset(int(msg[1]))))
                elif cmd == "close":
                    return
                elif cmd == "ping":
                    conn.send(("ok", os.getpid()))
                else:
                    conn.send(("error", f"unknown command {cmd!r}"))
            except Exception:  # report, keep serving (the parent decides whether to restart)
                conn.send(("error", traceback.format_exc()))
    finally:
        if sim is not None:
            try:
                sim.close()
            except Exception:
                pass
        conn.close()


class WorkerLost(ConnectionError):
    """A worker died, hung or dropped its connection: it is replaced and the episode truncated."""


class WorkerError(RuntimeError):
    """A worker raised inside the simulation code (a bug or bad input, not a crash): not retried."""


# The child registers a bare ``envs`` package so that ``envs/__init__`` (which imports every family, jax included)
# is skipped: a worker imports only numpy, libsumo and the traffic modules (startup ~0.3 s instead of ~2 s).
_BOOT = ("import sys, types; pkg = types.ModuleType('envs'); pkg.__path__ = [{root!r} + '/envs']; "
         "sys.modules['envs'] = pkg; from envs.traffic.worker import _subprocess_entry; _subprocess_entry({fd})")


class _Worker:
    """One worker: a fresh ``python`` subprocess connected by a socket pair (a multiprocessing Connection).

    A plain subprocess (not multiprocessing's spawn/forkserver) so the parent's ``__main__`` is never re-imported:
    scripts without an ``if __name__ == "__main__"`` guard work. The child exits on EOF, i.e. when the parent dies.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        parent_sock, child_sock = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # the directory holding the ``envs`` package
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        fd = child_sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT.format(root=root, fd=fd)],
            pass_fds=(fd,), env=env, stdin=subprocess.DEVNULL, close_fds=True)
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self._poller = select.poll()  # one poller per worker: cheaper than Connection.poll's per-call selector
        self._poller.register(self.conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        self.conn.send(cfg)

    def readable(self, timeout_s: float) -> bool:
        """True when an answer (or EOF) is waiting, within ``timeout_s``."""
        return bool(self._poller.poll(max(0, int(timeout_s * 1000))))

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def exitcode(self):
        return self.proc.poll()

    def kill(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            try:
                self.proc.kill()  # SIGKILL; works on stopped (hung) processes too
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)  # reap: no zombie
        except subprocess.TimeoutExpired:
            log.error("traffic worker pid %s did not exit after SIGKILL", self.proc.pid)

    def join(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


def _subprocess_entry(fd: int) -> None:
    """Entry point of a worker subprocess: receive the config, then serve commands."""
    conn = Connection(fd)
    try:
        cfg = conn.recv()
    except (EOFError, OSError):
        return
    _worker_main(conn, cfg)


def _shutdown(workers: list) -> None:
    for w in workers:
        if w is not None:
            w.kill()


class WorkerPool:
    """One worker per simulation config; concurrent reset/step with crash and hang recovery.

    ``restarts[i]`` counts how often worker ``i`` was replaced. A restarted worker starts a new episode; the caller
    marks the step truncated (``step`` returns the indices that were restarted).
    """

    def __init__(self, cfgs: Sequence[Any], timeout_s: float = 60.0, reset_timeout_s: float = 120.0):
        self.cfgs = list(cfgs)
        self.timeout_s = float(timeout_s)
        self.reset_timeout_s = float(reset_timeout_s)
        self.restarts = np.zeros(len(self.cfgs), np.int32)
        self._workers: list[_Worker | None] = [None] * len(self.cfgs)
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)
        for i, cfg in enumerate(self.cfgs):
            self._workers[i] = _Worker(cfg)

    @property
    def pids(self) -> list[int | None]:
        return [w.pid if w is not None else None for w in self._workers]

    def __len__(self) -> int:
        return len(self.cfgs)

    def _recv(self, i: int, timeout: float) -> Any:
        """Answer of worker ``i``; raises ``WorkerLost`` on death/hang, ``WorkerError`` on a worker exception."""
        w = self._workers[i]
        deadline = time.monotonic() + timeout
        try:
            while True:
                if w.readable(min(0.5, max(0.0, deadline - time.monotonic()))):
                    buf = w.conn.recv_bytes()
                    if buf[:1] == _ANSWER_TAG:
                        return decode_answer(buf)
                    status, payload = pickle.loads(buf)
                    break
                if not w.alive():
                    raise WorkerLost(f"worker {i} (pid {w.pid}) died with exit code {w.exitcode}")
                if time.monotonic() > deadline:
                    raise WorkerLost(f"worker {i} (pid {w.pid}) did not answer within {timeout:.0f} s (hung)")
        except WorkerLost:
            raise
        except (EOFError, OSError) as err:
            raise WorkerLost(f"worker {i} (pid {w.pid}) connection lost: {err!r}") from err
        if status != "ok":
            raise WorkerError(f"traffic worker {i} failed:\n{payload}")
        return payload

    def _send(self, i: int, msg: tuple | bytes) -> bool:
        """Send a pickled command tuple, or raw ``encode_step`` bytes; False when the connection is gone."""
        try:
            if isinstance(msg, bytes):
                self._workers[i].conn.send_bytes(msg)
            else:
                self._workers[i].conn.send(msg)
            return True
        except (OSError, BrokenPipeError, ValueError):
            return False

    def _restart(self, i: int, reason: str, seed: int) -> Any:
        """Replace worker ``i`` and reset it with ``seed``; returns its first observation."""
        old = self._workers[i]
        log.warning("traffic worker %d (pid %s) restarted: %s", i, old.pid if old else None, reason)
        if old is not None:
            old.kill()
        self.restarts[i] += 1
        for attempt in range(3):
            self._workers[i] = _Worker(self.cfgs[i])
            if self._send(i, ("reset", seed)):
                try:
                    return self._recv(i, self.reset_timeout_s)
                except ConnectionError as err:
                    reason = str(err)
            self._workers[i].kill()
            log.warning("traffic worker %d restart attempt %d failed: %s", i, attempt + 1, reason)
        raise RuntimeError(f"traffic worker {i} could not be restarted 3 times: {reason}")

    def reset(self, seeds: Sequence[int]) -> list[Any]:
        """Reset every worker (concurrently); returns per-worker first observations."""
        self._check_open()
        sent = [self._send(i, ("reset", int(s))) for i, s in enumerate(seeds)]
        out, errors = [], []
        for i, s in enumerate(seeds):
            try:
                if not sent[i]:
                    raise ConnectionError(f"worker {i} pipe closed")
                out.append(self._recv(i, self.reset_timeout_s))
            except ConnectionError as err:
                out.append(self._restart(i, str(err), int(s)))
            except WorkerError as err:  # drain the other workers first so no stale answer stays in a pipe
                out.append(None)
                errors.append(err)
        if errors:
            raise errors[0]
        return out

    def step(self, actions: Sequence[Any], next_seeds: Sequence[int]) -> tuple[list[Any], list[int]]:
        """Step every worker; returns (per-worker answers, indices restarted). A restarted worker's answer is its
        new first observation (not a step tuple)."""
        self._check_open()
        sent = [self._send(i, encode_step(a, s)) for i, (a, s) in enumerate(zip(actions, next_seeds))]
        out, restarted, errors = [], [], []
        for i in range(len(self._workers)):
            try:
                if not sent[i]:
                    raise ConnectionError(f"worker {i} pipe closed")
                out.append(self._recv(i, self.timeout_s))
            except ConnectionError as err:
                out.append(self._restart(i, str(err), int(next_seeds[i])))
                restarted.append(i)
            except WorkerError as err:  # drain the other workers first so no stale answer stays in a pipe
                out.append(None)
                errors.append(err)
        if errors:
            raise errors[0]
        return out, restarted

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("traffic worker pool is closed")

    def close(self) -> None:
        """Ask every worker to exit, then kill and reap stragglers. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for w in self._workers:
            if w is not None:
                try:
                    w.conn.send(("close",))
                except Exception:
                    pass
        for w in self._workers:
            if w is not None:
                w.join(timeout=5)
                w.kill()
        self._finalizer.detach()


_INLINE_OWNER: list = []  # the InlinePool that owns this process's one libsumo simulation, if any


class InlinePool:
    """The ``WorkerPool`` interface for ONE simulation run inside the calling process (no worker, no IPC).

    About 1.2-1.35x less CPU per step than a worker for a single intersection on the shared 2-core machine
    (2026-12-01: the worker spends ~20% more user CPU on the same SUMO work, most likely cold caches after each
    wake-up; the messages themselves cost ~10-20 us a side), but: libsumo allows one simulation per
    process (a second open InlinePool is refused), a SUMO crash takes the calling process down, and a hang cannot
    be detected. Use it for single-env jobs where throughput matters (e.g. one MBTL source task per process).
    """

    def __init__(self, cfgs: Sequence[Any]):
        if len(cfgs) != 1:
            raise ValueError(f"inline=True runs exactly one simulation in this process; got {len(cfgs)} "
                             "(use num_envs equal to one simulation's agents, or inline=False for workers)")
        if _INLINE_OWNER:
            raise RuntimeError("this process already runs an inline SUMO simulation (libsumo allows one per "
                               "process); close it first or use inline=False")
        self.cfgs = list(cfgs)
        self.restarts = np.zeros(1, np.int32)
        self._sim = cfgs[0].build()
        self._closed = False
        _INLINE_OWNER.append(self)

    @property
    def pids(self) -> list[int]:
        return [os.getpid()]

    def __len__(self) -> int:
        return 1

    def reset(self, seeds: Sequence[int]) -> list[Any]:
        if self._closed:
            raise RuntimeError("traffic inline pool is closed")
        return [self._sim.reset(int(seeds[0]))]

    def step(self, actions: Sequence[Any], next_seeds: Sequence[int]) -> tuple[list[Any], list[int]]:
        if self._closed:
            raise RuntimeError("traffic inline pool is closed")
        obs, reward, term, trunc, info = self._sim.step(actions[0])
        final_obs = obs
        if term or trunc:
            obs = self._sim.reset(int(next_seeds[0]))
        return [(pack_step(obs, reward, final_obs, info), bool(term), bool(trunc))], []

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sim.close()
        finally:
            if self in _INLINE_OWNER:
                _INLINE_OWNER.remove(self)
