"""Prompt builders for the VLM backend (OpenAI chat-completions message lists).

Action reasoning: system prompt with the answer format, then one user message holding the game, the legal action
names, the retrieved knowledge (or in-context examples), the situation, and either the last K frames as PNG data
URLs or (text-only mode) the extracted object list. Meta-reasoning: the trajectory slice as text (+ the newest
frame), the current entries with ids, and the entry format the parser expects.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import io
import threading
from typing import Sequence

import numpy as np

from agents.mctr.backends.base import Observation, TrajectorySlice
from agents.mctr.memory import KINDS, Entry
from agents.mctr.perception import describe_objects

ACTION_SYSTEM = (
    "You are an expert Atari player. Think briefly about the situation, then answer with exactly one legal action "
    "name in this format: <think>your reasoning</think><answer>ACTION_NAME</answer>")

META_SYSTEM = (
    "You review an Atari agent's recent experience and maintain its knowledge. Write short, general, checkable "
    "statements. Output one entry per line, in this exact format:\n"
    '<entry kind="rule|pattern|action_outcome" scope="game:NAME|genre:NAME|general">statement</entry>\n'
    "To correct an existing entry with an id that the experience contradicts, output "
    '<revise id="ENTRY_ID">corrected statement</revise> (entries marked read-only are measured statistics and '
    "cannot be revised). Output nothing else.")


_PNG_CACHE: "collections.OrderedDict[bytes, str]" = collections.OrderedDict()
_PNG_LOCK = threading.Lock()


def png_data_url(frame: np.ndarray) -> str:
    """[H, W, 3] uint8 -> 'data:image/png;base64,...' (lossless; fast zlib level 1).

    Each frame is sent in K consecutive decisions (the K-frame window), so encodings are cached by content hash.
    """
    from PIL import Image  # the 'llm' extra

    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"png_data_url wants an [H, W, 3] uint8 frame, got {frame.shape} {frame.dtype}")
    digest = hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest() + bytes(frame.shape[:2])
    with _PNG_LOCK:
        hit = _PNG_CACHE.get(digest)
        if hit is not None:
            _PNG_CACHE.move_to_end(digest)
            return hit
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    with _PNG_LOCK:
        _PNG_CACHE[digest] = url
        while len(_PNG_CACHE) > 256:
            _PNG_CACHE.popitem(last=False)
    return url


def format_knowledge(entries: Sequence[Entry]) -> str:
    """One line per entry. Measured (keyed, statistics-engine) entries are shown without an id, marked read-only:
    the VLM may read their numbers but cannot ``<revise>`` them (the memory refuses such revisions anyway)."""
    if not entries:
        return "(no knowledge yet)"
    return "\n".join(f"- {'[measured, read-only]' if e.key else f'[{e.id}]'} ({e.kind}, {e.scope}, confidence "
                     f"{e.confidence:.2f}) {e.text}" for e in entries)


def action_messages(obs: Observation, text_only: bool) -> list[dict]:
    """Chat messages for one env's decision."""
    lines = [f"Game: {obs.game} ({obs.genre} game).",
             f"Legal actions: {', '.join(obs.action_names)}.",
             f"Situation: {obs.situation.text()}."]
    if obs.examples:
        lines.append("Recent examples (situation, first action, advantage over alternatives):")
        lines += [f"- {ex['situation']}, {ex['action']}, {ex['advantage']:+.2f}" for ex in obs.examples[-16:]]
    else:
        lines.append("What you know about this game:\n" + format_knowledge(obs.knowledge))
    content: list[dict] = []
    if text_only:
        lines.append("Objects on screen (colour, size, centre, motion since the last frame):\n"
                     + describe_objects(obs.objects))
    else:
        lines.append(f"The last {len(obs.frames)} frames follow, oldest first.")
    lines.append("Choose the next action.")
    content.append({"type": "text", "text": "\n".join(lines)})
    if not text_only:
        content += [{"type": "image_url", "image_url": {"url": png_data_url(f)}} for f in obs.frames]
    return [{"role": "system", "content": ACTION_SYSTEM}, {"role": "user", "content": content}]


def meta_messages(traj: TrajectorySlice, entries: Sequence[Entry], text_only: bool, max_lines: int = 64) -> list[dict]:
    """Chat messages for one meta-reasoning run over ``traj``."""
    rows = [f"- {t.situation.text()}; action {t.action}; reward {t.reward:+g}" + ("; LIFE LOST" if t.life_lost else "")
            for t in traj.transitions[-max_lines:]]
    branches = [f"- {b.situation.text()}; first action {b.action}; branch return {b.ret:+.2f}; advantage "
                f"{b.advantage:+.2f}" for b in traj.branches[-max_lines:]]
    text = "\n".join([
        f"Game: {traj.game} ({traj.genre} game). Actions: {', '.join(traj.action_names)}.",
        "Current knowledge (ids in brackets):", format_knowledge(entries),
        f"Recent decisions ({len(traj.transitions)} total, last {len(rows)} shown):", *rows,
        "Branched rollouts from saved emulator states (same start, different first action):", *(branches or ["- none"]),
        f"Allowed kinds: {', '.join(KINDS)}. Scopes: game:{traj.game}, genre:{traj.genre}, general.",
        "Write new or corrected knowledge entries."])
    content: list[dict] = [{"type": "text", "text": text}]
    if not text_only and traj.frames is not None and len(traj.frames):
        content.append({"type": "image_url", "image_url": {"url": png_data_url(traj.frames[-1])}})
    return [{"role": "system", "content": META_SYSTEM}, {"role": "user", "content": content}]
