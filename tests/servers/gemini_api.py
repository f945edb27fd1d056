"""A loopback Gemini API (generativelanguage), for the real ``google-genai`` SDK to talk to.

``POST /{version}/models/{model}:generateContent`` with the key in ``x-goog-api-key`` (the SDK sends
``v1`` by default, ``v1beta`` when ``GOOGLE_GENAI_API_VERSION=beta``) answers candidates and
``usageMetadata`` in the API's camelCase, thoughts counted apart from candidates as Gemini does.
Errors have Google's ``{"error": {"code", "message", "status"}}`` shape; a wrong key gets what Gemini
really sends for one: 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``. A request whose
``generationConfig`` has ``responseMimeType: application/json`` and a ``responseJsonSchema`` (or
``responseSchema``) is answered with JSON text; ``finishReason`` is STOP, MAX_TOKENS or SAFETY.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.servers import Reply, Request
from tests.servers.fake_api import FakeAPI, digest, words

_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/([^/:?]+):generateContent$")
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "filter": "SAFETY"}


class GeminiAPI(FakeAPI):
    vendor = "gemini"

    def route(self, request: Request) -> str | None:
        match = _PATH.match(request.path.split("?")[0])
        if request.method != "POST" or not match:
            return None
        return match.group(1)

    def presented_key(self, request: Request) -> str | None:
        return request.headers.get("x-goog-api-key")

    def input_text(self, request: Request) -> str:
        body = request.json() or {}
        texts = [part.get("text", "") for part in (body.get("systemInstruction") or {}).get("parts", [])]
        for content in body.get("contents", []):
            texts += [part.get("text", "") for part in content.get("parts", [])]
        return " ".join(texts)

    def requested_schema(self, request: Request) -> dict | None:
        body = request.json() if request.method == "POST" and request.body else None
        config = (body or {}).get("generationConfig") if isinstance(body, dict) else None
        if not isinstance(config, dict) or config.get("responseMimeType") != "application/json":
            return None
        return config.get("responseJsonSchema") or config.get("responseSchema") or {}

    def success(self, model: str, request: Request, text: str, *, finish: str = "stop",
                data: Any = None) -> Reply:
        if data is not None:
            text = json.dumps(data)
        prompt = words(self.input_text(request)) + self.cached
        answer = words(text)
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": answer,
                 "totalTokenCount": prompt + answer + self.reasoning}
        if self.reasoning:
            usage["thoughtsTokenCount"] = self.reasoning
        if self.cached:
            usage["cachedContentTokenCount"] = self.cached
        return Reply(200, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": _FINISH.get(finish, finish), "index": 0}],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": digest(request),
        })

    def error(self, status: int, message: str = "", *, headers: dict[str, str] | None = None,
              details: list | None = None) -> Reply:
        error = {"code": status, "message": message or f"error {status}", "status": _STATUS.get(status, "UNKNOWN")}
        if details:
            error["details"] = details
        return Reply(status, {"error": error}, headers=dict(headers or {}))

    def bad_key(self) -> Reply:
        return self.error(400, "API key not valid. Please pass a valid API key.", details=[{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
            "domain": "googleapis.com"}])
