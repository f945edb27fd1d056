"""A loopback OpenAI Chat Completions API, for the real ``openai`` SDK to talk to.

``POST {base}/chat/completions`` (the SDK appends that to its ``base_url``, which is ``http://host:port/v1``
here) answers a ``chat.completion`` object with usage, including cached prompt tokens and reasoning
tokens; errors have OpenAI's ``{"error": {"message", "type", "code"}}`` shape. Works for the
``openai``, ``openai-compatible`` and ``ollama`` providers alike. A request with
``response_format={"type": "json_schema", "json_schema": {"schema": ...}}`` (or ``json_object``) is
answered with JSON content; ``finish_reason`` is "stop", "length" or "content_filter".
"""

from __future__ import annotations

import json
from typing import Any

from tests.servers import Reply, Request
from tests.servers.fake_api import FakeAPI, digest

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
          404: "invalid_request_error", 429: "rate_limit_error"}
_FINISH = {"stop": "stop", "length": "length", "filter": "content_filter"}


class OpenAIAPI(FakeAPI):
    vendor = "openai"

    def route(self, request: Request) -> str | None:
        if request.method != "POST" or not request.path.split("?")[0].endswith("/chat/completions"):
            return None
        body = request.json() or {}
        return str(body.get("model", ""))

    def presented_key(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def input_text(self, request: Request) -> str:
        messages = (request.json() or {}).get("messages", [])
        return " ".join(str(m.get("content", "")) for m in messages)

    def requested_schema(self, request: Request) -> dict | None:
        body = request.json() if request.method == "POST" and request.body else None
        fmt = (body or {}).get("response_format") if isinstance(body, dict) else None
        if not isinstance(fmt, dict):
            return None
        if fmt.get("type") == "json_schema":
            return (fmt.get("json_schema") or {}).get("schema") or {}
        return {} if fmt.get("type") == "json_object" else None

    def success(self, model: str, request: Request, text: str, *, finish: str = "stop",
                data: Any = None) -> Reply:
        if data is not None:
            text = json.dumps(data)
        counts = self.usage_counts(request, text)
        return Reply(200, {
            "id": f"chatcmpl-{digest(request)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "finish_reason": _FINISH.get(finish, finish), "logprobs": None,
                         "message": {"role": "assistant", "content": text, "refusal": None}}],
            "usage": {
                "prompt_tokens": counts["input"],
                "completion_tokens": counts["output"],
                "total_tokens": counts["input"] + counts["output"],
                "prompt_tokens_details": {"cached_tokens": self.cached},
                "completion_tokens_details": {"reasoning_tokens": self.reasoning},
            },
        })

    def error(self, status: int, message: str = "", *, headers: dict[str, str] | None = None) -> Reply:
        kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
        return Reply(status, {"error": {"message": message or f"error {status}", "type": kind, "param": None,
                                        "code": code}}, headers=dict(headers or {}))

    def bad_key(self) -> Reply:
        return self.error(401, "Incorrect API key provided. You can find your API key at https://platform.openai.com.")
