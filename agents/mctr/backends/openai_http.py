"""OpenAI-compatible chat-completions backend (vLLM, SGLang, Ollama) over the standard library's HTTP client.

* ``ChatClient.complete`` POSTs ``{base_url}/chat/completions`` with a per-request timeout; 5xx, 429, timeouts and
  connection errors are retried ``max_retries`` times with exponential backoff (+ jitter); other 4xx fail at once.
  A body that is not a chat completion (bad JSON, no choices) counts as a malformed response: the text is empty,
  so the action parser falls back to NOOP and counts it. Exhausted retries raise ``BackendError``.
* ``OpenAIActionReasoner`` sends one request per env concurrently (a thread pool of ``concurrency`` workers) and
  turns each parsed answer into logits (``chosen_logit`` on the answered action, 0 elsewhere).
* ``OpenAIMetaReasoner`` asks for ``<entry>``/``<revise>`` lines and parses them into memory proposals.
Token usage comes from the server's ``usage`` field; latency is wall time per request (summed over requests).
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import os
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Sequence

import numpy as np

from agents.mctr.backends.base import MetaOutput, Observation, ReasonerOutput, TrajectorySlice
from agents.mctr.config import ServerConfig
from agents.mctr.memory import KnowledgeBase
from agents.mctr.parsing import parse_action, parse_meta
from agents.mctr.prompts import action_messages, meta_messages


class BackendError(RuntimeError):
    """The server could not be used (bad URL, refused request, retries exhausted)."""


@dataclasses.dataclass
class ChatResult:
    text: str  # the assistant message ('' when the response was malformed)
    prompt_tokens: int
    completion_tokens: int
    latency_s: float  # wall time including retries
    retries: int
    finish_reason: str  # 'stop', 'length' (truncated), ... or 'malformed'
    error: str = ""  # why the response was malformed ('' when fine)


class ChatClient:
    """Minimal, thread-safe client of one OpenAI-compatible server."""

    def __init__(self, cfg: ServerConfig):
        url = urllib.parse.urlparse(cfg.base_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise BackendError(f"server.base_url {cfg.base_url!r} is not an http(s) URL "
                               "(e.g. http://127.0.0.1:8000/v1)")
        self.cfg = cfg
        self.endpoint = cfg.base_url.rstrip("/") + "/chat/completions"
        self.api_key = os.environ.get(cfg.api_key_env, "EMPTY")

    def _post(self, payload: bytes) -> bytes:
        req = urllib.request.Request(self.endpoint, data=payload, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
            return resp.read()

    def complete(self, messages: list[dict], max_tokens: int) -> ChatResult:
        payload = json.dumps({"model": self.cfg.model, "messages": messages, "max_tokens": max_tokens,
                              "temperature": self.cfg.temperature}).encode()
        t0, last = time.perf_counter(), ""
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                delay = self.cfg.backoff_s * 2 ** (attempt - 1)
                time.sleep(delay * (1.0 + 0.25 * random.random()))
            try:
                body = self._post(payload)
            except urllib.error.HTTPError as err:
                detail = err.read()[:200].decode(errors="replace")
                if err.code >= 500 or err.code == 429:
                    last = f"HTTP {err.code}: {detail}"
                    continue
                raise BackendError(f"{self.endpoint} refused the request: HTTP {err.code}: {detail}") from None
            except (TimeoutError, socket.timeout) as err:
                last = f"timeout after {self.cfg.timeout_s}s ({err})"
                continue
            except urllib.error.URLError as err:
                if isinstance(err.reason, (TimeoutError, socket.timeout)):
                    last = f"timeout after {self.cfg.timeout_s}s"
                else:
                    last = f"connection error: {err.reason}"
                continue
            except (ConnectionError, http_client_errors()) as err:
                last = f"connection error: {err!r}"
                continue
            return self._decode(body, time.perf_counter() - t0, attempt)
        raise BackendError(f"{self.endpoint}: no answer after {self.cfg.max_retries + 1} attempts; last error: {last}")

    @staticmethod
    def _decode(body: bytes, latency: float, retries: int) -> ChatResult:
        try:
            data = json.loads(body)
            choice = data["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError(f"message content is {type(text).__name__}, not a string")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            return ChatResult("", 0, 0, latency, retries, "malformed", f"not a chat completion: {err!r}")
        usage = data.get("usage") or {}
        return ChatResult(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                          latency, retries, str(choice.get("finish_reason", "")))


def http_client_errors() -> type:
    import http.client
    return http.client.HTTPException


class OpenAIActionReasoner:
    """One chat completion per env per decision, sent concurrently."""

    def __init__(self, cfg: ServerConfig, client: ChatClient | None = None):
        self.cfg = cfg
        self.client = client or ChatClient(cfg)
        self.pool = cf.ThreadPoolExecutor(max_workers=max(1, cfg.concurrency), thread_name_prefix="mctr-http")

    def _one(self, obs: Observation):
        res = self.client.complete(action_messages(obs, self.cfg.text_only), self.cfg.max_tokens)
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
        res = self.client.complete(meta_messages(traj, shown, self.cfg.text_only), self.cfg.meta_max_tokens)
        proposals, malformed, _ = parse_meta(res.text, memory.entries)
        return MetaOutput(proposals, malformed, res.prompt_tokens, res.completion_tokens, res.latency_s)
