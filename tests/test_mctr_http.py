"""MCTR's OpenAI-compatible backend against a real HTTP server on 127.0.0.1 (a thread speaking chat completions)."""
from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from agents.mctr.backends.base import BranchOutcome, Observation, TrajectorySlice, Transition
from agents.mctr.backends.local_server import LocalChatServer
from agents.mctr.backends.openai_http import BackendError, ChatClient, OpenAIActionReasoner, OpenAIMetaReasoner
from agents.mctr.config import ServerConfig
from agents.mctr.memory import KnowledgeBase, Proposal
from agents.mctr.parsing import parse_action, parse_meta
from agents.mctr.perception import Obj, Situation

NAMES = ("NOOP", "FIRE", "RIGHT", "LEFT")


@pytest.fixture
def server():
    s = LocalChatServer()
    yield s
    s.close()


def _cfg(url, **kw) -> ServerConfig:
    base = dict(base_url=url, model="test-vlm", timeout_s=2.0, max_retries=2, backoff_s=0.01, concurrency=8)
    base.update(kw)
    return ServerConfig(**base)


def _obs(k=3, seed=0) -> Observation:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (k, 210, 160, 3), dtype=np.uint8)
    objs = [Obj((200, 72, 72), 80.0, 190.0, 16, 4, 64, 4.0, 0.0, True)]
    return Observation("Breakout", "paddle", frames, objs, Situation("play", "left", "above", (-20.0, -50.0)), NAMES,
                       [], np.zeros((4, 2), np.float32))


def test_image_payload_is_well_formed(server, monkeypatch):
    monkeypatch.setenv("MCTR_TEST_KEY", "sk-local")
    r = OpenAIActionReasoner(_cfg(server.url, api_key_env="MCTR_TEST_KEY"))
    obs = _obs()
    out = r.propose([obs])
    r.close()
    assert out.logits.shape == (1, 4) and out.logits[0].argmax() == 1 and out.fallbacks == 0
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-local"
    body = req["body"]
    assert body["model"] == "test-vlm" and body["max_tokens"] == 512
    system, user = body["messages"]
    assert system["role"] == "system" and "<answer>ACTION_NAME</answer>" in system["content"]
    parts = user["content"]
    assert parts[0]["type"] == "text" and "NOOP, FIRE, RIGHT, LEFT" in parts[0]["text"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 3
    for img, frame in zip(images, obs.frames):
        url = img["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        png = base64.b64decode(url.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), frame)  # lossless, oldest first


def test_text_only_mode_sends_the_object_list(server):
    r = OpenAIActionReasoner(_cfg(server.url, text_only=True))
    r.propose([_obs()])
    r.close()
    parts = server.requests[0]["body"]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text"]
    assert "rgb(200, 72, 72) 16x4 at (x=80, y=190), moving (+4,+0)" in parts[0]["text"]


def test_retries_on_5xx_then_succeeds(server):
    server.script = [("status", 503), ("status", 500)]
    res = ChatClient(_cfg(server.url)).complete([{"role": "user", "content": "hi"}], 16)
    assert res.retries == 2 and "FIRE" in res.text and len(server.requests) == 3
    server.script = [("status", 503)] * 3
    with pytest.raises(BackendError, match=r"no answer after 2 attempts.*HTTP 503"):
        ChatClient(_cfg(server.url, max_retries=1)).complete([{"role": "user", "content": "hi"}], 16)


def test_retries_on_timeout(server):
    server.script = [("sleep", 1.5, "<answer>LEFT</answer>")]
    t0 = time.perf_counter()
    res = ChatClient(_cfg(server.url, timeout_s=0.5)).complete([{"role": "user", "content": "hi"}], 16)
    assert res.retries == 1 and res.text == "<think>go</think><answer>FIRE</answer>"
    assert time.perf_counter() - t0 < 1.5  # did not wait for the slow answer


def test_client_errors_fail_fast_and_bad_urls_are_refused(server):
    server.script = [("status", 400)]
    with pytest.raises(BackendError, match="HTTP 400"):
        ChatClient(_cfg(server.url)).complete([{"role": "user", "content": "hi"}], 16)
    assert len(server.requests) == 1
    with pytest.raises(BackendError, match="not an http"):
        ChatClient(_cfg("localhost:8000"))


@pytest.mark.parametrize("behaviour, reason", [
    (("garbage", b"<html>502 bad gateway</html>"), "not a chat completion"),
    (("garbage", b'{"choices": []}'), "not a chat completion"),
    (("ok", "<think>the ball is left, so I should move LE"), "no <answer> tag"),
    (("ok", "<think>ok</think><answer>LEFT"), "truncated answer"),
    (("ok", "<think>ok</think><answer>JUMP</answer>"), "illegal action 'JUMP'"),
    (("ok", ""), "empty answer"),
])
def test_malformed_and_truncated_answers_fall_back_to_noop(server, behaviour, reason):
    server.default = behaviour
    r = OpenAIActionReasoner(_cfg(server.url))
    out = r.propose([_obs(), _obs(seed=1)])
    r.close()
    assert out.fallbacks == 2 and all(reason in why for why in out.fallback_reasons)
    assert (out.logits.argmax(1) == 0).all()  # NOOP


def test_parse_action_normalises_names():
    assert parse_action("<think>x</think><answer> right fire </answer>", ("NOOP", "RIGHTFIRE")).action == 1
    p = parse_action("<answer>up</answer>", ("FIRE", "UP"))  # no NOOP in the set -> fallback is action 0
    assert p.action == 1 and not p.fallback
    assert parse_action("<answer>NOOP</answer><answer>UP</answer>", ("FIRE", "UP")).action == 1  # last answer wins


def test_concurrent_requests_and_token_accounting():
    server = LocalChatServer(latency=0.4)
    try:
        r = OpenAIActionReasoner(_cfg(server.url, concurrency=8))
        t0 = time.perf_counter()
        out = r.propose([_obs(k=1, seed=i) for i in range(8)])
        wall = time.perf_counter() - t0
        r.close()
    finally:
        server.close()
    assert wall < 0.4 * 8 / 2  # 8 requests of 0.4 s overlap (serial would take 3.2 s)
    assert out.prompt_tokens == 800 and out.completion_tokens == 56
    assert out.latency_s >= 8 * 0.4 * 0.9


def test_meta_reasoning_entries_revisions_and_malformed_lines(server):
    kb = KnowledgeBase()
    eid = kb.apply([Proposal("pattern", "The ball speeds up after 4 hits.", "game:Breakout")], 1).added[0]
    server.default = ("ok", "\n".join([
        '<entry kind="rule" scope="genre:paddle">Keep the paddle under the ball.</entry>',
        '<entry kind="action_outcome" scope="game:Breakout">FIRE after losing a life relaunches the ball.</entry>',
        f'<revise id="{eid}">The ball speeds up after 12 hits.</revise>',
        '<entry kind="wish" scope="game:Breakout">I want more lives.</entry>',
        '<revise id="k99999">nothing</revise>',
        'Here are my thoughts!',
        '<entry kind="rule" scope="game:Breakout">cut off']))
    traj = TrajectorySlice("Breakout", "paddle", NAMES,
                           [Transition(Situation("play"), "FIRE", 1.0, False, [])],
                           [BranchOutcome(Situation("play"), "LEFT", 0.5, 1.0, 0.8)],
                           np.zeros((1, 210, 160, 3), np.uint8))
    out = OpenAIMetaReasoner(_cfg(server.url)).reflect(traj, kb, 10)
    assert out.malformed == 4 and out.prompt_tokens == 100
    report = kb.apply(out.proposals, 10)
    assert len(report.added) == 2 and report.revised == [eid]
    text = server.requests[0]["body"]["messages"][1]["content"][0]["text"]
    assert f"[{eid}]" in text and "first action LEFT" in text


def test_parse_meta_counts_empty_answer():
    proposals, malformed, reasons = parse_meta("", {})
    assert proposals == [] and malformed == 1 and reasons == ["empty answer"]
