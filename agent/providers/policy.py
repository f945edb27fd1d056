"""One retry, timeout and concurrency policy for every provider.

The vendor SDKs each retry differently (one not at all, one giving up on long ``Retry-After``, one
waiting any ``Retry-After`` uncapped), so adapters turn SDK retries off and this module owns them:

- at most ``concurrency`` calls in flight per provider, and optionally ``rpm`` call starts a minute;
- each attempt bounded by ``timeout_s``;
- retryable failures (429, 5xx, timeouts, dropped connections) retried up to ``max_retries`` times with
  exponential backoff and full jitter, or after the server's ``Retry-After`` when it gives one, never
  waiting longer than ``retry_cap_s``;
- anything else (400, 401/403, 404) raised at once.

Which HTTP statuses are worth another try is decided here once, for model APIs and web sources alike
(:data:`RETRYABLE_STATUSES`, :func:`is_retryable_status`). tenacity loads with the first policy made,
so modules that only read the table or parse a ``Retry-After`` stay cheap to import.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
import weakref
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator, Mapping, TypeVar

from agent.config import Limits
from agent.errors import ProviderError, SourceError

if TYPE_CHECKING:
    from tenacity import RetryCallState

T = TypeVar("T")

#: HTTP statuses worth the same request again later: a timeout (408), a conflict the server expects to
#: clear (409), a request sent too early (425), a rate limit (429) and any server trouble (5xx). Every
#: other status will fail the same way again (400, 404, 422), or needs a person (401, 403).
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, *range(500, 600)})


def is_retryable_status(status: int | None) -> bool:
    """Whether an HTTP failure with ``status`` may succeed if the same request is sent again later."""
    return status in RETRYABLE_STATUSES
_policies: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Policy]]" = weakref.WeakKeyDictionary()


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``Retry-After`` as seconds or a date."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (ProviderError, SourceError)) and exc.retryable


class RateLimiter:
    """Spaces call starts at least ``60 / rpm`` seconds apart, so that no more than ``rpm`` begin a minute.

    A start is counted when the request really goes out, not when its slot was granted, which on a
    busy event loop can be a good part of a second apart: an SDK's first call builds its client, imports
    modules and asks a thread for platform details before it sends anything, and a waiter whose sleep
    ran out meanwhile wakes late. So slots are granted one at a time, under a lock, each measured from
    the latest moment the previous call was seen running (:meth:`ran`), not from a schedule fixed in
    advance that late waiters would all catch up on together. The limiter cannot tell a call's last
    request bytes from its first answer bytes, so a call answered within the interval pushes the next
    start back a little: it errs towards fewer calls, never more.
    """

    def __init__(self, rpm: float) -> None:
        self.interval = 60.0 / rpm
        self._last = -math.inf
        self._turn = 0  # the latest call granted a slot; only its activity moves the next one
        self._lock = asyncio.Lock()

    async def wait(self) -> int:
        """Return when this caller may start, with its turn to pass to :meth:`ran` while it runs."""
        async with self._lock:
            # A loop, not one sleep: the previous call may still be starting while this one sleeps.
            while (delay := self._last + self.interval - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            self._last = time.monotonic()
            self._turn += 1
            return self._turn

    def ran(self, turn: int) -> None:
        """The call of ``turn`` has just run (it may have sent its request): the next start counts from now."""
        if turn == self._turn:
            self._last = max(self._last, time.monotonic())


class _Watched:
    """Awaits ``awaitable``, calling ``ran()`` each time it hands control back to the event loop and at its end."""

    def __init__(self, awaitable: Awaitable[T], ran: Callable[[], None]) -> None:
        self._awaitable, self._ran = awaitable, ran

    def __await__(self) -> Generator[Any, Any, T]:
        # What ``yield from`` does, with a hook after every step.
        steps = self._awaitable.__await__()
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    yielded = steps.send(value) if error is None else steps.throw(error)  # type: ignore[attr-defined]
                except StopIteration as stop:
                    return stop.value
                finally:
                    self._ran()
                try:
                    value, error = (yield yielded), None
                except GeneratorExit:
                    raise
                except BaseException as exc:  # a cancellation goes on into the call
                    value, error = None, exc
        finally:
            steps.close()  # type: ignore[attr-defined]


class Policy:
    """The shared policy of one provider (or one host) within one event loop."""

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.semaphore = asyncio.Semaphore(max(1, limits.concurrency))
        self.limiter = RateLimiter(limits.rpm) if limits.rpm else None
        from tenacity import wait_random_exponential

        self._backoff = wait_random_exponential(multiplier=0.5, max=limits.retry_cap_s)
        self._loop: "weakref.ref[asyncio.AbstractEventLoop] | None" = None

    @classmethod
    def for_provider(cls, name: str, limits: Limits) -> "Policy":
        """The one policy for ``name`` and ``limits`` in the running loop, so limits are shared."""
        loop = asyncio.get_running_loop()
        per_loop = _policies.setdefault(loop, {})
        key = (name, limits)
        if key not in per_loop:
            per_loop[key] = cls(name, limits)
        return per_loop[key]

    def wait_for(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After if given, else jittered backoff."""
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None and retry_after >= 0:
            return min(float(retry_after), self.limits.retry_cap_s)
        return self._backoff(state)

    async def run(self, attempt: Callable[[], Awaitable[T]], *, provider: str,
                  timeout_hint: str = "raise the timeout with RESEARCH_TIMEOUT or --timeout") -> T:
        """Run ``attempt`` (a fresh coroutine each time) under the policy."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = weakref.ref(loop)
        elif self._loop() is not loop:
            # A caller kept this policy past its event loop (a notebook, a second asyncio.run): its
            # semaphore belongs to the old loop, so the call goes to this loop's own policy.
            return await Policy.for_provider(self.name, self.limits).run(attempt, provider=provider,
                                                                         timeout_hint=timeout_hint)
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.limits.max_retries + 1),
            wait=self.wait_for,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                async with self.semaphore:
                    turn = await self.limiter.wait() if self.limiter is not None else 0
                    try:
                        return await asyncio.wait_for(self._attempt(attempt, turn), timeout=self.limits.timeout_s)
                    except asyncio.TimeoutError as exc:
                        raise ProviderError(
                            f"{provider} did not answer within {self.limits.timeout_s:g}s",
                            provider=provider, retryable=True,
                            hint=timeout_hint,
                        ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, attempt: Callable[[], Awaitable[T]], turn: int) -> T:
        if self.limiter is None:
            return await attempt()
        limiter = self.limiter
        return await _Watched(attempt(), lambda: limiter.ran(turn))
