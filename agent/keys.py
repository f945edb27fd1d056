"""Step keys: a content hash of a step's canonical inputs.

A key is ``sha256(canonical_json({kind, provider, endpoint, model, request, schema_version}))``, written
with a version prefix so that a change to the scheme can never collide with keys made by an older one.
Only what changes the answer goes in: API keys, timeouts, retry settings and concurrency never do, and
dict order cannot matter because canonical JSON sorts keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Bump when the meaning of a stored result changes; every key changes with it.
SCHEMA_VERSION = 1
KEY_PREFIX = "v1"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace and no NaN: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(value: Any) -> str:
    """Hex SHA-256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def step_key(
    kind: str,
    *,
    provider: str = "",
    endpoint: str = "",
    model: str = "",
    request: Any = None,
    schema_version: int = SCHEMA_VERSION,
) -> str:
    """The key of one step. Everything passed here is part of the key; pass nothing secret."""
    payload = {
        "kind": kind,
        "provider": provider,
        "endpoint": endpoint,
        "model": model,
        "request": request,
        "schema_version": schema_version,
    }
    return f"{KEY_PREFIX}:{kind}:{content_hash(payload)}"
