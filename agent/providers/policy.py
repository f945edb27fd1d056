"""One retry, timeout and concurrency policy for every provider.

The vendor SDKs each retry differently (one not at all, one giving up on long ``Retry-After``, one
waiting any ``Retry-After`` uncapped), so adapters turn SDK retries off and this module owns them:

- at most ``concurrency`` calls in flight per provider, and optionally ``rpm`` call starts a minute;
- each attempt bounded by ``timeout_s``;
- retryable failures (429, 5xx, timeouts, dropped connections) retried up to ``max_retries`` times with
  exponential backoff and full jitter, or after the server's ``Retry-After`` when it gives one, never
  waiting longer than ``retry_cap_s``;
- anything else (400, 401/403, 404) raised at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import weakref
from typing import Awaitable, Callable, Mapping, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from agent.config import Limits
from agent.errors import ProviderError, SourceError

T = TypeVar("T")
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
    """Spaces call starts so that no more than ``rpm`` begin in any minute."""

    def __init__(self, rpm: float) -> None:
        self.interval = 60.0 / rpm
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class Policy:
    """The shared policy of one provider (or one host) within one event loop."""

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.semaphore = asyncio.Semaphore(max(1, limits.concurrency))
        self.limiter = RateLimiter(limits.rpm) if limits.rpm else None
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

    async def run(self, attempt: Callable[[], Awaitable[T]], *, provider: str) -> T:
        """Run ``attempt`` (a fresh coroutine each time) under the policy."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = weakref.ref(loop)
        elif self._loop() is not loop:
            # A caller kept this policy past its event loop (a notebook, a second asyncio.run): its
            # semaphore belongs to the old loop, so the call goes to this loop's own policy.
            return await Policy.for_provider(self.name, self.limits).run(attempt, provider=provider)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.limits.max_retries + 1),
            wait=self.wait_for,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                async with self.semaphore:
                    if self.limiter is not None:
                        await self.limiter.wait()
                    try:
                        return await asyncio.wait_for(attempt(), timeout=self.limits.timeout_s)
                    except asyncio.TimeoutError as exc:
                        raise ProviderError(
                            f"{provider} did not answer within {self.limits.timeout_s:g}s",
                            provider=provider, retryable=True,
                            hint="raise the timeout with RESEARCH_TIMEOUT or --timeout",
                        ) from exc
        raise AssertionError("unreachable")  # pragma: no cover
