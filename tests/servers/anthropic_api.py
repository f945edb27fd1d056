"""A loopback Anthropic Messages API, for the real ``anthropic`` SDK to talk to.

``POST /v1/messages`` with the key in ``Authorization: Bearer`` (or the older ``x-api-key``) answers a ``message`` object whose usage counts
cache reads and writes apart from ``input_tokens``, as Anthropic does; errors have Anthropic's
``{"type": "error", "error": {"type", "message"}}`` shape. A request that forces a tool
(``tool_choice={"type": "tool", "name": ...}``) asks for that tool's ``input_schema``: its JSON answer
comes as a ``tool_use`` block with ``stop_reason`` "tool_use", as Anthropic answers one.
"""

from __future__ import annotations

import json
from typing import Any

from tests.servers import Reply, Request
from tests.servers.fake_api import FakeAPI, digest, words

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
_FINISH = {"stop": "end_turn", "length": "max_tokens", "filter": "refusal"}


class AnthropicAPI(FakeAPI):
    vendor = "anthropic"

    def route(self, request: Request) -> str | None:
        if request.method != "POST" or request.path.split("?")[0] != "/v1/messages":
            return None
        return str((request.json() or {}).get("model", ""))

    def presented_key(self, request: Request) -> str | None:
        # Older SDKs send x-api-key; the installed one sends the key as a bearer token.
        auth = request.headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else request.headers.get("x-api-key")

    def input_text(self, request: Request) -> str:
        body = request.json() or {}
        system = body.get("system", "")
        if isinstance(system, list):
            system = " ".join(block.get("text", "") for block in system)
        texts = [system]
        for message in body.get("messages", []):
            content = message.get("content", "")
            if isinstance(content, list):
                content = " ".join(block.get("text", "") for block in content)
            texts.append(content)
        return " ".join(texts)

    def forced_tool(self, request: Request) -> dict | None:
        body = request.json() if request.method == "POST" and request.body else None
        if not isinstance(body, dict):
            return None
        choice = body.get("tool_choice") or {}
        if choice.get("type") != "tool":
            return None
        return next((tool for tool in body.get("tools") or [] if tool.get("name") == choice.get("name")), None)

    def requested_schema(self, request: Request) -> dict | None:
        tool = self.forced_tool(request)
        return tool.get("input_schema") or {} if tool is not None else None

    def success(self, model: str, request: Request, text: str, *, finish: str = "stop",
                data: Any = None) -> Reply:
        stop_reason = _FINISH.get(finish, finish)
        content: list[dict] = [{"type": "text", "text": text}] if text or data is None else []
        if data is not None:
            tool = self.forced_tool(request) or {"name": "answer"}
            content.append({"type": "tool_use", "id": f"toolu_{digest(request)}", "name": tool["name"],
                            "input": data})
            text = json.dumps(data)
            if finish == "stop":
                stop_reason = "tool_use"
        usage = {
            # Anthropic's input_tokens leaves out the tokens read from or written to the cache.
            "input_tokens": words(self.input_text(request)),
            "output_tokens": words(text) + self.reasoning,
            "cache_read_input_tokens": self.cached,
            "cache_creation_input_tokens": self.cache_write,
        }
        if self.reasoning:
            usage["output_tokens_details"] = {"thinking_tokens": self.reasoning}
        return Reply(200, {
            "id": f"msg_{digest(request)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        })

    def error(self, status: int, message: str = "", *, headers: dict[str, str] | None = None) -> Reply:
        kind = _TYPES.get(status, "api_error")
        return Reply(status, {"type": "error", "error": {"type": kind, "message": message or f"error {status}"}},
                     headers=dict(headers or {}))

    def bad_key(self) -> Reply:
        return self.error(401, "invalid x-api-key")
