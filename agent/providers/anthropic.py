"""``anthropic:MODEL``: Claude through the official async Anthropic SDK (the Messages API).

Configuration is the SDK's own: ``ANTHROPIC_API_KEY`` (required) and ``ANTHROPIC_BASE_URL`` (default
``https://api.anthropic.com``), read here, through ``.env`` too, and handed to the client explicitly.
The SDK's retries are off; :mod:`agent.providers.policy` owns them. SDK errors are mapped in
:func:`_map_error`, and only there. The SDK is imported by the first call that is really paid.

A request with a ``schema`` gets Anthropic's way to a JSON answer: one tool whose ``input_schema`` is
the schema, forced with ``tool_choice={"type": "tool", ...}``; the tool call's input, as JSON, is the
answer's text. A model that answers in prose anyway has its prose kept, and a note says so.

Anthropic's Message Batches API (the ``batch_*`` methods) takes the same ``params`` a single call
sends, one request per ``custom_id``. A batch keeps no tag, so a resumed run finds its batch by when it
was made and how many requests it holds; results are read back by ``custom_id``, and a result for a
request the run never sent means the batch found was someone else's.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator

from agent.config import env
from agent.errors import ProviderError
from agent.llm import Completion, CompletionRequest, Usage, normalize_finish_reason
from agent.providers.base import (
    BatchAnswer,
    BatchItem,
    BatchState,
    SDKProvider,
    body_message,
    empty_answer,
    http_error,
    in_order,
    normalize_base_url,
    clip_message,
    schema_name,
    transport_error,
)

if TYPE_CHECKING:
    import anthropic

ANTHROPIC_URL = "https://api.anthropic.com"
#: A batch made by an earlier attempt may carry a creation time a little before the caller's clock said.
_CLOCK_SKEW_S = 5.0
#: The HTTP status each error type of an errored batch result stands for.
_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                 "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                 "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}
_UNRUN = {"expired": "expired", "canceled": "cancelled"}


class AnthropicProvider(SDKProvider["anthropic.AsyncAnthropic"]):
    name = "anthropic"
    key_variables = ("ANTHROPIC_API_KEY",)
    context_window = 200_000
    batch_api = True
    # Anthropic: 100,000 requests or 256 MB per batch.
    batch_max_requests = 100_000
    batch_max_bytes = 250_000_000

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
        return self._completion(message, schema_name(request.schema) if request.schema is not None else None)

    def _completion(self, message: "anthropic.types.Message", tool: str | None) -> Completion:
        """A message as the project's answer (a single call's or a batch result's).

        ``tool`` names the tool a schema request forced; ``""`` for a request whose schema is not known
        here (a batch result), whose tool is then the first one called: no other tool is ever offered.
        """
        text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
        reason = normalize_finish_reason(message.stop_reason)
        notes: list[str] = []
        calls = [block for block in message.content if getattr(block, "type", "") == "tool_use"
                 and (not tool or getattr(block, "name", "") == tool)] if tool is not None else []
        if calls:
            text = json.dumps(calls[0].input, ensure_ascii=False)
            if reason == "tool_use":  # the forced tool call is how this answer ends
                reason = "stop"
        elif tool and text.strip():
            notes.append(f"{self.model_id} answered in prose, not through the {tool} tool the schema asked for")
        if not text.strip():
            raise empty_answer(self, reason)
        return Completion(text=text, usage=_usage(message.usage), model=message.model or self.model,
                          finish_reason=reason, notes=notes)

    # -- Message Batches ---------------------------------------------------------------------
    @contextmanager
    def _mapped(self) -> Iterator[None]:
        import anthropic

        try:
            yield
        except anthropic.AnthropicError as exc:
            raise _map_error(self, exc) from exc

    async def batch_submit(self, items: list[BatchItem], tag: str) -> str:
        client = await self.ready_client()
        requests = [{"custom_id": item.custom_id, "params": self._params(item.request)} for item in items]
        with self._mapped():
            batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        return batch.id

    async def batch_find(self, tag: str, *, count: int, created_after: float,
                         taken: frozenset[str] = frozenset()) -> str | None:
        client = await self.ready_client()
        since = created_after - _CLOCK_SKEW_S
        earliest = None
        with self._mapped():
            async for batch in client.messages.batches.list():  # newest first
                if batch.created_at.timestamp() < since:
                    break
                if _total(batch.request_counts) == count and batch.id not in taken:
                    earliest = batch.id
        return earliest

    async def batch_status(self, vendor_id: str) -> BatchState:
        client = await self.ready_client()
        with self._mapped():
            batch = await client.messages.batches.retrieve(vendor_id)
        counts = batch.request_counts
        status = "ended" if batch.processing_status == "ended" else "running"
        return BatchState(vendor_id, status, _total(counts), _total(counts) - counts.processing)

    async def batch_results(self, vendor_id: str, custom_ids: list[str]) -> list[BatchAnswer]:
        client = await self.ready_client()
        with self._mapped():
            lines = [line async for line in await client.messages.batches.results(vendor_id)]
        answers = (self._batch_answer(line.custom_id, line.result) for line in lines)
        return in_order(self, vendor_id, custom_ids, answers)

    def _batch_answer(self, custom_id: str, result: Any) -> BatchAnswer:
        """One batch result as the answer to its request."""
        if result.type in _UNRUN:
            return BatchAnswer(custom_id, unanswered=_UNRUN[result.type])
        if result.type == "errored":
            error = result.error.error
            status = _ERROR_STATUS.get(getattr(error, "type", ""), 500)
            return BatchAnswer(custom_id, error=http_error(self, status, getattr(error, "message", "")))
        if result.type != "succeeded":
            return BatchAnswer(custom_id, error=ProviderError(
                f"{self.model_id}: a batch result of an unknown kind ({result.type!r})", provider=self.name))
        try:
            return BatchAnswer(custom_id, completion=self._completion(result.message, ""))
        except ProviderError as exc:
            return BatchAnswer(custom_id, error=exc)



def _total(counts: Any) -> int:
    """Every request of a batch, whatever became of it: the counts split them by state."""
    return counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired


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
