"""What the loopback model APIs share: a script of replies, a default answer, and a record of answers.

A vendor fake (``openai_api``, ``anthropic_api``, ``gemini_api``) says how its wire format reads a
request and writes an answer or an error; this base decides *which* reply a request gets:

- the next reply in the script, if any (``fake.script(fake.error(429, headers=...), None)``; ``None``
  stands for the default answer at that point). A scripted entry may also be made for the request it
  meets: ``fake.truncated()`` (an answer cut at the output limit, with the vendor's finish reason for
  that) or ``fake.answer(text, finish=..., data=...)``;
- else the default answer: deterministic text derived from the request body (so two runs of the same
  pipeline get the same answers and write the same report), after ``latency`` seconds.

A request that asks for structured output (each vendor's wire shape, read by ``requested_schema``)
gets a JSON object as its answer: ``json_reply`` (a dict, or a function of the schema and the request),
else one made from the schema. ``follows_schema = False`` makes the fake a weak model that answers
prose anyway; ``rejects_schema = True`` a server that refuses such requests with a 400.

A wrong key gets the vendor's own rejection when ``key`` is set. ``answered`` keeps every request that
got a 200, for tests that count what was paid for.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from typing import Any, Callable, Union

from tests.servers import Reply, Request

#: A reply made for the request it answers, from its model and the request.
Made = Callable[[str, Request], Reply]
Scripted = Union[Reply, Made, None]


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
                 reasoning: int = 0, cache_write: int = 0, json_reply: Any = None,
                 follows_schema: bool = True, rejects_schema: bool = False) -> None:
        self.latency = latency
        self.key = key
        self.cached = cached
        self.reasoning = reasoning
        self.cache_write = cache_write
        self.json_reply = json_reply
        self.follows_schema = follows_schema
        self.rejects_schema = rejects_schema
        self.answered: list[Request] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()

    # -- scripting ---------------------------------------------------------------------------
    def script(self, *replies: Scripted) -> "FakeAPI":
        with self._lock:
            self._script.extend(replies)
        return self

    def answer(self, text: str | None = None, *, finish: str = "stop", data: dict | None = None) -> Made:
        """A scripted 200 for whatever request meets it: ``text`` (else the default answer, or the JSON
        answer if the request asks for one), ending with ``finish`` ("stop", "length", "filter" or a
        raw vendor value), or the JSON object ``data``."""
        def made(model: str, request: Request) -> Reply:
            body, structured = text, data
            if body is None and structured is None:
                schema = self.requested_schema(request)
                if schema is not None and self.follows_schema:
                    structured = self.json_answer(schema, model, request)
                else:
                    body = self.answer_text(model, request)
            return self.success(model, request, body or "", finish=finish, data=structured)
        return made

    def truncated(self, text: str | None = None) -> Made:
        """A scripted answer cut at the output limit, mid-word, with the vendor's finish reason for that."""
        def made(model: str, request: Request) -> Reply:
            body = text if text is not None else self.answer_text(model, request)[:-9]
            return self.success(model, request, body, finish="length")
        return made

    def json_answer(self, schema: dict, model: str, request: Request) -> Any:
        """The JSON answer to a request asking for ``schema``: ``json_reply``, else one made from the schema."""
        if callable(self.json_reply):
            return self.json_reply(schema, request)
        if self.json_reply is not None:
            return self.json_reply
        return sample(schema, f"{self.vendor} {model} {digest(request)}")

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
        schema = self.requested_schema(request)
        if callable(scripted):
            reply = scripted(model, request)
        elif scripted is not None:
            reply = scripted
        elif self.key is not None and self.presented_key(request) != self.key:
            reply = self.bad_key()
        elif schema is not None and self.rejects_schema:
            reply = self.error(400, "structured output is not supported by this server")
        elif schema is not None and self.follows_schema:
            reply = self.success(model, request, "", data=self.json_answer(schema, model, request))
            reply.delay = self.latency
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

    def success(self, model: str, request: Request, text: str, *, finish: str = "stop",
                data: Any = None) -> Reply:
        """A 200 answering ``text`` (or the JSON object ``data``, the vendor's structured way), ending with
        ``finish``: "stop", "length" or "filter" in the vendor's own words, or any raw value as is."""
        raise NotImplementedError

    def requested_schema(self, request: Request) -> dict | None:
        """The JSON Schema the request asks its answer to follow, if it asks for one."""
        return None

    def error(self, status: int, message: str = "", *, headers: dict[str, str] | None = None) -> Reply:
        raise NotImplementedError

    def bad_key(self) -> Reply:
        return self.error(401, "invalid api key")

    def input_text(self, request: Request) -> str:
        """All the text a request sends (for a rough token count)."""
        raise NotImplementedError

    def usage_counts(self, request: Request, text: str) -> dict[str, Any]:
        return {"input": words(self.input_text(request)) + self.cached, "output": words(text) + self.reasoning}


def sample(schema: Any, seed: str) -> Any:
    """A deterministic value of ``schema``'s shape, its strings naming ``seed`` (and so the request)."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return sample(schema[key][0], seed)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: sample(sub, f"{seed} {name}") for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems") or 1))
        return [sample(schema.get("items") or {"type": "string"}, f"{seed} {i + 1}") for i in range(count)]
    if kind == "integer":
        return int(schema.get("minimum") or 1)
    if kind == "number":
        return float(schema.get("minimum") or 1.0)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return seed
