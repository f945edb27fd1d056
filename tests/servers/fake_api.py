"""What the loopback model APIs share: a script of replies, a default answer, and a record of answers.

A vendor fake (``openai_api``, ``anthropic_api``, ``gemini_api``) says how its wire format reads a
request and writes an answer or an error; this base decides *which* reply a request gets:

- the next reply in the script, if any (``fake.script(fake.error(429, headers=...), None)``; ``None``
  stands for the default answer at that point);
- else the default answer: deterministic text derived from the request body (so two runs of the same
  pipeline get the same answers and write the same report), after ``latency`` seconds.

A wrong key gets the vendor's own rejection when ``key`` is set. ``answered`` keeps every request that
got a 200, for tests that count what was paid for.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from typing import Any

from tests.servers import Reply, Request


def digest(request: Request) -> str:
    """A short, stable name for a request's content (key order and whitespace do not matter)."""
    try:
        canonical = json.dumps(request.json(), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = request.body.decode("utf-8", "replace")
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def words(text: str) -> int:
    return len(text.split())


class FakeAPI:
    """Scripted, thread-safe request handler; subclasses speak one vendor's wire format."""

    vendor = "fake"

    def __init__(self, *, latency: float = 0.0, key: str | None = None, cached: int = 0,
                 reasoning: int = 0, cache_write: int = 0) -> None:
        self.latency = latency
        self.key = key
        self.cached = cached
        self.reasoning = reasoning
        self.cache_write = cache_write
        self.answered: list[Request] = []
        self._script: deque[Reply | None] = deque()
        self._lock = threading.Lock()

    # -- scripting ---------------------------------------------------------------------------
    def script(self, *replies: Reply | None) -> "FakeAPI":
        with self._lock:
            self._script.extend(replies)
        return self

    def answer_text(self, model: str, request: Request) -> str:
        """The default answer: names the vendor, the model and the request, and cites source 1."""
        return f"{self.vendor} {model} answer {digest(request)}: the sources agree [1]."

    # -- the handler -------------------------------------------------------------------------
    def __call__(self, request: Request) -> Reply:
        model = self.route(request)
        if model is None:
            return self.error(404, f"no such route: {request.method} {request.path}")
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            reply = scripted
        elif self.key is not None and self.presented_key(request) != self.key:
            reply = self.bad_key()
        else:
            reply = self.success(model, request, self.answer_text(model, request))
            reply.delay = self.latency
        if reply.status == 200 and not reply.drop:
            with self._lock:
                self.answered.append(request)
        return reply

    # -- the vendor's wire format ------------------------------------------------------------
    def route(self, request: Request) -> str | None:
        """The model a request is for, or ``None`` if it is not a generation request."""
        raise NotImplementedError

    def presented_key(self, request: Request) -> str | None:
        raise NotImplementedError

    def success(self, model: str, request: Request, text: str) -> Reply:
        raise NotImplementedError

    def error(self, status: int, message: str = "", *, headers: dict[str, str] | None = None) -> Reply:
        raise NotImplementedError

    def bad_key(self) -> Reply:
        return self.error(401, "invalid api key")

    def input_text(self, request: Request) -> str:
        """All the text a request sends (for a rough token count)."""
        raise NotImplementedError

    def usage_counts(self, request: Request, text: str) -> dict[str, Any]:
        return {"input": words(self.input_text(request)) + self.cached, "output": words(text) + self.reasoning}
