"""Splitting a long source into parts a model can read, for map-reduce summaries.

Token counts are estimated at four characters a token, which is close for English prose with the
vendors' tokenizers and needs none of them installed. Text is split at paragraph breaks, then at
sentence ends, and only as a last resort inside a sentence, so each part stays readable.
"""

from __future__ import annotations

import re

CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def _pieces(text: str, limit_chars: int) -> list[str]:
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= limit_chars:
            out.append(para)
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", para):
            while len(sentence) > limit_chars:
                out.append(sentence[:limit_chars])
                sentence = sentence[limit_chars:]
            if sentence:
                out.append(sentence)
    return out


def split(text: str, max_tokens: int) -> list[str]:
    """``text`` in consecutive parts of at most about ``max_tokens`` tokens each."""
    limit = max(200, max_tokens * CHARS_PER_TOKEN)
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for piece in _pieces(text, limit):
        if current and size + len(piece) + 2 > limit:
            parts.append("\n\n".join(current))
            current, size = [], 0
        current.append(piece)
        size += len(piece) + 2
    if current:
        parts.append("\n\n".join(current))
    return parts
