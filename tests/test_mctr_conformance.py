"""MCTR's wire format checked against the official ``openai`` package's types (a dev-only dependency).

* every request body our client sends (action prompts with images, text-only prompts, meta-reasoning prompts)
  validates as ``CompletionCreateParamsNonStreaming``, with no unknown keys, every message and content part
  validated eagerly (pydantic validates ``Iterable`` fields lazily, so parts are checked one by one);
* every reply our test server makes validates as ``ChatCompletion``;
* every reply shape ``ChatCompletion`` accepts (content null, refusals, tool calls, usage null, all finish
  reasons) decodes without a 'malformed' verdict, and nothing we are sent can make the decoder raise.
"""
from __future__ import annotations

import json
import typing

import numpy as np
import pytest

openai_types = pytest.importorskip("openai.types.chat")
pydantic = pytest.importorskip("pydantic")

from agents.mctr.backends.base import BranchOutcome, Observation, TrajectorySlice, Transition  # noqa: E402
from agents.mctr.backends.chat_decode import decode_reply  # noqa: E402
from agents.mctr.backends.local_server import LocalChatServer, completion  # noqa: E402
from agents.mctr.backends.openai_http import OpenAIActionReasoner, OpenAIMetaReasoner  # noqa: E402
from agents.mctr.config import ServerConfig  # noqa: E402
from agents.mctr.memory import KnowledgeBase, Proposal  # noqa: E402
from agents.mctr.perception import Obj, Situation  # noqa: E402

from openai.types.chat import (ChatCompletion, ChatCompletionContentPartParam,  # noqa: E402
                               ChatCompletionMessageParam)
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming  # noqa: E402

_STRICT = pydantic.ConfigDict(extra="forbid")
_PARAMS = pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)
_MESSAGE = pydantic.TypeAdapter(ChatCompletionMessageParam, config=_STRICT)
_PART = pydantic.TypeAdapter(ChatCompletionContentPartParam, config=_STRICT)
NAMES = ("NOOP", "FIRE", "RIGHT", "LEFT")


def validate_request(body: dict) -> None:
    """Raise if ``body`` is not a chat-completions request the official client could send."""
    unknown = set(body) - set(typing.get_type_hints(CompletionCreateParamsNonStreaming))
    assert not unknown, f"request keys the API does not define: {unknown}"
    _PARAMS.validate_python(body)
    for message in body["messages"]:
        _MESSAGE.validate_python(message)
        if isinstance(message["content"], list):
            for part in message["content"]:
                _PART.validate_python(part)


def _obs(seed=0) -> Observation:
    frames = np.random.default_rng(seed).integers(0, 255, (3, 210, 160, 3), dtype=np.uint8)
    objs = [Obj((200, 72, 72), 80.0, 190.0, 16, 4, 64, 4.0, 0.0, True)]
    kb = KnowledgeBase()
    kb.apply([Proposal("rule", "Keep the paddle under the ball.", "genre:paddle"),
              Proposal("action_outcome", "FIRE relaunches the ball.", "game:Breakout", 4, key="ao|start|FIRE",
                       value=0.8)], 1)
    return Observation("Breakout", "paddle", frames, objs, Situation("play", "left", "above", (-20.0, -50.0)),
                       NAMES, list(kb.entries.values()), np.zeros((4, 2), np.float32),
                       [{"situation": "play/left/above", "action": "LEFT", "advantage": 0.5}])


def test_every_request_we_send_and_every_reply_our_server_makes_conform():
    server = LocalChatServer()
    try:
        cfg = ServerConfig(base_url=server.url, model="test-vlm", timeout_s=5.0, backoff_s=0.01)
        for text_only in (False, True):
            r = OpenAIActionReasoner(ServerConfig(**{**vars(cfg), "text_only": text_only}))
            r.propose([_obs(0), _obs(1)])
            r.close()
        kb = KnowledgeBase()
        kb.apply([Proposal("pattern", "The ball speeds up after 4 hits.", "game:Breakout")], 1)
        traj = TrajectorySlice("Breakout", "paddle", NAMES, [Transition(Situation("play"), "FIRE", 1.0, True, [])],
                               [BranchOutcome(Situation("play"), "LEFT", 0.5, 1.0, 0.8)],
                               np.zeros((1, 210, 160, 3), np.uint8))
        OpenAIMetaReasoner(cfg).reflect(traj, kb, 10)
    finally:
        server.close()
    assert len(server.requests) == 5 and len(server.replies) == 5
    kinds = set()
    for req in server.requests:
        validate_request(req["body"])
        kinds |= {p["type"] for m in req["body"]["messages"] if isinstance(m["content"], list) for p in m["content"]}
    assert kinds == {"text", "image_url"}  # both content part types were exercised
    for reply in server.replies:
        ChatCompletion.model_validate(reply)


def test_validator_rejects_what_the_api_does_not_define():
    good = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    validate_request(good)
    for bad in ({**good, "max_new_tokens": 5},
                {**good, "messages": [{"role": "user", "content": [{"type": "image", "url": "x"}]}]},
                {**good, "messages": [{"role": "robot", "content": "hi"}]}):
        with pytest.raises((AssertionError, pydantic.ValidationError)):
            validate_request(bad)


def _shape(content="<answer>LEFT</answer>", finish="stop", usage="default", **message) -> dict:
    reply = completion("m", content, finish, usage)
    reply["choices"][0]["message"].update(message)
    return reply


ACCEPTED_SHAPES = {
    "plain": _shape(),
    "content null, length": _shape(None, "length"),
    "refusal": _shape(None, refusal="I can't help with that."),
    "tool call": _shape(None, "tool_calls", tool_calls=[{"id": "c1", "type": "function",
                                                          "function": {"name": "act", "arguments": "{}"}}]),
    "content filter": _shape("", "content_filter"),
    "usage null": _shape(usage=None),
    "usage details": _shape(usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                                   "completion_tokens_details": {"reasoning_tokens": 1},
                                   "prompt_tokens_details": None}),
    "no usage key": {k: v for k, v in _shape().items() if k != "usage"},
    "extra fields": {**_shape(), "prompt_logprobs": None, "kv_transfer_params": None, "service_tier": "default"},
    "several choices": {**_shape(), "choices": _shape()["choices"] + [{**_shape()["choices"][0], "index": 1}]},
}


@pytest.mark.parametrize("name", list(ACCEPTED_SHAPES))
def test_every_shape_the_official_type_accepts_decodes(name):
    reply = ACCEPTED_SHAPES[name]
    parsed = ChatCompletion.model_validate(reply)  # the official client accepts it ...
    d = decode_reply(json.dumps(reply).encode())  # ... and so do we, without a 'malformed' verdict
    assert d.finish_reason == parsed.choices[0].finish_reason
    assert d.text == (parsed.choices[0].message.content or "")
    usage = parsed.usage
    assert (d.prompt_tokens, d.completion_tokens) == ((usage.prompt_tokens, usage.completion_tokens) if usage
                                                      else (0, 0))
    assert (d.error == "") == (parsed.choices[0].message.content is not None)  # null content says why


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'{"choices": null}', b'{"choices": [null]}',
                                  b'{"choices": [{"message": null}]}', b'{"error": {"message": "x"}}',
                                  b'{"choices": [{"message": {"content": {"a": 1}}}], "usage": "many"}',
                                  b"\xff\xfe", "\u00e9".encode("latin-1")])
def test_nothing_a_server_sends_makes_the_decoder_raise(body):
    d = decode_reply(body)
    assert d.text == "" and d.error.startswith("not a chat completion")
