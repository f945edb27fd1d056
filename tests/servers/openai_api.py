"""A loopback OpenAI Chat Completions API, for the real ``openai`` SDK to talk to.

``POST {base}/chat/completions`` (the SDK appends that to its ``base_url``, which is ``http://host:port/v1``
here) answers a ``chat.completion`` object with usage, including cached prompt tokens and reasoning
tokens; errors have OpenAI's ``{"error": {"message", "type", "code"}}`` shape. Works for the
``openai``, ``openai-compatible`` and ``ollama`` providers alike.
"""

from __future__ import annotations

from tests.servers import Reply, Request
from tests.servers.fake_api import FakeAPI, digest

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
          404: "invalid_request_error", 429: "rate_limit_error"}


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

    def success(self, model: str, request: Request, text: str) -> Reply:
        counts = self.usage_counts(request, text)
        return Reply(200, {
            "id": f"chatcmpl-{digest(request)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
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
