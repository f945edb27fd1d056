"""``gemini:MODEL``: Gemini through the official Google Gen AI SDK's async client (``client.aio``).

Configuration is the SDK's own: ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY`` (the SDK prefers the latter
when both are set, and so do we; errors name ``GEMINI_API_KEY``), and ``GOOGLE_GEMINI_BASE_URL``
(default ``https://generativelanguage.googleapis.com``). Always the Gemini Developer API, never Vertex,
whatever ``GOOGLE_GENAI_USE_VERTEXAI`` says: Vertex needs cloud credentials this project does not manage.

Retries are off in the SDK (one attempt, and no ``HttpRetryOptions`` left unset: unset, the SDK's
aiohttp path quietly retries dropped connections after sleeping 1-10 s); :mod:`agent.providers.policy`
owns them. SDK and transport errors are mapped in :func:`_map_error`, and only there. The SDK (and
the HTTP library it picked) is imported by the first call that is really paid, never by a replay.

A request with a ``schema`` is sent with ``response_mime_type="application/json"`` and the schema as
``response_json_schema`` (JSON Schema as written; ``response_schema`` would take only Gemini's OpenAPI
subset of it).

Gemini's Batch Mode (the ``batch_*`` methods) takes the requests inlined, each with the settings a
single call sends, under a ``display_name`` that is the run's tag (so a resumed run finds its batch).
Its inlined responses come back in the order the requests went, and are read by position.
"""

from __future__ import annotations

import importlib
import json
import re
from contextlib import contextmanager
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, Iterator

from agent.config import env
from agent.errors import ProviderError
from agent.llm import Completion, CompletionRequest, Usage, normalize_finish_reason
from agent.providers.base import (
    ForeignBatch,
    BatchAnswer,
    BatchItem,
    BatchState,
    SDKProvider,
    empty_answer,
    http_error,
    normalize_base_url,
    clip_message,
    transport_error,
)

if TYPE_CHECKING:
    from google import genai
    from google.genai import types as genai_types

GEMINI_URL = "https://generativelanguage.googleapis.com"
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_EXPIRED", "JOB_STATE_CANCELLED")
#: What the requests of a batch that gave no responses became, by its final state.
_UNANSWERED = {"JOB_STATE_EXPIRED": "expired", "JOB_STATE_CANCELLED": "cancelled"}
#: gRPC codes of a batch response's error: the two that mean it never ran, and the HTTP status of the rest.
_UNRUN_CODES = {4: "expired", 1: "cancelled"}  # DEADLINE_EXCEEDED, CANCELLED
_GRPC_STATUS = {3: 400, 5: 404, 7: 403, 8: 429, 13: 500, 14: 503, 16: 401}


@cache
def _transport_classes() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "no HTTP answer", from whichever HTTP library the SDK picked (aiohttp or httpx)."""
    classes: list[type[BaseException]] = [OSError, TimeoutError]
    for module, name in (("aiohttp", "ClientError"), ("httpx", "TransportError"), ("httpx2", "TransportError")):
        try:
            classes.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(classes)


class GeminiProvider(SDKProvider["genai.Client"]):
    name = "gemini"
    key_variables = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    key_lookup = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    context_window = 1_000_000
    batch_api = True
    # Gemini: inlined requests up to 20 MB in all per batch.
    batch_max_requests = 10_000
    batch_max_bytes = 19_000_000

    @cached_property
    def endpoint(self) -> str:
        return normalize_base_url(self.configured_url("GOOGLE_GEMINI_BASE_URL", GEMINI_URL))

    async def _close_client(self, client: "genai.Client") -> None:
        await _close(client)

    def _make_client(self) -> "genai.Client":
        from google import genai
        from google.genai import types as genai_types

        options = genai_types.HttpOptions(
            base_url=self.endpoint,
            timeout=int(self.sdk_timeout() * 1000),  # milliseconds
            retry_options=genai_types.HttpRetryOptions(attempts=1),
        )
        return genai.Client(api_key=self.api_key(), vertexai=False, http_options=options)

    def _config(self, request: CompletionRequest) -> "genai_types.GenerateContentConfig":
        from google.genai import types as genai_types

        values: dict[str, Any] = {"max_output_tokens": request.max_tokens}
        if request.system:
            values["system_instruction"] = request.system
        if request.temperature is not None:
            values["temperature"] = request.temperature
        if request.schema is not None:
            values["response_mime_type"] = "application/json"
            values["response_json_schema"] = request.schema
        return genai_types.GenerateContentConfig(**values)

    async def complete(self, request: CompletionRequest) -> Completion:
        from google.genai import errors as genai_errors

        client = self.client()
        try:
            response = await client.aio.models.generate_content(
                model=self.model, contents=request.prompt, config=self._config(request))
        except genai_errors.APIError as exc:
            raise _map_error(self, exc) from exc
        except _transport_classes() as exc:
            raise _map_error(self, exc) from exc
        return self._completion(response)

    def _completion(self, response: "genai_types.GenerateContentResponse") -> Completion:
        """A response as the project's answer (a single call's or a batch's)."""
        candidate = response.candidates[0] if response.candidates else None
        parts = (candidate.content.parts or []) if candidate is not None and candidate.content else []
        # Thought summaries are not the answer.
        text = "".join(part.text for part in parts if part.text and not part.thought)
        reason = _finish_reason(response, candidate)
        if not text.strip():
            raise empty_answer(self, reason)
        return Completion(text=text, usage=_usage(response.usage_metadata),
                          model=response.model_version or self.model, finish_reason=reason)

    # -- Batch Mode --------------------------------------------------------------------------
    @contextmanager
    def _mapped(self) -> Iterator[None]:
        from google.genai import errors as genai_errors

        try:
            yield
        except (genai_errors.APIError, *_transport_classes()) as exc:
            raise _map_error(self, exc) from exc

    async def batch_submit(self, items: list[BatchItem], tag: str) -> str:
        client = await self.ready_client()
        src = [{"contents": [{"role": "user", "parts": [{"text": item.request.prompt}]}],
                "config": self._config(item.request), "metadata": {"custom_id": item.custom_id}}
               for item in items]
        with self._mapped():
            job = await client.aio.batches.create(model=self.model, src=src,  # type: ignore[arg-type]
                                                  config={"display_name": tag})
        return str(job.name)

    async def batch_find(self, tag: str, *, count: int, created_after: float,
                         taken: frozenset[str] = frozenset()) -> str | None:
        client = await self.ready_client()
        with self._mapped():
            async for job in await client.aio.batches.list():
                if job.display_name == tag:  # a tag is the run's own: ``taken`` is moot
                    return job.name
        return None

    async def batch_status(self, vendor_id: str) -> BatchState:
        client = await self.ready_client()
        with self._mapped():
            job = await client.aio.batches.get(name=vendor_id)
        state = _state(job)
        # The Developer API's batch objects, as the SDK reads them, carry no counts: only an ended
        # batch's responses say how many requests it held.
        responses = (job.dest.inlined_responses or []) if job.dest else []
        stats = job.completion_stats
        if stats is not None:
            done = (stats.successful_count or 0) + (stats.failed_count or 0)
            total = done + (stats.incomplete_count or 0)
        else:
            total = len(responses)
            done = total if state in _ENDED else 0
        if state == "JOB_STATE_FAILED":
            detail = (job.error.message if job.error else None) or "the batch failed"
            return BatchState(vendor_id, "failed", total, done, detail)
        return BatchState(vendor_id, "ended" if state in _ENDED else "running", total, done)

    async def batch_results(self, vendor_id: str, custom_ids: list[str]) -> list[BatchAnswer]:
        client = await self.ready_client()
        with self._mapped():
            job = await client.aio.batches.get(name=vendor_id)
        responses = (job.dest.inlined_responses or []) if job.dest else []
        if len(responses) > len(custom_ids):
            raise ForeignBatch(self, vendor_id, f"{len(responses)} responses to {len(custom_ids)} requests")
        for position, entry in enumerate(responses):
            echoed = (entry.metadata or {}).get("custom_id")
            if echoed is not None and echoed != custom_ids[position]:
                raise ForeignBatch(self, vendor_id, f"response {position} is for {echoed!r}")
        unanswered = _UNANSWERED.get(_state(job), "missing")
        return [self._batch_answer(cid, responses[i]) if i < len(responses) else BatchAnswer(cid, unanswered=unanswered)
                for i, cid in enumerate(custom_ids)]

    def _batch_answer(self, custom_id: str, entry: "genai_types.InlinedResponse") -> BatchAnswer:
        """One inlined response as the answer to its request."""
        if entry.response is not None:
            try:
                return BatchAnswer(custom_id, completion=self._completion(entry.response))
            except ProviderError as exc:
                return BatchAnswer(custom_id, error=exc)
        code = int(entry.error.code or 0) if entry.error else 0
        if code in _UNRUN_CODES:
            return BatchAnswer(custom_id, unanswered=_UNRUN_CODES[code])
        message = (entry.error.message if entry.error else None) or ""
        return BatchAnswer(custom_id, error=http_error(self, _GRPC_STATUS.get(code, 500), message))



def _state(job: Any) -> str:
    state = job.state
    return str(getattr(state, "value", state) or "")


async def _close(client: "genai.Client") -> None:
    await client.aio.aclose()
    client.close()  # the sync half the SDK opens alongside


def _finish_reason(response: Any, candidate: Any) -> str:
    if candidate is not None and candidate.finish_reason is not None:
        return normalize_finish_reason(candidate.finish_reason)
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and feedback.block_reason is not None:
        return f"blocked: {getattr(feedback.block_reason, 'value', feedback.block_reason)}"
    return ""


def _usage(meta: Any) -> Usage:
    """Gemini bills thinking as output, so thoughts count into output and are reported as reasoning."""
    if meta is None:
        return Usage()
    thoughts = meta.thoughts_token_count or 0
    return Usage(
        input_tokens=meta.prompt_token_count or 0,
        output_tokens=(meta.candidates_token_count or 0) + thoughts,
        cached_tokens=meta.cached_content_token_count or 0,
        reasoning_tokens=thoughts,
    )


def _retry_delay(details: Any) -> float | None:
    """The ``google.rpc.RetryInfo`` delay Gemini puts in a 429's body (``"retryDelay": "13s"``)."""
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error or {}).get("details") or []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            match = _DELAY.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _map_error(provider: GeminiProvider, exc: BaseException) -> ProviderError:
    """Every Gemini SDK or transport failure as the project's error: the one place this adapter maps them."""
    from google.genai import errors as genai_errors

    if isinstance(exc, genai_errors.APIError):
        status = int(exc.code or 0)
        message = exc.message or exc.status or ""
        # Gemini answers a bad key with 400 INVALID_ARGUMENT, not 401: it is still a rejected key.
        if status == 400 and ("API_KEY_INVALID" in json.dumps(exc.details, default=str)
                              or "API key not valid" in str(message)):
            status = 401
        headers = getattr(exc.response, "headers", None)
        retry_after = None
        if status == 429 and not (headers and (headers.get("retry-after") or headers.get("retry-after-ms"))):
            retry_after = _retry_delay(exc.details)
        return http_error(provider, status, message, headers=headers, retry_after=retry_after)
    if isinstance(exc, _transport_classes()):
        timed_out = isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__
        return transport_error(provider, exc, timed_out=timed_out)
    return ProviderError(f"{provider.model_id} failed: {clip_message(f'{type(exc).__name__}: {exc}')}",
                         provider=provider.name)
