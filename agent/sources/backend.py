"""The web backend interface: how a page is scraped and the web searched, and which backend a run uses.

A backend makes *one attempt* at a page (:meth:`WebBackend.scrape_once`) or a search
(:meth:`WebBackend.search_once`), raising :class:`~agent.errors.SourceError` with ``retryable`` set for
failures worth another try. Retries, the overall attempt deadline and concurrency are the shared
policy's (:mod:`agent.providers.policy`), applied by :meth:`WebBackend.scrape` and
:meth:`WebBackend.search`, so the built-in fetcher and Firecrawl behave alike.

Firecrawl is used when ``FIRECRAWL_API_KEY`` or ``FIRECRAWL_API_URL`` is set (a self-hosted Firecrawl
needs no key); otherwise the built-in fetcher, which cannot search. Both load on first use. Only the
built-in fetcher connects to the pages itself, so only it can be kept from private addresses (see
:func:`web_backend`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, AsyncContextManager, Awaitable, Callable, ClassVar, Iterable, TypeVar

from agent.config import Limits, env, env_numbers
from agent.errors import SourceAuthError, SourceError, UsageError
from agent.sources import Document

T = TypeVar("T")

__all__ = ["FetchLimits", "SearchHit", "SourceAuthError", "WebBackend", "check_search", "search_available", "web_backend"]


@dataclass(frozen=True)
class FetchLimits:
    """How hard a run may push the sites it reads. None of this is ever part of a key."""

    timeout_s: float = 30.0  # one request, start to last byte
    per_host: int = 4  # requests in flight to one host
    concurrency: int = 16  # requests in flight overall
    max_bytes: int = 20 * 1024 * 1024  # a page larger than this is refused, not truncated
    max_redirects: int = 5
    max_retries: int = 4
    retry_cap_s: float = 60.0

    @classmethod
    def from_limits(cls, limits: Limits | None, **overrides: Any) -> "FetchLimits":
        """Defaults, then ``RESEARCH_FETCH_*`` variables, with the run's retry settings (shared with
        the model calls), then explicit overrides."""
        values: dict[str, Any] = env_numbers((
            ("timeout_s", "RESEARCH_FETCH_TIMEOUT", float),
            ("per_host", "RESEARCH_FETCH_PER_HOST", int),
            ("max_bytes", "RESEARCH_FETCH_MAX_BYTES", int),
            ("max_redirects", "RESEARCH_FETCH_MAX_REDIRECTS", int),
        ))
        if limits is not None:
            values.update(max_retries=limits.max_retries, retry_cap_s=limits.retry_cap_s)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class SearchHit:
    """One web search result: the page it points at, as the search engine describes it."""

    url: str
    title: str = ""
    snippet: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SearchHit":
        return cls(url=str(data["url"]), title=str(data.get("title") or ""), snippet=str(data.get("snippet") or ""))


class WebBackend(ABC):
    #: The step provider name: part of every scrape and search key.
    name: ClassVar[str]
    #: Whether :meth:`search_once` is implemented.
    can_search: ClassVar[bool] = False

    def __init__(self, limits: FetchLimits | None = None) -> None:
        self.limits = limits or FetchLimits()
        self._policy = None

    @property
    def endpoint(self) -> str:
        """Where requests go; part of every key (another Firecrawl server may return another page)."""
        return ""

    def key_options(self) -> dict[str, Any]:
        """The settings that change what a scrape returns (formats, reader version); part of the key."""
        return {}

    @abstractmethod
    async def scrape_once(self, url: str) -> Document:
        """One attempt at reading ``url``."""

    async def search_once(self, query: str, limit: int) -> list[SearchHit]:
        """One attempt at a web search."""
        raise UsageError(f"the {self.name} backend cannot search the web",
                         hint="set FIRECRAWL_API_KEY (or FIRECRAWL_API_URL for a self-hosted Firecrawl) to use --search")

    def slot(self, url: str | None) -> AsyncContextManager[Any]:
        """What an attempt at ``url`` (``None``: a search) holds while in flight, such as a per-host limit."""
        return contextlib.nullcontext()

    async def scrape(self, url: str) -> Document:
        """:meth:`scrape_once` under the shared retry and concurrency policy."""
        # The slot is held across retries: backing off a struggling host should not free a place for
        # another request to it.
        async with self.slot(url):
            return await self._run(lambda: self.scrape_once(url), what=url)

    async def search(self, query: str, limit: int) -> list[SearchHit]:
        """:meth:`search_once` under the shared retry and concurrency policy."""
        async with self.slot(None):
            return await self._run(lambda: self.search_once(query, limit), what=f"search {query!r}")

    async def _run(self, attempt: Callable[[], Awaitable[T]], *, what: str) -> T:
        if self._policy is None:
            from agent.providers.policy import Policy

            # The policy's own deadline is a backstop: each attempt below ends first, as a SourceError.
            self._policy = Policy.for_provider(f"source:{self.name}", Limits(
                concurrency=self.limits.concurrency, timeout_s=self.limits.timeout_s + 5.0,
                max_retries=self.limits.max_retries, retry_cap_s=self.limits.retry_cap_s,
            ))

        started = time.monotonic()
        tries = {"all": 0, "timeouts": 0}

        async def bounded() -> T:
            # A page that hung once is tried once more, never more: a dead host must not hold up the run
            # for five timeouts. Refusals, DNS and TLS failures are not retried at all (not retryable).
            tries["all"] += 1
            try:
                return await asyncio.wait_for(attempt(), timeout=self.limits.timeout_s)
            except asyncio.TimeoutError:
                failure = SourceError(f"{what}: no complete answer within {self.limits.timeout_s:g}s",
                                      source=what, retryable=True)
            except SourceError as exc:
                if "timed out" not in exc.message:
                    raise
                failure = exc
            tries["timeouts"] += 1
            if tries["timeouts"] >= 2:
                raise SourceError(
                    f"{what}: no complete answer in {tries['all']} attempts of {self.limits.timeout_s:g}s each "
                    f"({time.monotonic() - started:.0f}s in all)", source=what) from failure
            raise failure

        return await self._policy.run(bounded, provider=self.name)

    async def aclose(self) -> None:
        """Release connections; backends holding none need not override it."""


def firecrawl_configured() -> bool:
    return bool(env("FIRECRAWL_API_KEY") or env("FIRECRAWL_API_URL"))


def search_available() -> bool:
    """Whether ``--search`` can work in this environment (checked before anything is paid)."""
    return firecrawl_configured()


def check_search(count: int) -> None:
    """A :class:`UsageError` now, rather than after paid steps, if ``--search`` cannot work."""
    if count and not search_available():
        raise UsageError(
            "--search needs a search backend and none is configured",
            hint="set FIRECRAWL_API_KEY (or FIRECRAWL_API_URL for a self-hosted Firecrawl), or pass --url/--urls-file instead",
        )


def web_backend(limits: Limits | None = None, *, max_age: float | None = None,
                trusted_hosts: Iterable[str] | None = None, allow_private: bool = False,
                ignore_robots: bool | None = None, **overrides: Any) -> WebBackend:
    """Firecrawl if it is configured, else the built-in fetcher; each imported only here.

    ``max_age`` is the run's freshness wish, passed on to backends that keep their own page cache.

    ``trusted_hosts`` and ``allow_private`` guard the built-in fetcher against being led into private
    addresses (:mod:`agent.sources.guard`). Pass the hosts the user named (``--url``, ``--urls-file``,
    a report's ``urls``), as hosts or URLs: those, and redirects staying on them, may be private;
    search results, planner-chosen URLs and redirects to other hosts may not. An empty iterable trusts
    no host. ``None``, the default, trusts every host: the behaviour of callers from before the guard,
    kept until they pass their hosts. ``allow_private=True`` (``--allow-private-hosts``) allows every
    address. Firecrawl fetches on its own side, so neither applies to it.

    ``ignore_robots=False`` makes the built-in fetcher honour robots.txt (:mod:`agent.sources.robots`),
    ``True`` (``--ignore-robots``) not. ``None``, the default, does not consult it either: the
    behaviour of callers from before robots.txt support, kept until they say which they want, like
    ``trusted_hosts``. Firecrawl applies its own policy.
    """
    fetch_limits = FetchLimits.from_limits(limits, **overrides)
    if firecrawl_configured():
        from agent.sources.firecrawl import FirecrawlBackend

        return FirecrawlBackend(limits=fetch_limits, max_age=max_age)
    from agent.sources.web import WebFetcher

    return WebFetcher(limits=fetch_limits, trusted_hosts=trusted_hosts, allow_private=allow_private,
                      robots=ignore_robots is False)
