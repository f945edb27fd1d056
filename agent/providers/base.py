"""The provider interface: one abstract method per vendor, and the helpers every adapter shares.

A provider turns a :class:`~agent.llm.CompletionRequest` into a :class:`~agent.llm.Completion` with one
attempt at its vendor's API, raising :class:`~agent.errors.ProviderError` (mapped once, in the adapter)
when that fails. Retries, timeouts and concurrency are not its business: :meth:`Provider.call` wraps
every provider in the same policy (see :mod:`agent.providers.policy`).

The helpers below keep the adapters uniform: :func:`http_error` decides, from a status code alone,
whether a failure is fatal, retryable or final (by :data:`agent.providers.policy.RETRYABLE_STATUSES`,
the table the web sources use too), and reads the server's wait with
:func:`agent.providers.policy.parse_retry_after`, from the same headers whichever vendor sent them.
:func:`schema_name` names a request's JSON Schema the way every vendor accepts.

Vendor SDKs are imported by the adapters inside the methods that call a vendor, never at module level:
a run whose every step replays builds no client and imports no SDK.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import re
import threading
from dataclasses import dataclass, field
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Generic, Iterable, Mapping, TypeVar

from agent.config import Limits, env
from agent.errors import AuthError, MissingKeyError, ProviderError
from agent.llm import Completion, CompletionRequest
from agent.providers.policy import Policy, is_retryable_status, parse_retry_after
from agent.secrets import redact

C = TypeVar("C")


@dataclass(frozen=True)
class ModelSettings:
    """A model's own settings, from ``[models.NAME]`` in ``research.toml`` or given in Python; each one
    left unset falls back to the environment (``OPENAI_BASE_URL`` and friends), then the defaults.

    ``alias`` is the name the user calls it by (``--model local-qwen``); ``prices`` (USD per million
    tokens: ``input``, ``output``, optionally ``cached_input``) price it where the table does not.
    """

    alias: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    context_window: int | None = None
    max_output_tokens: int | None = None
    concurrency: int | None = None
    prices: dict[str, float] | None = None

_MESSAGE_LIMIT = 240


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch: its ``custom_id`` (how its answer is found again) and the request."""

    custom_id: str
    request: CompletionRequest


@dataclass(frozen=True)
class BatchState:
    """A batch as its vendor reports it on a poll.

    ``status`` is ``running`` (accepted, not ended), ``ended`` (its results can be read: completed,
    expired or cancelled, whatever was answered before that) or ``failed`` (the whole batch was refused,
    ``detail`` says why in the vendor's words). ``done`` counts the requests settled so far, of ``total``.
    """

    vendor_id: str
    status: str
    total: int
    done: int = 0
    detail: str = ""


class ForeignBatch(ProviderError):
    """An ended batch's results hold requests this run never sent: it was adopted by mistake (by count and
    time, where the vendor keeps no tag), and its own requests still have to be sent."""

    def __init__(self, provider: "Provider", vendor_id: str, why: str) -> None:
        super().__init__(f"{provider.model_id}: batch {vendor_id} is not this run's ({why})",
                         provider=provider.name, retryable=False)


@dataclass(frozen=True)
class BatchAnswer:
    """What became of one request of an ended batch: a completion, an error (a
    :class:`~agent.errors.ProviderError`, retryable or not as for a single call), or ``unanswered``
    (``expired`` or ``cancelled``: the batch ended before it ran)."""

    custom_id: str
    completion: Completion | None = None
    error: ProviderError | None = None
    unanswered: str | None = None


def in_order(provider: "Provider", vendor_id: str, custom_ids: list[str], answers: Iterable[BatchAnswer], *,
             unanswered: str = "missing") -> list[BatchAnswer]:
    """Answers read back in the vendor's order, as one per request of ``custom_ids``, in that order; a
    request the results do not hold is ``unanswered``. An answer to a request never sent means the batch
    is not this run's (:class:`ForeignBatch`)."""
    wanted = set(custom_ids)
    found: dict[str, BatchAnswer] = {}
    for answer in answers:
        if answer.custom_id not in wanted:
            raise ForeignBatch(provider, vendor_id, f"it answers {answer.custom_id!r}, never sent")
        found[answer.custom_id] = answer
    return [found.get(cid) or BatchAnswer(cid, unanswered=unanswered) for cid in custom_ids]


class Provider(ABC):
    #: The prefix of model ids for this provider (``openai`` in ``openai:gpt-4o-mini``).
    name: ClassVar[str]
    #: Environment variables that may hold the key; the first is the one named when none is set.
    key_variables: ClassVar[tuple[str, ...]] = ()
    #: The order they are read in, when it differs (the vendor's SDK decides which wins if both are set).
    key_lookup: ClassVar[tuple[str, ...] | None] = None
    #: Whether the key may be absent (local servers need none).
    key_optional: ClassVar[bool] = False
    #: Tokens the model reads at once; sources longer than half of it are summarized in parts.
    context_window: ClassVar[int] = 128_000
    #: Whether the provider answers from ``CompletionRequest.offline`` (so it belongs in its keys).
    reads_offline_hint: ClassVar[bool] = False

    #: Calls in flight per endpoint unless the model's settings say otherwise (None: the run's limit).
    default_concurrency: ClassVar[int | None] = None

    def __init__(self, model: str, *, limits: Limits | None = None, settings: "ModelSettings | None" = None) -> None:
        self.model = model
        self.settings = settings or ModelSettings()
        limits = limits or Limits()
        concurrency = self.settings.concurrency or self.default_concurrency
        if concurrency:
            limits = dataclasses.replace(limits, concurrency=concurrency)
        self.limits = limits
        if self.settings.context_window:
            self.context_window = self.settings.context_window  # type: ignore[misc]

    @property
    def model_id(self) -> str:
        return self.settings.alias or f"{self.name}:{self.model}"

    @property
    def max_output_tokens(self) -> int | None:
        """The most output tokens this model may be asked for, when its settings say."""
        return self.settings.max_output_tokens

    def configured_url(self, variable: str, default: str | None = None) -> str | None:
        """The base URL: the model's settings first, then ``variable`` in the environment, then ``default``."""
        return self.settings.base_url or env(variable) or default

    @property
    def endpoint(self) -> str:
        """The base URL calls go to; part of every step key (same model name, other server, other model)."""
        return ""

    def key_variable(self) -> str | None:
        """The variable the key is read from: the one set, else the one to name in errors."""
        if self.settings.api_key_env:
            return self.settings.api_key_env
        for variable in self.key_lookup or self.key_variables:
            if env(variable):
                return variable
        return self.key_variables[0] if self.key_variables else None

    def api_key(self) -> str | None:
        if self.settings.api_key:
            return self.settings.api_key
        variable = self.key_variable()
        return env(variable) if variable else None

    def check_ready(self) -> None:
        """Raise :class:`MissingKeyError` before any paid call if this provider cannot be called."""
        needs = (self.key_variables and not self.key_optional) or (self.settings.api_key_env and not self.key_optional)
        if needs and not self.api_key():
            raise MissingKeyError(self.settings.alias or self.name, self.key_variable() or self.key_variables[0])

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """One attempt at the vendor's API."""

    async def call(self, request: CompletionRequest) -> Completion:
        """:meth:`complete` under the shared retry, timeout and concurrency policy."""
        # Looked up on every call, not kept: a policy's semaphore belongs to one event loop, and the
        # same provider object may be used from several (a notebook, a benchmark, repeated runs).
        # One policy (in-flight limit, rate) per endpoint: two servers of one provider do not share a queue.
        policy = Policy.for_provider(f"{self.name}@{self.endpoint}", self.limits)
        # Before the policy, not in the attempt: slow setup done after taking a rate-limit slot would
        # hold up the event loop while the other callers' slots come due.
        await self.ready()
        self.prepare()
        return await policy.run(lambda: self.complete(request), provider=self.name, timeout_hint=self.timeout_hint())

    #: Whether the model runs on a server of the user's own (often answering one request at a time).
    own_server: ClassVar[bool] = False

    def timeout_hint(self) -> str:
        hint = "raise the timeout with RESEARCH_TIMEOUT or --timeout"
        if self.own_server and self.limits.concurrency > 1:
            # Requests a single-slot server queues spend their timeout waiting, then are sent again.
            hint += (f"; a server that answers one request at a time may be queueing the {self.limits.concurrency} "
                     "sent at once: give it concurrency = 1 under [models.NAME] in research.toml, or --concurrency 1")
        return hint

    def prepare(self) -> None:
        """Synchronous setup a call needs (such as an SDK client), done before it queues for a slot."""

    async def probe_context(self) -> int | None:
        """The context window the server reports for this model, if it can say (None: use the default).

        Asked once per run, when the model's settings give none; the pipeline stores the answer as a step,
        so a later run splits its sources alike (the same step keys) even with the server gone.
        """
        return None

    def warm(self) -> None:
        """A paid call is certain: start, off the event loop, the setup its first call would wait for.

        Called from a running loop by the pipeline (see :meth:`pipelines.base.Stages.warm`); providers
        with no slow setup ignore it.
        """

    async def ready(self) -> None:
        """Wait for a setup :meth:`warm` started, if any (a call's first step)."""

    async def aclose(self) -> None:
        """Release clients; providers with none need not override it."""

    # -- the vendor's batch API (half price, answered within a day) -------------------------
    #: Whether this provider's vendor has a batch API the methods below speak.
    batch_api: ClassVar[bool] = False
    #: The most requests, and about the most bytes of request, the vendor takes in one batch.
    batch_max_requests: ClassVar[int] = 10_000
    batch_max_bytes: ClassVar[int] = 20_000_000

    async def batch_submit(self, items: list[BatchItem], tag: str) -> str:
        """Hand ``items`` over as one batch tagged ``tag`` (where the vendor keeps a tag); its vendor id.

        One attempt, the SDK's retries off: a create that timed out may still have made the batch, so
        the caller looks it up (:meth:`batch_find`) before trying again. Failures are ProviderErrors.
        """
        raise NotImplementedError

    async def batch_find(self, tag: str, *, count: int, created_after: float, taken: frozenset[str] = frozenset()) -> str | None:
        """The vendor id of a batch an earlier attempt may have made: tagged ``tag`` where the vendor keeps
        tags, else created at or after ``created_after`` (a UNIX time) with ``count`` requests and not
        among ``taken`` (ids already adopted); None if there is none."""
        raise NotImplementedError

    async def batch_status(self, vendor_id: str) -> BatchState:
        """One poll of the batch."""
        raise NotImplementedError

    async def batch_results(self, vendor_id: str, custom_ids: list[str]) -> list[BatchAnswer]:
        """The answers of an ended batch, one per request of ``custom_ids`` (the order it was submitted
        in; a vendor that answers by position is read by it), in that order. A request the results do not
        hold comes back ``unanswered="missing"``; results holding a ``custom_id`` not among ``custom_ids``
        (a batch adopted by count that was not this run's) raise a non-retryable ProviderError."""
        raise NotImplementedError

    # -- helpers for adapters ----------------------------------------------------------------
    def sdk_timeout(self) -> float:
        """The SDK's own per-request timeout: a little above the policy's, which should fire first."""
        return self.limits.timeout_s * 1.1 + 1.0


class LoopClient(Generic[C]):
    """An SDK client made on first use and remade if used from another event loop.

    Async HTTP clients pool connections that belong to the loop they were opened in; reusing one
    from a second ``asyncio.run`` fails in confusing ways, so each loop gets its own.
    """

    def __init__(self, make: Callable[[], C], close: Callable[[C], Any]) -> None:
        self._make = make
        self._close = close
        self._client: C | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: A client being made in a thread for a loop, by :meth:`warm`.
        self._warming: tuple[asyncio.AbstractEventLoop, concurrent.futures.Future] | None = None

    def warm(self) -> None:
        """Make the running loop's client in a thread: importing an SDK and loading its TLS roots take
        most of a second, which the first paid call would otherwise spend blocking the loop."""
        loop = asyncio.get_running_loop()
        if (self._client is not None and self._loop is loop) or (self._warming and self._warming[0] is loop):
            return
        future: concurrent.futures.Future = concurrent.futures.Future()

        def make() -> None:
            try:
                future.set_result(self._make())
            except BaseException as exc:  # the first call makes its own client and meets the error there
                future.set_exception(exc)

        self._warming = (loop, future)
        threading.Thread(target=make, name="sdk-client", daemon=True).start()

    async def ready(self) -> None:
        """Adopt the client :meth:`warm` is making for this loop, once it is made."""
        warming = self._warming
        if warming is None:
            return
        loop, future = warming
        if loop is not asyncio.get_running_loop():
            return  # made for another loop: :meth:`get` makes this loop its own
        try:
            client = await asyncio.wrap_future(future)
        except Exception:
            client = None
        if self._warming is not warming:
            return  # another call adopted it first
        self._warming = None
        if client is None:
            return
        if self._client is None or self._loop is not loop:
            self._client, self._loop = client, loop
        else:
            await self._close(client)

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = self._make()
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        await self.ready()  # a client still being made is adopted, then closed with the rest
        self._warming = None
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # a client from a finished loop cannot be closed from this one
            await self._close(client)



class SDKProvider(Provider, Generic[C]):
    """A provider over a vendor's async SDK client, made per event loop and closed in :meth:`aclose`."""

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._client: LoopClient[C] = LoopClient(self._make_client, self._close_client)

    @abstractmethod
    def _make_client(self) -> C:
        """A new SDK client for the running loop, with the SDK's own retries turned off."""

    async def _close_client(self, client: C) -> None:
        await client.close()  # type: ignore[attr-defined]

    def client(self) -> C:
        return self._client.get()

    async def ready_client(self) -> C:
        """The client, made or adopted as :meth:`Provider.call` does before a call (the batch calls' way)."""
        await self.ready()
        self.prepare()
        return self.client()

    def prepare(self) -> None:
        self.client()

    def warm(self) -> None:
        self._client.warm()

    async def ready(self) -> None:
        await self._client.ready()

    async def aclose(self) -> None:
        await self._client.aclose()

def clip_message(text: Any, limit: int = _MESSAGE_LIMIT) -> str:
    """A vendor's error text made safe to print: keys masked, whitespace collapsed, length capped."""
    text = " ".join(redact(str(text or "")).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def body_message(body: Any) -> str:
    """The human part of a vendor's error body (``{"error": {"message": ...}}`` and its cousins)."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            return str(body)
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("message"), str):
            return body["message"]
    return "" if body is None else str(body)


def http_error(
    provider: Provider,
    status: int,
    message: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
) -> ProviderError:
    """The project's error for an HTTP failure, the same rules for every vendor.

    401/403 reject the key: fatal, never retried. The statuses of
    :data:`~agent.providers.policy.RETRYABLE_STATUSES` (408, 409, 425, 429, 5xx) are worth retrying,
    after the server's ``Retry-After`` when it gives one. Anything else (400, 404, 422) will fail the
    same way again, so it is final, with the vendor's own words (an unknown model, a prompt too long).
    """
    if status in (401, 403):
        return AuthError(provider.name, provider.key_variable() or "the API key", status)
    detail = clip_message(message)
    if retry_after is None:
        retry_after = parse_retry_after(headers)
    if status == 429:
        return ProviderError(
            f"{provider.model_id} was rate-limited (HTTP 429)" + (f": {detail}" if detail else ""),
            provider=provider.name, status=status, retryable=True, retry_after=retry_after,
            hint="lower --concurrency or set RESEARCH_RPM",
        )
    if is_retryable_status(status):
        return ProviderError(
            f"{provider.model_id} failed with HTTP {status}" + (f": {detail}" if detail else ""),
            provider=provider.name, status=status, retryable=True, retry_after=retry_after,
        )
    hint = None
    if status == 404:
        hint = f"check the model name {provider.model!r} and the endpoint {provider.endpoint}"
    return ProviderError(
        f"{provider.model_id} refused the request (HTTP {status})" + (f": {detail}" if detail else ""),
        provider=provider.name, status=status, retryable=False, hint=hint,
    )


def transport_error(provider: Provider, exc: BaseException, *, timed_out: bool = False) -> ProviderError:
    """A call that got no HTTP answer (timeout, refused or dropped connection): always worth a retry."""
    cause = exc.__cause__ or exc  # SDKs wrap the HTTP library's error; its name says what happened
    what = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    if timed_out:
        message = f"{provider.model_id} timed out"
    else:
        message = f"{provider.model_id} could not be reached at {provider.endpoint}"
    return ProviderError(f"{message} ({clip_message(what, 160)})", provider=provider.name, retryable=True)


def empty_answer(provider: Provider, reason: str) -> ProviderError:
    """A 200 with no text in it: not stored (it would be replayed forever), and not retried."""
    return ProviderError(f"{provider.model_id} returned no text (finish reason: {reason or 'unknown'})",
                         provider=provider.name, retryable=False,
                         hint="raise the output limit or change the prompt")


_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]+")


def schema_name(schema: Mapping[str, Any]) -> str:
    """A name for a request's JSON Schema (its ``title``, else ``answer``) in the characters every vendor
    takes for a response format's or a tool's name: letters, digits, ``_`` and ``-``, at most 64."""
    title = schema.get("title") if isinstance(schema, Mapping) else None
    name = _SCHEMA_NAME.sub("_", str(title or "")).strip("_")[:64]
    return name or "answer"


def normalize_base_url(url: str) -> str:
    """A base URL as it goes into step keys: no trailing slash, so ``/v1`` and ``/v1/`` are one server."""
    return url.strip().rstrip("/")


_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def with_scheme(url: str) -> str:
    return url if _SCHEME.match(url) else f"http://{url}"
