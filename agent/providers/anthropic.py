"""``anthropic:MODEL``: Claude through the official async Anthropic SDK (the Messages API).

Configuration is the SDK's own: ``ANTHROPIC_API_KEY`` (required) and ``ANTHROPIC_BASE_URL`` (default
``https://api.anthropic.com``), read here, through ``.env`` too, and handed to the client explicitly.
The SDK's retries are off; :mod:`agent.providers.policy` owns them. SDK errors are mapped in
:func:`_map_error`, and only there. The SDK is imported by the first call that is really paid.

A request with a ``schema`` gets Anthropic's way to a JSON answer: one tool whose ``input_schema`` is
the schema, forced with ``tool_choice={"type": "tool", ...}``; the tool call's input, as JSON, is the
answer's text. A model that answers in prose anyway has its prose kept, and a note says so.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agent.config import env
from agent.errors import ProviderError
from agent.llm import Completion, CompletionRequest, Usage, normalize_finish_reason
from agent.providers.base import (
    SDKProvider,
    body_message,
    empty_answer,
    http_error,
    normalize_base_url,
    clip_message,
    schema_name,
    transport_error,
)

if TYPE_CHECKING:
    import anthropic

ANTHROPIC_URL = "https://api.anthropic.com"


class AnthropicProvider(SDKProvider["anthropic.AsyncAnthropic"]):
    name = "anthropic"
    key_variables = ("ANTHROPIC_API_KEY",)
    context_window = 200_000

    @cached_property
    def endpoint(self) -> str:
        return normalize_base_url(self.configured_url("ANTHROPIC_BASE_URL", ANTHROPIC_URL))

    def _make_client(self) -> "anthropic.AsyncAnthropic":
        import anthropic

        # An explicit key also stops the SDK from looking for profiles or federation settings on disk.
        return anthropic.AsyncAnthropic(
            api_key=self.api_key(),
            base_url=self.endpoint,
            max_retries=0,
            timeout=self.sdk_timeout(),
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": "user", "content": request.prompt}],
        }
        if request.system:
            params["system"] = request.system
        # No temperature: this SDK's Messages API has no sampling parameters any more (the installed
        # anthropic 2.x accepts none), so `request.temperature` stays in the key but is not sent.
        if request.schema is not None:
            name = schema_name(request.schema)
            params["tools"] = [{"name": name, "description": "Give your answer as this tool's input.",
                                "input_schema": request.schema}]
            params["tool_choice"] = {"type": "tool", "name": name}
        return params

    async def complete(self, request: CompletionRequest) -> Completion:
        import anthropic

        client = self.client()
        try:
            message = await client.messages.create(**self._params(request))
        except anthropic.AnthropicError as exc:
            raise _map_error(self, exc) from exc
        text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
        reason = normalize_finish_reason(message.stop_reason)
        notes: list[str] = []
        if request.schema is not None:
            name = schema_name(request.schema)
            calls = [block for block in message.content
                     if getattr(block, "type", "") == "tool_use" and getattr(block, "name", "") == name]
            if calls:
                text = json.dumps(calls[0].input, ensure_ascii=False)
                if reason == "tool_use":  # the forced tool call is how this answer ends
                    reason = "stop"
            elif text.strip():
                notes.append(f"{self.model_id} answered in prose, not through the {name} tool the schema asked for")
        if not text.strip():
            raise empty_answer(self, reason)
        return Completion(text=text, usage=_usage(message.usage), model=message.model or self.model,
                          finish_reason=reason, notes=notes)


def _usage(usage: Any) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; the project counts all input.

    Cache writes are priced as plain input (they cost a quarter more), so such calls are a little under.
    """
    if usage is None:
        return Usage()
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    details = getattr(usage, "output_tokens_details", None)
    return Usage(
        input_tokens=(usage.input_tokens or 0) + read + written,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=read,
        reasoning_tokens=(getattr(details, "thinking_tokens", None) or 0) if details else 0,
    )


def _map_error(provider: AnthropicProvider, exc: "anthropic.AnthropicError") -> ProviderError:
    """Every Anthropic SDK failure as the project's error: the one place this adapter maps them."""
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return transport_error(provider, exc, timed_out=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return transport_error(provider, exc)
    if isinstance(exc, anthropic.APIStatusError):
        message = getattr(exc, "api_message", None) or body_message(exc.body) or exc.message
        return http_error(provider, exc.status_code, message, headers=exc.response.headers)
    return ProviderError(f"{provider.model_id} failed: {clip_message(f'{type(exc).__name__}: {exc}')}",
                         provider=provider.name)
