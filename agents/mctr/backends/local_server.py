"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (a thread) for tests, benchmarks and dry runs.

It binds to the loopback interface only. Each request consumes one scripted behaviour (or ``default``):
  ('ok', text)                      a conformant chat completion answering ``text`` (``completion`` builds it)
  ('status', code[, headers])       an error reply with that HTTP code (and headers, e.g. {'Retry-After': '2'})
  ('sleep', s, text)                answers ``text`` after ``s`` seconds
  ('garbage', body)                 sends ``body`` (bytes) with status 200: not a chat completion
  ('reply', obj)                    sends ``obj`` as the JSON body with status 200 (odd-but-valid shapes)
  ('trickle', seconds_per_byte, text)  a conformant reply sent one byte at a time
  ('big', nbytes[, declare])        a 200 reply sending ``nbytes`` bytes (declared in Content-Length unless False)
``latency`` delays every answer (a fixed-latency server for throughput benchmarks). Requests are recorded in
``requests``, replies with status 200 in ``replies`` (decoded JSON, or None when not JSON). The ``ok`` replies
validate against the official ``openai`` package's ``ChatCompletion`` type (tests/test_mctr_conformance.py).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(model: str, text: str | None, finish_reason: str = "stop", usage: object = "default") -> dict:
    """A chat.completion object as the OpenAI API documents it (all required fields present)."""
    reply = {"id": f"chatcmpl-local-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
             "model": model, "system_fingerprint": None,
             "choices": [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                          "message": {"role": "assistant", "content": text, "refusal": None}}],
             "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}}
    if usage != "default":
        reply["usage"] = usage
    return reply


class LocalChatServer:
    """Chat-completions server. ``script``: list of behaviours consumed per request; when empty, ``default``."""

    def __init__(self, default=("ok", "<think>go</think><answer>FIRE</answer>"), latency: float = 0.0):
        self.script, self.default, self.latency = [], default, latency
        self.requests: list[dict] = []
        self.replies: list[dict | None] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    behaviour = outer.script.pop(0) if outer.script else outer.default
                if outer.latency:
                    time.sleep(outer.latency)
                kind = behaviour[0]
                if kind == "status":
                    self._send(behaviour[1], b'{"error": {"message": "overloaded", "type": "server_error"}}',
                               behaviour[2] if len(behaviour) > 2 else {})
                elif kind == "garbage":
                    self._send(200, behaviour[1])
                elif kind == "reply":
                    self._send(200, json.dumps(behaviour[1]).encode())
                elif kind == "big":
                    self._send_big(behaviour[1], behaviour[2] if len(behaviour) > 2 else True)
                elif kind == "trickle":
                    self._send(200, json.dumps(completion(body["model"], behaviour[2])).encode(), delay=behaviour[1])
                else:
                    if kind == "sleep":
                        time.sleep(behaviour[1])
                    self._send(200, json.dumps(completion(body["model"], behaviour[-1])).encode())

            def _send(self, code, data, headers=None, delay=0.0):
                if code == 200:
                    try:
                        decoded = json.loads(data)
                    except ValueError:
                        decoded = None
                    with outer.lock:
                        outer.replies.append(decoded)
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    if delay:
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(delay)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client hung up (deadline, size cap)
                    pass

            def _send_big(self, nbytes, declare):
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    if declare:
                        self.send_header("Content-Length", str(nbytes))
                    self.end_headers()
                    block = b" " * 65536
                    for start in range(0, nbytes, len(block)):
                        self.wfile.write(block[:min(len(block), nbytes - start)])
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
