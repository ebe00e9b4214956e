"""Retrieval of knowledge entries: top-k by embedding similarity plus a scope bonus.

The embedding needs no download: words and character 3-grams are hashed (a stable FNV-1a hash, not Python's
salted ``hash``) into ``dim`` signed buckets and the vector is L2-normalised, so cosine similarity measures shared
vocabulary. It is a lexical embedding, not a semantic one: "paddle" and "bat" are unrelated to it.
"""
from __future__ import annotations

import functools
import re
from typing import Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9_]+")


def _fnv1a(token: str) -> int:
    h = 0xCBF29CE484222325
    for byte in token.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@functools.lru_cache(maxsize=4096)
def _embed_cached(text: str, dim: int) -> np.ndarray:
    vec = _embed(text, dim)
    vec.setflags(write=False)
    return vec


def embed_text(text: str, dim: int = 256) -> np.ndarray:
    """Hashed word + character-trigram features of ``text``: ``[dim]`` float32, unit norm (zero for empty text)."""
    return _embed_cached(text, dim)


def _embed(text: str, dim: int) -> np.ndarray:
    vec = np.zeros(dim, np.float32)
    words = _WORD.findall(text.lower())
    tokens = [f"w:{w}" for w in words]
    for w in words:
        padded = f"#{w}#"
        tokens.extend(f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2))
    for tok in tokens:
        h = _fnv1a(tok)
        weight = 2.0 if tok.startswith("w:") else 1.0  # whole words count more than trigrams
        vec[h % dim] += weight if (h >> 63) & 1 else -weight
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def embed_many(texts: Sequence[str], dim: int = 256) -> np.ndarray:
    """``[N, dim]`` float32 embeddings of ``texts``."""
    if not texts:
        return np.zeros((0, dim), np.float32)
    return np.stack([embed_text(t, dim) for t in texts])


def scope_bonus(entry_scope: str, game: str, genre: str, bonus: float) -> float:
    """``bonus`` for an entry about this exact game, half for its genre, a quarter for a general one, else 0.

    Scopes are ``game:<name>``, ``genre:<name>`` or ``general``; entries about other games or genres get 0 and are
    only retrieved when their text is very similar.
    """
    if entry_scope == f"game:{game}":
        return bonus
    if entry_scope == f"genre:{genre}":
        return 0.5 * bonus
    if entry_scope == "general":
        return 0.25 * bonus
    return -bonus  # another game's or genre's knowledge: ranked below anything in scope


def top_k(query_vec: np.ndarray, entry_vecs: np.ndarray, bonuses: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best entries by ``cosine(query, entry) + bonus``, best first.

    query_vec: [D]; entry_vecs: [N, D] unit-norm rows; bonuses: [N]. Returns [min(k, N)] int64.
    """
    if entry_vecs.shape[0] == 0 or k <= 0:
        return np.zeros((0,), np.int64)
    if entry_vecs.shape[1] != query_vec.shape[0] or bonuses.shape != (entry_vecs.shape[0],):
        raise ValueError(f"top_k: query {query_vec.shape}, entries {entry_vecs.shape}, bonuses {bonuses.shape}")
    scores = entry_vecs @ query_vec + bonuses
    order = np.argsort(-scores, kind="stable")
    return order[:k]
