"""``openai:``, ``openai-compatible:`` and ``ollama:`` models, through the official async OpenAI SDK.

All three speak Chat Completions, which OpenAI and nearly every compatible server (vLLM, LM Studio,
llama.cpp, Ollama's ``/v1``) accept. They differ in where they point and whether a key is needed:

- ``openai:MODEL``: ``OPENAI_API_KEY`` (required), ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``);
- ``openai-compatible:MODEL``: ``OPENAI_BASE_URL`` (required), ``OPENAI_API_KEY`` if the server wants one;
- ``ollama:MODEL``: ``OLLAMA_HOST`` (default ``http://localhost:11434``) plus ``/v1``, no key.

The SDK's own retries are off (``max_retries=0``): :mod:`agent.providers.policy` retries every vendor
the same way. SDK errors are mapped to the project's in :func:`_map_error`, and only there. The SDK is
imported by the first call that is really paid (importing it costs most of a second), never by a replay.

A request with a ``schema`` is sent with ``response_format={"type": "json_schema", ...}`` (strict when
the schema meets OpenAI's strict rules). Compatible servers that know no such thing answer 400; the
request then goes once more without it, and the completion's ``notes`` say so.

``openai:`` models can also go through OpenAI's Batch API (the ``batch_*`` methods): the requests are
uploaded as one JSONL file whose every line's body is what a single call sends, the batch carries the
run's tag in its ``metadata`` (so a resumed run finds it), and its output and error files are read
back by ``custom_id``. Compatible servers and Ollama have no such API.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from agent.config import env
from agent.errors import ProviderError, UsageError
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
    with_scheme,
)

if TYPE_CHECKING:
    import openai

OPENAI_URL = "https://api.openai.com/v1"
OLLAMA_URL = "http://localhost:11434"
# Sent as the bearer token to servers that want none: the SDK insists on some Authorization header.
_NO_KEY = "no-key"
# OpenAI's reasoning models reject `temperature` other than the default, and count `max_tokens`
# differently; other servers may not know `max_completion_tokens` at all.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_CHAT_PATH = "/v1/chat/completions"
#: The batch metadata key that holds the run's tag.
_TAG_KEY = "research_tag"
#: Seconds a vendor's clock may be behind ours when batches are looked for by their creation time.
_CLOCK_SKEW_S = 60.0
_ENDED = ("completed", "expired", "cancelled")
#: What a request in neither result file became, by the batch's final status.
_UNANSWERED = {"expired": "expired", "cancelled": "cancelled"}
#: Error codes of result lines that never ran.
_UNRUN_CODES = {"batch_expired": "expired", "batch_cancelled": "cancelled"}


class OpenAIProvider(SDKProvider["openai.AsyncOpenAI"]):
    name = "openai"
    key_variables = ("OPENAI_API_KEY",)
    batch_api = True
    # OpenAI: 50,000 requests and a 200 MB input file per batch.
    batch_max_requests = 50_000
    batch_max_bytes = 190_000_000
    #: Whether this is OpenAI's own API, with its newer parameters and its reasoning models.
    official: ClassVar[bool] = True
    #: What the server said when it refused ``response_format``; later requests go without it.
    _format_refused: str | None = None

    @cached_property
    def endpoint(self) -> str:
        # Read once per provider, so the step keys and the client always name the same server.
        return normalize_base_url(self.configured_url("OPENAI_BASE_URL", OPENAI_URL))

    def _make_client(self) -> "openai.AsyncOpenAI":
        import openai

        return openai.AsyncOpenAI(
            api_key=self.api_key() or _NO_KEY,
            base_url=self.endpoint,
            max_retries=0,
            timeout=self.sdk_timeout(),
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        params: dict[str, Any] = {"model": self.model, "messages": messages}
        reasoning = self.official and self.model.startswith(_REASONING_PREFIXES)
        if self.official:
            params["max_completion_tokens"] = request.max_tokens
        else:
            params["max_tokens"] = request.max_tokens
        if request.temperature is not None and not reasoning:
            params["temperature"] = request.temperature
        if request.schema is not None and self._format_refused is None:
            params["response_format"] = response_format(request.schema)
        return params

    async def complete(self, request: CompletionRequest) -> Completion:
        import openai

        client = self.client()
        params = self._params(request)
        notes: list[str] = []
        if request.schema is not None and self._format_refused is not None:
            notes.append(f"{self.model_id} does not take response_format ({self._format_refused}); "
                         "the request went without it, so the answer may not follow the schema")
        try:
            try:
                response = await client.chat.completions.create(**params)
            except openai.APIStatusError as exc:
                if self.official or "response_format" not in params or exc.status_code not in (400, 422):
                    raise
                # Many compatible servers know no structured output and say so with a 400: ask once more
                # without it (and, on this provider, from now on), and say so.
                detail = clip_message(body_message(exc.body) or exc.message, 160)
                self._format_refused = f"HTTP {exc.status_code}: {detail}" if detail else f"HTTP {exc.status_code}"
                notes.append(f"{self.model_id} refused response_format ({self._format_refused}); "
                             "asked again without it, so the answer may not follow the schema")
                del params["response_format"]
                response = await client.chat.completions.create(**params)
        except openai.OpenAIError as exc:
            raise _map_error(self, exc) from exc
        return self._completion(response, notes)

    def _completion(self, response: "openai.types.chat.ChatCompletion", notes: list[str] | None = None) -> Completion:
        """A chat completion as the project's answer (a single call's or a batch line's)."""
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice is not None else ""
        reason = normalize_finish_reason(choice.finish_reason) if choice is not None else ""
        if not text.strip():
            refusal = getattr(choice.message, "refusal", None) if choice is not None else None
            raise empty_answer(self, "refusal" if refusal else reason)
        return Completion(text=text, usage=_usage(response.usage), model=response.model or self.model,
                          finish_reason=reason, notes=list(notes or []))

    # -- the Batch API -----------------------------------------------------------------------
    @contextmanager
    def _mapped(self) -> Iterator[None]:
        import openai

        try:
            yield
        except openai.OpenAIError as exc:
            raise _map_error(self, exc) from exc

    async def batch_submit(self, items: list[BatchItem], tag: str) -> str:
        client = await self.ready_client()
        jsonl = "".join(json.dumps({"custom_id": item.custom_id, "method": "POST", "url": _CHAT_PATH,
                                    "body": self._params(item.request)}, ensure_ascii=False) + "\n"
                        for item in items)
        with self._mapped():
            upload = await client.files.create(file=("batch.jsonl", jsonl.encode()), purpose="batch")
            batch = await client.batches.create(input_file_id=upload.id, endpoint=_CHAT_PATH,
                                                completion_window="24h", metadata={_TAG_KEY: tag})
        return batch.id

    async def batch_find(self, tag: str, *, count: int, created_after: float,
                         taken: frozenset[str] = frozenset()) -> str | None:
        client = await self.ready_client()
        with self._mapped():
            async for batch in client.batches.list():  # newest first
                if (batch.metadata or {}).get(_TAG_KEY) == tag:  # a tag is the run's own: ``taken`` is moot
                    return batch.id
                if batch.created_at < created_after - _CLOCK_SKEW_S:
                    break  # older than the intent: the rest are too
        return None

    async def batch_status(self, vendor_id: str) -> BatchState:
        client = await self.ready_client()
        with self._mapped():
            batch = await client.batches.retrieve(vendor_id)
        counts = batch.request_counts
        total, done = (counts.total, counts.completed + counts.failed) if counts else (0, 0)
        if batch.status == "failed":
            errors = batch.errors.data if batch.errors and batch.errors.data else []
            detail = (errors[0].message or errors[0].code or "") if errors else ""
            return BatchState(vendor_id, "failed", total, done, detail or "the batch failed")
        return BatchState(vendor_id, "ended" if batch.status in _ENDED else "running", total, done)

    async def batch_results(self, vendor_id: str, custom_ids: list[str]) -> list[BatchAnswer]:
        client = await self.ready_client()
        with self._mapped():
            batch = await client.batches.retrieve(vendor_id)
            files = [(await client.files.content(file_id)).text
                     for file_id in (batch.output_file_id, batch.error_file_id) if file_id]
        lines = (line for text in files for line in _jsonl(self, vendor_id, text))
        return in_order(self, vendor_id, custom_ids,
                        (self._batch_answer(str(line.get("custom_id")), line) for line in lines),
                        unanswered=_UNANSWERED.get(batch.status, "missing"))

    def _batch_answer(self, custom_id: str, line: Mapping[str, Any]) -> BatchAnswer:
        """One line of a batch's output or error file as the answer to its request."""
        from openai.types.chat import ChatCompletion
        from pydantic import ValidationError

        error, response = line.get("error") or {}, line.get("response") or {}
        if error.get("code") in _UNRUN_CODES:
            return BatchAnswer(custom_id, unanswered=_UNRUN_CODES[error["code"]])
        status = response.get("status_code")
        if status != 200:
            message = body_message(response.get("body")) if response else (error.get("message") or "")
            return BatchAnswer(custom_id, error=http_error(self, int(status or 500), message))
        try:
            completion = self._completion(ChatCompletion.model_validate(response.get("body")))
        except ValidationError:
            return BatchAnswer(custom_id, error=ProviderError(
                f"{self.model_id} sent a batch answer that is not a chat completion",
                provider=self.name, status=200, retryable=True))
        except ProviderError as exc:
            return BatchAnswer(custom_id, error=exc)
        return BatchAnswer(custom_id, completion=completion)



class OpenAICompatibleProvider(OpenAIProvider):
    """Any server that speaks OpenAI's Chat Completions at ``OPENAI_BASE_URL``; the key is optional."""

    name = "openai-compatible"
    key_optional = True
    official = False
    batch_api = False
    own_server = True

    @cached_property
    def endpoint(self) -> str:
        url = self.configured_url("OPENAI_BASE_URL")
        if not url:
            raise UsageError(
                f"--model {self.model_id} needs OPENAI_BASE_URL, the server's base URL",
                hint="export OPENAI_BASE_URL=http://host:port/v1 (and OPENAI_API_KEY if it wants a key)",
            )
        return normalize_base_url(url)

    def check_ready(self) -> None:
        _ = self.endpoint  # raises the UsageError before anything runs
        super().check_ready()


class OllamaProvider(OpenAIProvider):
    """A local Ollama server, through its OpenAI-compatible ``/v1`` API; no key."""

    name = "ollama"
    key_variables = ()
    official = False
    batch_api = False
    own_server = True
    # Ollama serves a few thousand tokens of context unless the model is configured for more.
    context_window = 8_192
    # One local server computes one answer at a time: more in flight only queue there and time out.
    default_concurrency = 1

    @cached_property
    def endpoint(self) -> str:
        return ollama_base_url(self.configured_url("OLLAMA_HOST", OLLAMA_URL))

    async def probe_context(self) -> int | None:
        """``POST /api/show``: the model's ``num_ctx`` if it sets one, else its trained context length,
        at most :attr:`context_window` (what Ollama serves a model that sets none is a server setting,
        not reported); None when the server cannot say."""
        import asyncio

        return await asyncio.to_thread(self._show_context)

    def _show_context(self) -> int | None:
        import json
        import urllib.request

        url = self.endpoint[: -len("/v1")] + "/api/show"
        body = json.dumps({"model": self.model, "name": self.model}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                info = json.loads(response.read(1 << 20) or b"null")
        except (OSError, ValueError):
            return None
        return ollama_context(info, self.context_window)

    def key_variable(self) -> str | None:
        # Ollama has no key; a 401 means OLLAMA_HOST points at something else, so that is what to check.
        return "OLLAMA_HOST"

    def api_key(self) -> str | None:
        return None


def ollama_context(info: Any, default: int) -> int | None:
    """The context window an ``/api/show`` answer gives: ``num_ctx`` among its parameters, else the
    model's ``*.context_length`` capped at ``default``; None if it has neither."""
    if not isinstance(info, Mapping):
        return None
    for line in str(info.get("parameters") or "").splitlines():
        name, _, value = line.strip().partition(" ")
        if name == "num_ctx" and value.strip().isdigit() and int(value) > 0:
            return int(value)
    model_info = info.get("model_info")
    if isinstance(model_info, Mapping):
        lengths = [v for k, v in model_info.items() if str(k).endswith(".context_length") and isinstance(v, int) and v > 0]
        if lengths:
            return min(lengths[0], default)
    return None


def ollama_base_url(host: str) -> str:
    """``OLLAMA_HOST`` as Ollama reads it (``host``, ``host:port`` or a URL) plus the ``/v1`` path."""
    parts = urlsplit(with_scheme(host.strip()))
    netloc = parts.netloc
    if parts.port is None and parts.scheme == "http":
        netloc = f"{netloc}:11434"
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Chat Completions' structured output for a JSON Schema: strict when the schema allows it.

    Strict mode guarantees the shape but takes only schemas whose every object lists all its properties
    as required and allows no others; any other schema is sent non-strict rather than refused.
    """
    return {"type": "json_schema",
            "json_schema": {"name": schema_name(schema), "schema": dict(schema), "strict": strict_compatible(schema)}}


def strict_compatible(schema: Any) -> bool:
    """Whether every object in ``schema`` has ``additionalProperties: false`` and requires all its properties."""
    if isinstance(schema, list):
        return all(strict_compatible(item) for item in schema)
    if not isinstance(schema, Mapping):
        return True
    kinds = schema.get("type")
    if kinds == "object" or (isinstance(kinds, list) and "object" in kinds) or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or ()) != set(properties):
            return False
    nested = [value for key, value in schema.items()
              if key in ("items", "anyOf", "allOf", "oneOf", "prefixItems")]
    for key in ("properties", "$defs", "definitions"):
        nested += list((schema.get(key) or {}).values())
    return all(strict_compatible(item) for item in nested)


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_tokens=(getattr(prompt_details, "cached_tokens", None) or 0) if prompt_details else 0,
        reasoning_tokens=(getattr(completion_details, "reasoning_tokens", None) or 0) if completion_details else 0,
    )


def _jsonl(provider: OpenAIProvider, vendor_id: str, text: str) -> Iterator[dict[str, Any]]:
    """The lines of a batch's result file; a line that is not a JSON object is the vendor's fault."""
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            raise ProviderError(f"{provider.model_id}: a result file of batch {vendor_id} has a line that is not "
                                "a JSON object", provider=provider.name, retryable=True)
        yield line



def _map_error(provider: OpenAIProvider, exc: "openai.OpenAIError") -> ProviderError:
    """Every OpenAI SDK failure as the project's error: the one place this adapter maps them."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return transport_error(provider, exc, timed_out=True)
    if isinstance(exc, openai.APIConnectionError):
        return transport_error(provider, exc)
    if isinstance(exc, openai.APIStatusError):
        code = getattr(exc, "code", None)
        if exc.status_code == 429 and code == "insufficient_quota":
            # Out of credit, not rate-limited: every call would fail the same way until someone pays.
            return ProviderError(f"{provider.model_id}: the account is out of quota (HTTP 429)",
                                 provider=provider.name, status=429, fatal=True,
                                 hint="add credit to the account, then resume the run")
        return http_error(provider, exc.status_code, body_message(exc.body) or exc.message,
                          headers=exc.response.headers)
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(f"{provider.model_id} sent a response that is not a chat completion",
                             provider=provider.name, status=exc.status_code, retryable=True)
    return ProviderError(f"{provider.model_id} failed: {clip_message(f'{type(exc).__name__}: {exc}')}",
                         provider=provider.name)
