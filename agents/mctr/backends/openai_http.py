"""OpenAI-compatible chat-completions backend (vLLM, SGLang, Ollama) over the standard library's HTTP client.

* ``ChatClient.complete`` POSTs ``{base_url}/chat/completions``.
  - Deadlines: every attempt has a hard deadline of ``timeout_s`` for the whole exchange (connect, headers, body):
    a watchdog closes the socket when it passes, so a server trickling bytes cannot hold a call open. The whole
    call (attempts + waits) has ``call_deadline_s``.
  - Size: a reply larger than ``max_response_bytes`` (declared or actually sent) is cut off and counted as
    malformed; it is not read whole.
  - Retries: 408, 409, 429 and 5xx, timeouts and connection errors are retried up to ``max_retries`` times with
    exponential backoff (+ jitter), waiting at least the server's ``Retry-After`` (seconds or an HTTP date); a
    Retry-After beyond ``max_retry_after_s`` or past the call deadline ends the call at once.
  - Failures: 401/403/404 mean the server or model is misconfigured and raise ``BackendError`` (the run stops with
    the reason). Anything else that leaves no answer (retries exhausted, deadline, another 4xx) raises
    ``CallFailed``: the action reasoner turns it into a counted NOOP fallback, the meta-reasoner skips that
    meta-reasoning run and reports it.
  - Replies are decoded by ``chat_decode.decode_reply`` (every shape the official client accepts; never raises).
* ``OpenAIActionReasoner`` sends one request per env concurrently (a thread pool of ``concurrency`` workers) and
  turns each parsed answer into logits (``chosen_logit`` on the answered action, 0 elsewhere), which the agent
  executes as is (``ttrl.make_act``); it counts fallbacks, failed calls and ``finish_reason`` values.
* ``OpenAIMetaReasoner`` asks for ``<entry>``/``<revise>`` lines and parses them into memory proposals.
Token usage comes from the server's ``usage`` field; latency is wall time per request (summed over requests).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import email.utils
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.parse
from typing import Sequence

import numpy as np

from agents.mctr.backends.base import MetaOutput, Observation, ReasonerOutput, TrajectorySlice
from agents.mctr.backends.chat_decode import decode_reply
from agents.mctr.config import ServerConfig
from agents.mctr.memory import KnowledgeBase
from agents.mctr.parsing import parse_action, parse_meta
from agents.mctr.prompts import action_messages, meta_messages

RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
CONFIG_STATUSES = frozenset({401, 403, 404})  # wrong key / URL / model: no point going on


class BackendError(RuntimeError):
    """The server cannot be used at all (bad URL, wrong key, unknown model): the run stops."""


class CallFailed(BackendError):
    """One call got no answer (retries or deadline exhausted, or a refused request): skip or fall back, count it."""


@dataclasses.dataclass
class ChatResult:
    text: str  # the assistant message ('' when there is none)
    prompt_tokens: int
    completion_tokens: int
    latency_s: float  # wall time including retries
    retries: int
    finish_reason: str  # the server's ('stop', 'length', ...), 'unknown', 'malformed' or 'failed'
    error: str = ""  # why there is no usable text ('' when fine)


class _Attempt:
    """One HTTP exchange under a hard deadline (a watchdog closes the socket when it passes)."""

    def __init__(self, url: urllib.parse.ParseResult, timeout: float):
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(url.hostname, url.port, timeout=timeout)
        self.expired = False
        self.sock: socket.socket | None = None
        self.timer = threading.Timer(timeout, self._expire)
        self.timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        sock = self.sock  # http.client drops conn.sock once a closing response starts; shut the socket itself
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def post(self, path: str, payload: bytes, headers: dict, cap: int) -> tuple[int, dict, bytes, str]:
        """(status, headers, body, error) -- error is non-empty when the body was cut at ``cap`` bytes."""
        self.timer.start()
        try:
            self.conn.connect()
            self.sock = self.conn.sock
            if self.expired:  # the deadline passed while connecting
                raise TimeoutError("deadline passed while connecting")
            self.conn.request("POST", path, body=payload, headers=headers)
            resp = self.conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            declared = hdrs.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                return resp.status, hdrs, b"", f"reply of {int(declared)} bytes exceeds max_response_bytes={cap}"
            chunks, size = [], 0
            while True:
                chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    return resp.status, hdrs, b"", f"reply exceeds max_response_bytes={cap} (cut off)"
            if self.expired:
                raise TimeoutError("deadline passed while reading")
            return resp.status, hdrs, b"".join(chunks), ""
        except (OSError, http.client.HTTPException):
            if self.expired:
                raise TimeoutError("deadline passed") from None
            raise
        finally:
            self.timer.cancel()
            self.conn.close()


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class ChatClient:
    """Thread-safe client of one OpenAI-compatible server (one connection per attempt)."""

    def __init__(self, cfg: ServerConfig):
        url = urllib.parse.urlparse(cfg.base_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise BackendError(f"server.base_url {cfg.base_url!r} is not an http(s) URL "
                               "(e.g. http://127.0.0.1:8000/v1)")
        self.cfg, self.url = cfg, url
        self.endpoint = cfg.base_url.rstrip("/") + "/chat/completions"
        self.path = url.path.rstrip("/") + "/chat/completions"
        self.api_key = os.environ.get(cfg.api_key_env, "EMPTY")

    def complete(self, messages: list[dict], max_tokens: int) -> ChatResult:
        """One chat completion; raises ``CallFailed`` when no answer came, ``BackendError`` on 401/403/404."""
        cfg = self.cfg
        payload = json.dumps({"model": cfg.model, "messages": messages, "max_tokens": max_tokens,
                              "temperature": cfg.temperature}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}
        t0 = time.monotonic()
        call_deadline = t0 + cfg.call_deadline_s
        last, wait = "", 0.0
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                backoff = cfg.backoff_s * 2 ** (attempt - 1) * (1.0 + 0.25 * random.random())
                wait = max(wait, backoff)
                if time.monotonic() + wait >= call_deadline:
                    last += f"; next attempt (in {wait:.1f}s) would pass call_deadline_s={cfg.call_deadline_s}"
                    break
                time.sleep(wait)
            remaining = call_deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = 0.0
            try:
                status, hdrs, body, cut = _Attempt(self.url, min(cfg.timeout_s, remaining)).post(
                    self.path, payload, headers, cfg.max_response_bytes)
            except (TimeoutError, socket.timeout):
                last = f"no complete reply within {min(cfg.timeout_s, remaining):.1f}s"
                continue
            except (OSError, http.client.HTTPException) as err:
                last = f"connection error: {err!r}"
                continue
            if status in RETRY_STATUSES or status >= 500:
                last = f"HTTP {status}: {body[:200].decode(errors='replace')}"
                ra = retry_after_s(hdrs.get("retry-after"))
                if ra is not None:
                    if ra > cfg.max_retry_after_s:
                        last += f" (Retry-After {ra:.0f}s > max_retry_after_s={cfg.max_retry_after_s})"
                        break
                    wait = ra
                continue
            detail = body[:200].decode(errors="replace")
            if status in CONFIG_STATUSES:
                raise BackendError(f"{self.endpoint} refused the request: HTTP {status}: {detail} (check "
                                   f"server.base_url, server.model and the key in ${cfg.api_key_env})")
            latency = time.monotonic() - t0
            if not 200 <= status < 300:
                raise CallFailed(f"{self.endpoint} refused the request: HTTP {status}: {detail}")
            if cut:
                return ChatResult("", 0, 0, latency, attempt, "malformed", cut)
            d = decode_reply(body)
            return ChatResult(d.text, d.prompt_tokens, d.completion_tokens, latency, attempt, d.finish_reason,
                              d.error)
        raise CallFailed(f"{self.endpoint}: no answer after {attempt + 1} attempt(s) in "
                         f"{time.monotonic() - t0:.1f}s; last error: {last}")


class OpenAIActionReasoner:
    """One chat completion per env per decision, sent concurrently."""

    def __init__(self, cfg: ServerConfig, client: ChatClient | None = None):
        self.cfg = cfg
        self.client = client or ChatClient(cfg)
        self.pool = cf.ThreadPoolExecutor(max_workers=max(1, cfg.concurrency), thread_name_prefix="mctr-http")

    def _one(self, obs: Observation):
        try:
            res = self.client.complete(action_messages(obs, self.cfg.text_only), self.cfg.max_tokens)
        except CallFailed as err:  # no answer: NOOP, counted (BackendError, a misconfiguration, still stops the run)
            res = ChatResult("", 0, 0, 0.0, self.cfg.max_retries, "failed", str(err))
        parsed = parse_action(res.text, obs.action_names)
        if res.error:
            parsed = dataclasses.replace(parsed, reason=res.error)
        return res, parsed

    def propose(self, observations: Sequence[Observation]) -> ReasonerOutput:
        results = list(self.pool.map(self._one, observations))
        logits = np.zeros((len(observations), len(observations[0].action_names)), np.float32)
        out = ReasonerOutput(logits)
        for i, (res, parsed) in enumerate(results):
            logits[i, parsed.action] = self.cfg.chosen_logit
            out.prompt_tokens += res.prompt_tokens
            out.completion_tokens += res.completion_tokens
            out.latency_s += res.latency_s
            out.thoughts.append(parsed.thought)
            out.finish_reasons[res.finish_reason] += 1
            if parsed.fallback:
                out.fallbacks += 1
                out.fallback_reasons.append(parsed.reason)
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class OpenAIMetaReasoner:
    """Meta-reasoning by the VLM: the trajectory slice in, ``<entry>``/``<revise>`` lines out."""

    def __init__(self, cfg: ServerConfig, client: ChatClient | None = None, max_entries_shown: int = 40):
        self.cfg = cfg
        self.client = client or ChatClient(cfg)
        self.max_entries_shown = max_entries_shown

    def reflect(self, traj: TrajectorySlice, memory: KnowledgeBase, step: int) -> MetaOutput:
        del step
        shown = memory.retrieve(f"{traj.game} {traj.genre} rules patterns", traj.game, traj.genre,
                                self.max_entries_shown)
        try:
            res = self.client.complete(meta_messages(traj, shown, self.cfg.text_only), self.cfg.meta_max_tokens)
        except CallFailed as err:  # this meta-reasoning run is skipped; the agent logs it
            return MetaOutput([], failed=1, errors=[str(err)])
        proposals, malformed, _ = parse_meta(res.text, memory.entries)
        return MetaOutput(proposals, malformed, res.prompt_tokens, res.completion_tokens, res.latency_s)
