"""Step keys: a content hash of a step's canonical inputs.

A key is ``sha256(canonical_json({kind, provider, endpoint, model, request, schema_version}))``, written
with a version prefix so that a change to the scheme can never collide with keys made by an older one.
Only what changes the answer goes in: API keys, timeouts, retry settings and concurrency never do, and
dict order cannot matter because canonical JSON sorts keys.
"""

from __future__ import annotations

import hashlib
from typing import Any

from agent.jsontext import canonical, canonical_bytes

#: Bump when the meaning of a stored result changes; every key changes with it.
SCHEMA_VERSION = 1
KEY_PREFIX = "v1"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace and no NaN: the same value always gives the same text
    (``json.dumps``'s, long strings escaped faster: :mod:`agent.jsontext`)."""
    return canonical(value)


def content_hash(value: Any) -> str:
    """Hex SHA-256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


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


class KeyMaker:
    """:func:`step_key` for many requests of one step (same kind, provider, endpoint and model), made
    from each request's canonical JSON text: the fixed fields are written once, so a caller that
    already holds the request's canonical JSON does not have it serialized a second time.

    ``KeyMaker(kind, ...).key(canonical_json(request)) == step_key(kind, ..., request=request)``: the
    payload's fields sort as ``endpoint, kind, model, provider, request, schema_version``, and the
    request's text is hashed in its place between them.
    """

    def __init__(self, kind: str, *, provider: str = "", endpoint: str = "", model: str = "",
                 schema_version: int = SCHEMA_VERSION) -> None:
        head = canonical_json({"endpoint": endpoint, "kind": kind, "model": model, "provider": provider})
        self._head = hashlib.sha256(f'{head[:-1]},"request":'.encode("utf-8"))
        self._tail = f',"schema_version":{canonical_json(schema_version)}}}'.encode("utf-8")
        self._prefix = f"{KEY_PREFIX}:{kind}:"

    def key(self, request_json: str) -> str:
        """The key of the request whose canonical JSON is ``request_json``."""
        digest = self._head.copy()
        digest.update(request_json.encode("utf-8"))
        digest.update(self._tail)
        return self._prefix + digest.hexdigest()
