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
from agents.mctr.backends.openai_http import (BackendError, CallFailed, ChatClient, OpenAIActionReasoner,
                                              OpenAIMetaReasoner, retry_after_s)
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
    with pytest.raises(CallFailed, match=r"no answer after 2 attempt\(s\).*HTTP 503"):
        ChatClient(_cfg(server.url, max_retries=1)).complete([{"role": "user", "content": "hi"}], 16)


def test_retries_on_timeout(server):
    server.script = [("sleep", 1.5, "<answer>LEFT</answer>")]
    t0 = time.perf_counter()
    res = ChatClient(_cfg(server.url, timeout_s=0.5)).complete([{"role": "user", "content": "hi"}], 16)
    assert res.retries == 1 and res.text == "<think>go</think><answer>FIRE</answer>"
    assert time.perf_counter() - t0 < 1.5  # did not wait for the slow answer


def test_client_errors_fail_fast_and_bad_urls_are_refused(server):
    server.script = [("status", 400)]
    with pytest.raises(CallFailed, match="HTTP 400"):  # one refused request: that call fails, not the run
        ChatClient(_cfg(server.url)).complete([{"role": "user", "content": "hi"}], 16)
    assert len(server.requests) == 1
    server.script = [("status", 401)]
    with pytest.raises(BackendError, match="HTTP 401.*check server.base_url") as err:  # misconfigured: stop
        ChatClient(_cfg(server.url)).complete([{"role": "user", "content": "hi"}], 16)
    assert not isinstance(err.value, CallFailed) and len(server.requests) == 2
    with pytest.raises(BackendError, match="not an http"):
        ChatClient(_cfg("localhost:8000"))


@pytest.mark.parametrize("behaviour, reason", [
    (("garbage", b"<html>502 bad gateway</html>"), "not a chat completion"),
    (("garbage", b'{"choices": []}'), "not a chat completion"),
    (("garbage", b'[1, 2]'), "not a chat completion"),
    (("reply", {"choices": [{"message": "FIRE"}]}), "no message object"),
    (("reply", {"choices": [{"message": {"content": 42}}]}), "content is int"),
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


# ------------------------------------------------------------------------------------ shapes real servers send
def _completion(content, finish="stop", usage="default", **message):
    from agents.mctr.backends.local_server import completion
    reply = completion("test-vlm", content, finish, usage)
    reply["choices"][0]["message"].update(message)
    return reply


@pytest.mark.parametrize("reply, text, finish, tokens, error", [
    (_completion(None, "length"), "", "length", (100, 7), "no content (finish_reason=length)"),
    (_completion(None, refusal="I can't help with that."), "", "stop", (100, 7), "refusal: I can't help"),
    (_completion("<answer>LEFT</answer>", usage=None), "<answer>LEFT</answer>", "stop", (0, 0), ""),
    (_completion("<answer>LEFT</answer>", usage={"prompt_tokens": 5, "completion_tokens": None,
                                                 "total_tokens": None}), "<answer>LEFT</answer>", "stop", (5, 0), ""),
    (_completion("<answer>LEFT</answer>", usage=[1, 2]), "<answer>LEFT</answer>", "stop", (0, 0), ""),
    (_completion("<answer>LEFT</answer>", usage={"prompt_tokens": "12", "completion_tokens": 3.0}),
     "<answer>LEFT</answer>", "stop", (12, 3), ""),
    (_completion([{"type": "text", "text": "<answer>"}, {"type": "text", "text": "LEFT</answer>"}]),
     "<answer>LEFT</answer>", "stop", (100, 7), ""),
    (_completion("<answer>LEFT</answer>", "content_filter"), "<answer>LEFT</answer>", "content_filter", (100, 7), ""),
])
def test_odd_but_valid_replies_decode_without_crashing(server, reply, text, finish, tokens, error):
    server.default = ("reply", reply)
    res = ChatClient(_cfg(server.url)).complete([{"role": "user", "content": "hi"}], 16)
    assert (res.text, res.finish_reason, (res.prompt_tokens, res.completion_tokens)) == (text, finish, tokens)
    assert error in res.error if error else res.error == ""


def test_action_reasoner_counts_finish_reasons_and_falls_back_on_null_content(server):
    server.script = [("reply", _completion(None, "length")), ("ok", "<answer>LEFT</answer>")]
    r = OpenAIActionReasoner(_cfg(server.url, concurrency=1))
    out = r.propose([_obs(k=1), _obs(k=1, seed=1)])
    r.close()
    assert out.finish_reasons == {"length": 1, "stop": 1} and out.fallbacks == 1
    assert "finish_reason=length" in out.fallback_reasons[0] and list(out.logits.argmax(1)) == [0, 3]


def test_retry_after_is_honoured_and_408_409_429_are_retried(server):
    server.script = [("status", 429, {"Retry-After": "1"}), ("status", 408), ("status", 409)]
    t0 = time.perf_counter()
    res = ChatClient(_cfg(server.url, max_retries=3, backoff_s=0.01)).complete([{"role": "user", "content": "hi"}], 8)
    assert res.retries == 3 and "FIRE" in res.text and len(server.requests) == 4
    assert time.perf_counter() - t0 >= 1.0  # waited the server's Retry-After, not the 0.01 s backoff
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0 and retry_after_s("2.5") == 2.5
    assert retry_after_s("soon") is None
    server.script = [("status", 503, {"Retry-After": "3600"})]
    t0 = time.perf_counter()
    with pytest.raises(CallFailed, match="Retry-After 3600s > max_retry_after_s"):
        ChatClient(_cfg(server.url, max_retry_after_s=5)).complete([{"role": "user", "content": "hi"}], 8)
    assert time.perf_counter() - t0 < 1.0


def test_a_trickling_server_hits_the_deadline(server):
    server.script = [("trickle", 0.05, "<answer>LEFT</answer>")] * 2  # ~300 bytes at 20 bytes/s = 15 s each
    t0 = time.perf_counter()
    with pytest.raises(CallFailed, match="no complete reply within"):
        ChatClient(_cfg(server.url, timeout_s=0.5, max_retries=1)).complete([{"role": "user", "content": "hi"}], 8)
    assert time.perf_counter() - t0 < 2.0  # two attempts of 0.5 s + backoff, not 2 x 15 s
    t0 = time.perf_counter()
    server.script = [("trickle", 0.05, "<answer>LEFT</answer>")] * 5
    with pytest.raises(CallFailed):  # the call deadline caps all attempts together
        ChatClient(_cfg(server.url, timeout_s=0.5, call_deadline_s=0.8, max_retries=4)).complete(
            [{"role": "user", "content": "hi"}], 8)
    assert time.perf_counter() - t0 < 1.5


@pytest.mark.parametrize("declare", [True, False])
def test_huge_replies_are_cut_off(server, declare):
    server.default = ("big", 50_000_000, declare)
    t0 = time.perf_counter()
    res = ChatClient(_cfg(server.url, max_response_bytes=1_000_000)).complete([{"role": "user", "content": "hi"}], 8)
    assert res.text == "" and res.finish_reason == "malformed" and "max_response_bytes" in res.error
    assert time.perf_counter() - t0 < 2.0  # not read whole


def test_exhausted_retries_fall_back_to_noop_and_skip_meta_reasoning(server):
    server.default = ("status", 503)
    r = OpenAIActionReasoner(_cfg(server.url, max_retries=1))
    out = r.propose([_obs(k=1)])
    r.close()
    assert out.fallbacks == 1 and out.finish_reasons == {"failed": 1} and out.logits.argmax() == 0
    assert "no answer after 2 attempt(s)" in out.fallback_reasons[0]
    traj = TrajectorySlice("Breakout", "paddle", NAMES, [], [], None)
    meta = OpenAIMetaReasoner(_cfg(server.url, max_retries=0)).reflect(traj, KnowledgeBase(), 5)
    assert meta.proposals == [] and meta.failed == 1 and "HTTP 503" in meta.errors[0]
