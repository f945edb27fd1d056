"""Keeping API keys out of everything the project writes.

Keys are read from the environment (or ``.env``) at the edge and handed to SDK clients; they are never
part of a step key. Error text from a vendor can still echo a key back, so every message bound for the
journal, a report or the terminal goes through :func:`redact` first.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD)$")
# Shapes of vendor keys, masked even when the key is not in this process's environment.
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|fc-[A-Za-z0-9]{16,})")


def secret_values() -> list[str]:
    """Values of environment variables that look like credentials (long enough to matter)."""
    return [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6]


def redact(text: str) -> str:
    """``text`` with every known secret value and every key-shaped token replaced by ``***``."""
    if not text:
        return text
    for value in sorted(secret_values(), key=len, reverse=True):
        text = text.replace(value, "***")
    return _KEY_SHAPES.sub("***", text)
