"""Decoding a chat-completions reply body into (text, finish_reason, token counts) without ever raising.

Real OpenAI-compatible servers send every shape the official client's ``ChatCompletion`` model accepts, and some
it does not: ``message.content: null`` (a length-limited reasoning model, a refusal with ``message.refusal``),
``usage: null`` or ``usage`` fields that are null / strings / floats, unknown ``finish_reason`` values, content as a
list of text parts. One odd answer must never stop a run: ``decode_reply`` returns a ``Decoded`` whose ``error``
says why there is no usable text ('' when there is), and the caller falls back to NOOP and counts it.
"""
from __future__ import annotations

import dataclasses
import json


@dataclasses.dataclass(frozen=True)
class Decoded:
    text: str  # the assistant text ('' when there is none)
    finish_reason: str  # the server's finish_reason ('stop', 'length', ...), 'unknown' if absent, 'malformed'
    prompt_tokens: int
    completion_tokens: int
    error: str = ""  # why ``text`` is unusable ('' when fine)


def token_count(v: object) -> int:
    """A usage field as a non-negative int: ints and integral floats/strings count, anything else (null, junk) is 0."""
    if isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return max(v, 0)
    if isinstance(v, float) and v.is_integer():
        return max(int(v), 0)
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return 0


def _content_text(content: object) -> str | None:
    """Message content as text: a string, or the text parts of a content-part list; None when neither."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def decode_reply(body: bytes) -> Decoded:
    """Decode one chat-completions response body (see module docstring); never raises."""
    def bad(why: str) -> Decoded:
        return Decoded("", "malformed", 0, 0, f"not a chat completion: {why}")

    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        return bad(f"body is not JSON ({str(err)[:80]}; starts {body[:60]!r})")
    if not isinstance(data, dict):
        return bad(f"body is a JSON {type(data).__name__}, not an object")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        detail = data.get("error")
        return bad(f"no choices{f' (server error {str(detail)[:120]})' if detail else ''}")
    choice = choices[0]
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) and finish else "unknown"
    message = choice.get("message")
    if not isinstance(message, dict):
        return Decoded("", "malformed", prompt, completion, "not a chat completion: choice has no message object")
    content = message.get("content")
    text = _content_text(content)
    if text is None:
        if content is not None:
            return Decoded("", "malformed", prompt, completion,
                           f"not a chat completion: message content is {type(content).__name__}")
        refusal = message.get("refusal")
        why = f"refusal: {str(refusal)[:120]}" if refusal else f"no content (finish_reason={finish})"
        return Decoded("", finish, prompt, completion, why)
    return Decoded(text, finish, prompt, completion)
