"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (a thread) for tests, benchmarks and dry runs.

It binds to the loopback interface only. Each request consumes one scripted behaviour (or ``default``):
``('ok', text)`` answers ``text``; ``('status', code)`` fails with that HTTP code; ``('sleep', s, text)`` answers
after ``s`` seconds; ``('garbage', bytes)`` sends a body that is not a chat completion. ``latency`` delays every
answer (a fixed-latency server for throughput benchmarks). Requests are recorded in ``requests``.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalChatServer:
    """Chat-completions server. ``script``: list of behaviours consumed per request; when empty, ``default``.

    A behaviour is ('ok', text) | ('status', code) | ('sleep', seconds, text) | ('garbage', body).
    """

    def __init__(self, default=("ok", "<think>go</think><answer>FIRE</answer>"), latency: float = 0.0):
        self.script, self.default, self.latency = [], default, latency
        self.requests: list[dict] = []
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
                    self._send(behaviour[1], b'{"error": "overloaded"}')
                elif kind == "garbage":
                    self._send(200, behaviour[1])
                else:
                    if kind == "sleep":
                        time.sleep(behaviour[1])
                    text = behaviour[-1]
                    reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": text}}],
                             "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}}
                    self._send(200, json.dumps(reply).encode())

            def _send(self, code, data):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and hung up
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
