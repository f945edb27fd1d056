"""Firecrawl as the web backend: pages scraped to Markdown and web search, through firecrawl-py.

Used when ``FIRECRAWL_API_KEY`` or ``FIRECRAWL_API_URL`` is set. The v2 client ignores
``FIRECRAWL_API_URL``, so the URL is passed to it here; a self-hosted Firecrawl needs no key.

The SDK retries only 502s and transport errors, and not 429 or 500; it is told to make one attempt
(``max_retries=1``) so that the shared policy owns every retry, as for the built-in fetcher and the
model providers. Its exceptions become :class:`~agent.errors.SourceError` in :func:`map_errors` and
nowhere else. The SDK is imported when a backend is first made, never at ``research --help``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Iterator

from agent.config import env
from agent.errors import SourceError, UsageError
from agent.sources import Document
from agent.sources.backend import FetchLimits, SearchHit, SourceAuthError, WebBackend
from agent.sources.convert import title_from_markdown
from agent.providers.policy import is_retryable_status, parse_retry_after

DEFAULT_API_URL = "https://api.firecrawl.dev"
#: Part of every Firecrawl step key: bump it when the mapping of Firecrawl's answers to documents changes.
READER_VERSION = 1
FORMATS = ("markdown",)
KEY_VARIABLE = "FIRECRAWL_API_KEY"


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return parse_retry_after(headers)


def _brief(exc: BaseException) -> str:
    """The server's own words, without the SDK's boilerplate around them."""
    text = " ".join(str(exc).split())
    for filler in (" - No additional error details provided.", " - No additional details available"):
        text = text.replace(filler, "")
    return text[:300]


@contextlib.contextmanager
def map_errors(what: str, *, has_key: bool = True) -> Iterator[None]:
    """firecrawl-py's (and its httpx transport's) exceptions as :class:`SourceError`, in this one place."""
    import httpx
    from firecrawl.v2.utils.error_handler import (
        BadRequestError,
        DNSResolutionError,
        FirecrawlError,
        PaymentRequiredError,
        TLSError,
        UnauthorizedError,
    )
    from pydantic import ValidationError

    try:
        yield
    except UnauthorizedError as exc:
        problem = f"rejected the API key (HTTP 401): check {KEY_VARIABLE}" if has_key else \
            f"asks for an API key (HTTP 401) and {KEY_VARIABLE} is not set"
        raise SourceAuthError(
            f"Firecrawl {problem}", source=what, status=401,
            hint=f"set {KEY_VARIABLE} to a valid key, or unset it and FIRECRAWL_API_URL to use the built-in fetcher",
        ) from exc
    except PaymentRequiredError as exc:
        raise SourceAuthError(
            f"Firecrawl refused the request for payment (HTTP 402): the account behind {KEY_VARIABLE} is out of credits",
            source=what, status=402, hint="add credits, or unset FIRECRAWL_API_KEY to use the built-in fetcher",
        ) from exc
    except DNSResolutionError as exc:
        raise SourceError(f"{what}: the host name could not be resolved (DNS failure, via Firecrawl)",
                          source=what, status=_status_of(exc)) from exc
    except TLSError as exc:
        raise SourceError(f"{what}: the TLS handshake failed (via Firecrawl)", source=what,
                          status=_status_of(exc)) from exc
    except BadRequestError as exc:
        raise SourceError(f"{what}: Firecrawl rejected the request: {_brief(exc)}", source=what, status=400) from exc
    except FirecrawlError as exc:
        status = _status_of(exc)
        if status == 403:
            # Firecrawl answers 403 both for a key without access and for a site it will not scrape.
            raise SourceError(f"{what}: Firecrawl refused it (HTTP 403): {_brief(exc)}", source=what, status=403,
                              hint=f"check {KEY_VARIABLE} and what its plan allows") from exc
        retryable = status is None or is_retryable_status(status)
        raise SourceError(f"{what}: Firecrawl failed (HTTP {status}): {_brief(exc)}" if status
                          else f"{what}: Firecrawl failed: {_brief(exc)}",
                          source=what, status=status, retryable=retryable,
                          retry_after=_retry_after(exc) if retryable else None) from exc
    except httpx.TimeoutException as exc:
        raise SourceError(f"{what}: Firecrawl did not answer in time ({type(exc).__name__})", source=what,
                          retryable=True) from exc
    except httpx.TransportError as exc:
        raise SourceError(f"{what}: could not reach Firecrawl ({exc or type(exc).__name__})", source=what,
                          retryable=True) from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"{what}: Firecrawl request failed ({exc})", source=what, retryable=True) from exc
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        # A malformed answer (or a request the SDK refuses) would fail the same way again.
        raise SourceError(f"{what}: unusable answer from Firecrawl ({type(exc).__name__}: {str(exc)[:200]})",
                          source=what) from exc


def _http_status_error(url: str, status: int, detail: str | None) -> SourceError:
    retryable = is_retryable_status(status)
    reason = f": {detail}" if detail else ""
    return SourceError(f"{url}: HTTP {status} (reported by Firecrawl){reason}", source=url, status=status,
                       retryable=retryable)


class FirecrawlBackend(WebBackend):
    """Firecrawl's v2 API: ``/v2/scrape`` for pages, ``/v2/search`` for the web."""

    name = "firecrawl"
    can_search = True

    def __init__(self, limits: FetchLimits | None = None, *, api_key: str | None = None,
                 api_url: str | None = None, max_age: float | None = None) -> None:
        super().__init__(limits)
        self.api_key = api_key or env(KEY_VARIABLE)
        self.api_url = (api_url or env("FIRECRAWL_API_URL") or DEFAULT_API_URL).rstrip("/")
        # Firecrawl keeps its own index of pages; a run asking for pages fresher than that must say so.
        self.max_age = max_age
        self._client: Any = None
        # Every request goes to one API host, so its in-flight limit is the per-host one.
        self._slot = asyncio.Semaphore(max(1, self.limits.per_host))

    @property
    def endpoint(self) -> str:
        return self.api_url

    def key_options(self) -> dict[str, Any]:
        return {"formats": list(FORMATS), "only_main_content": True, "reader": READER_VERSION}

    def slot(self, url: str | None) -> asyncio.Semaphore:
        return self._slot

    def _sdk(self) -> Any:
        if self._client is None:
            try:
                from firecrawl import AsyncFirecrawl
            except ImportError as exc:
                raise UsageError(f"Firecrawl is configured but firecrawl-py is not installed ({exc})",
                                 hint="pip install firecrawl-py, or unset FIRECRAWL_API_KEY and FIRECRAWL_API_URL") from exc
            self._client = AsyncFirecrawl(api_key=self.api_key, api_url=self.api_url,
                                          timeout=self.limits.timeout_s + 5.0, max_retries=1)
        return self._client

    async def scrape_once(self, url: str) -> Document:
        options: dict[str, Any] = {"formats": list(FORMATS), "only_main_content": True}
        if self.max_age is not None:
            options["max_age"] = int(self.max_age * 1000)
        with map_errors(url, has_key=bool(self.api_key)):
            # auto_resume off: the SDK would otherwise sleep and re-ask on its own; our policy retries.
            doc = await self._sdk().scrape(url, auto_resume=False, **options)
            meta = doc.metadata_typed
            markdown = (doc.markdown or "").strip()
            status = meta.status_code
            title = meta.title or meta.og_title or ""
            error = meta.error
        if isinstance(title, list):  # some pages repeat <title>; Firecrawl then gives a list
            title = next((t for t in title if t), "")
        if status is not None and status >= 400:
            raise _http_status_error(url, status, error)
        if not markdown:
            raise SourceError(f"{url}: no readable text on the page (via Firecrawl)", source=url)
        return Document(uri=url, title=str(title).strip() or title_from_markdown(markdown, url), text=markdown)

    async def search_once(self, query: str, limit: int) -> list[SearchHit]:
        with map_errors(f"search {query!r}", has_key=bool(self.api_key)):
            data = await self._sdk().search(query, limit=limit)
            items = list(data.web or [])
        hits: list[SearchHit] = []
        for item in items:
            meta = getattr(item, "metadata_typed", None)
            url = getattr(item, "url", None) or (meta.url or meta.source_url if meta else None)
            if not url:
                continue
            title = getattr(item, "title", None) or (meta.title if meta else None) or ""
            snippet = getattr(item, "description", None) or (meta.description if meta else None) or ""
            hits.append(SearchHit(url=str(url), title=str(title), snippet=str(snippet)))
        return hits[:limit]

    async def aclose(self) -> None:
        client, self._client = self._client, None
        http = getattr(getattr(client, "v2", None), "async_http_client", None)
        if http is not None:
            with contextlib.suppress(Exception):  # closing is tidiness; a failure here loses nothing
                await http.close()
