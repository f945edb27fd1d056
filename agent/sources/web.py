"""The built-in web fetcher: pages read over HTTP with httpx, reduced to their main content.

Used when no Firecrawl is configured. A page is streamed within the run's limits (a deadline, a size
cap, a redirect cap, a few requests in flight per host), checked against a content-type allow list,
and converted by :func:`agent.sources.convert.to_text`: HTML to the article's Markdown (navigation,
footers and cookie banners never reach a model), PDFs to their text, recognised by content type *or*
by their ``%PDF-`` signature, since servers often send them as ``application/octet-stream`` at URLs
without a ``.pdf``. Every failure is a :class:`~agent.errors.SourceError` saying why, and marked
retryable when waiting might help (429, 5xx, timeouts, dropped connections).

Given ``trusted_hosts``, the fetcher reaches private addresses only at those hosts: every connection,
redirects included, goes through :mod:`agent.sources.guard`, and a refused one is a SourceError naming
the host and the address, before any request is sent. ``trusted_hosts=None`` (callers from before the
guard) and ``allow_private=True`` (the user's ``--allow-private-hosts``) fetch as httpx alone would,
honouring proxies from the environment; a guarded fetcher connects directly.

With ``robots=True`` (what ``web_backend(ignore_robots=False)`` builds; ``--ignore-robots`` says
True) a page its site's robots.txt disallows fails without being requested; see
:mod:`agent.sources.robots`. A redirect to anything but http(s) (``javascript:``, ``data:``, ``ftp:``)
fails saying so. Conversion runs in a worker thread, so pages convert while others download and the
event loop stays free. Each document records the URL it was read at after redirects and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from datetime import datetime, timezone
from typing import Any, AsyncContextManager, Iterable, Iterator
from urllib.parse import urljoin, urlsplit

import httpx

from agent.errors import SourceError
from agent.providers.policy import is_retryable_status, parse_retry_after
from agent.sources import Document
from agent.sources.backend import FetchLimits, WebBackend
from agent.sources.convert import HTML_TYPES, PDF_TYPES, convert, title_from_markdown
from agent.sources.guard import AddressGuard, Refused, Resolver, guarded_transport, host_key
from agent.sources.robots import MAX_WAIT_S, Robots, RobotsCache, disallowed_message, fetch_robots, robots_allows

#: Part of every page read's key: bump it when the conversion of pages to text changes.
#: 2: text without control characters, PDFs' broken words joined, trafilatura settings measured on real
#: pages (comments kept under a heading), titles without the site's name, provenance fields.
READER_VERSION = 2
USER_AGENT = "durable-research/0.1 (+research CLI)"
TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
ALLOWED_TYPES = HTML_TYPES + TEXT_TYPES + PDF_TYPES
#: Types servers give PDFs (and anything else) they will not name; the body's signature decides.
SNIFF_TYPES = ("", "application/octet-stream", "binary/octet-stream", "application/x-pdf",
               "application/download", "application/force-download", "application/x-download")
_ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,text/markdown;q=0.9,text/plain;q=0.8,*/*;q=0.1"
_REASONS = {
    401: "needs a login", 403: "access denied", 404: "not found", 410: "gone", 429: "rate limited",
    451: "unavailable for legal reasons",
}


def _size(n: int) -> str:
    """A byte count as people read it: 2,000 bytes, 512 KB, 1 MB, 2.86 MB."""
    if n < 10 * 1024:
        return f"{n:,} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.3g} KB"
    return f"{n / 1024 / 1024:.3g} MB"


def _root_causes(exc: BaseException) -> Iterator[BaseException]:
    seen = 0
    while exc is not None and seen < 10:
        yield exc
        exc = exc.__cause__ or exc.__context__
        seen += 1


def _describe_connect_error(exc: BaseException) -> tuple[str, bool]:
    """Why a connection could not be made, and whether trying again might help."""
    for cause in _root_causes(exc):
        if isinstance(cause, socket.gaierror):
            return "the host name could not be resolved (DNS failure)", False
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its TLS certificate is not valid ({cause.verify_message or cause.reason})", False
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake failed ({cause.reason or cause})", False
        if isinstance(cause, ConnectionRefusedError):
            return "the connection was refused (nothing listening there)", False
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "the host name could not be resolved (DNS failure)", False
    if "ssl" in text or "certificate" in text or "tls" in text:
        return f"the TLS handshake failed ({exc})", False
    if "refused" in text:
        return "the connection was refused (nothing listening there)", False
    return f"could not connect ({exc or type(exc).__name__})", True


@contextlib.contextmanager
def map_httpx_errors(url: str, limits: FetchLimits) -> Iterator[None]:
    """httpx's exceptions as :class:`SourceError`, in this one place."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise SourceError(f"{url}: timed out after {limits.timeout_s:g}s ({type(exc).__name__})",
                          source=url, retryable=True) from exc
    except httpx.TooManyRedirects as exc:
        raise SourceError(f"{url}: too many redirects (more than {limits.max_redirects})", source=url) from exc
    except httpx.UnsupportedProtocol as exc:
        raise SourceError(f"{url}: redirected to a URL that is not http(s) ({exc})", source=url) from exc
    except httpx.ConnectError as exc:
        reason, retryable = _describe_connect_error(exc)
        raise SourceError(f"{url}: {reason}", source=url, retryable=retryable) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
        raise SourceError(f"{url}: the connection dropped before the page was complete ({exc or type(exc).__name__})",
                          source=url, retryable=True) from exc
    except httpx.InvalidURL as exc:
        raise SourceError(f"{url}: not a valid URL ({exc})", source=url) from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"{url}: {type(exc).__name__}: {exc}", source=url, retryable=True) from exc


def _status_error(url: str, response: httpx.Response) -> SourceError:
    status = response.status_code
    reason = _REASONS.get(status) or response.reason_phrase or "error"
    retryable = is_retryable_status(status)
    return SourceError(
        f"{url}: HTTP {status} {reason}".rstrip(), source=url, status=status, retryable=retryable,
        retry_after=parse_retry_after(response.headers) if retryable else None,
    )


def _media_type(response: httpx.Response) -> tuple[str, str | None]:
    """The response's media type (lowercase, no parameters) and its charset, if any."""
    raw = response.headers.get("content-type", "")
    mtype, _, params = raw.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    return mtype.strip().lower(), charset


class NotWebRedirect(Exception):
    """A redirect to a URL that is not http(s); raised from the client's response hook."""

    def __init__(self, scheme: str) -> None:
        super().__init__(f"redirect to a {scheme}: URL")
        self.scheme = scheme


async def _check_redirect(response: httpx.Response) -> None:
    # httpx would fail on its own, but with "For absolute URLs, path must be empty" for javascript:.
    if response.has_redirect_location:
        target = urljoin(str(response.request.url), response.headers["location"].strip())
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            raise NotWebRedirect(scheme or "schemeless")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class WebFetcher(WebBackend):
    """Pages over HTTP(S), one attempt per :meth:`scrape_once`; see the module docstring."""

    name = "web"
    can_search = False

    def __init__(self, limits: FetchLimits | None = None, *, trusted_hosts: Iterable[str] | None = None,
                 allow_private: bool = False, resolve: Resolver | None = None, robots: bool = False) -> None:
        """``trusted_hosts``: the hosts the user named, which may be private; None trusts every host
        (no guard, as before there was one), and an empty set none. ``allow_private`` turns the guard
        off. ``resolve`` replaces the system resolver for guarded connections (see
        :func:`agent.sources.guard.resolve`). ``robots``: honour robots.txt; off unless asked for, as
        before there was robots.txt support (``web_backend(ignore_robots=False)`` asks for it)."""
        super().__init__(limits)
        self._client: httpx.AsyncClient | None = None
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self.guard: AddressGuard | None = None
        if trusted_hosts is not None and not allow_private:
            self.guard = AddressGuard(trusted_hosts, resolve=resolve)
        self.honours_robots = robots
        #: Each site's robots.txt, read once for this fetcher's life.
        self.robots = RobotsCache(self._load_robots)

    def key_options(self) -> dict[str, Any]:
        # A page an unguarded fetcher read (--allow-private-hosts) may hold what a guarded one must
        # refuse, such as a redirect into a private address: it is stored apart, never replayed to a
        # guarded run. Guarded keys stay as they were, whichever hosts the run trusts.
        if self.guard is None:
            return {"reader": READER_VERSION, "private_hosts": "allowed"}
        return {"reader": READER_VERSION}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            pool = httpx.Limits(max_connections=max(self.limits.concurrency, self.limits.per_host))
            # httpx follows the redirects itself; the guard sits under it, where each hop connects.
            connection: dict[str, Any] = {"limits": pool}
            if self.guard is not None:
                connection = {"transport": guarded_transport(self.guard, limits=pool)}
            self._client = httpx.AsyncClient(
                follow_redirects=True,
                max_redirects=self.limits.max_redirects,
                timeout=httpx.Timeout(self.limits.timeout_s),
                headers={"User-Agent": USER_AGENT, "Accept": _ACCEPT},
                event_hooks={"response": [_check_redirect]},
                **connection,
            )
        return self._client

    async def _load_robots(self, site: str) -> Robots:
        return await fetch_robots(self._http(), site, timeout_s=min(self.limits.timeout_s, MAX_WAIT_S))

    def slot(self, url: str | None) -> AsyncContextManager[Any]:
        host = (urlsplit(url or "").netloc or "").lower()
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(max(1, self.limits.per_host))
        return self._hosts[host]

    async def scrape(self, url: str) -> Document:
        # Asked once per page, before its attempts and outside their deadline: robots.txt has its own
        # (see agent.sources.robots), and a slow one must not eat the page's.
        if self.honours_robots and not await robots_allows(self, url):
            raise SourceError(disallowed_message(url), source=url)
        return await super().scrape(url)

    async def scrape_once(self, url: str) -> Document:
        try:
            return await self._fetch(url)
        except Refused as refused:
            # The guard only knows the host it was asked to connect to; another host than the URL's
            # means a redirect led there.
            reason = refused.reason(redirected=refused.host != host_key(url))
            raise SourceError(f"{url}: {reason}", source=url) from refused
        except NotWebRedirect as bad:
            raise SourceError(f"{url}: redirected to a URL that is not http(s) ({bad.scheme}:)", source=url) from bad

    async def _fetch(self, url: str) -> Document:
        with map_httpx_errors(url, self.limits):
            async with self._http().stream("GET", url) as response:
                if response.status_code >= 400:
                    raise _status_error(url, response)
                mtype, charset = _media_type(response)
                if mtype not in ALLOWED_TYPES and mtype not in SNIFF_TYPES:
                    raise SourceError(f"{url}: unsupported content type {mtype}", source=url)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.limits.max_bytes:
                    raise self._too_large(url, int(declared))
                data = await self._read(url, response)
                final_url = str(response.url)
        fetched_at = _now()
        # In a thread: a large PDF takes seconds of CPU, and the loop has other pages to read meanwhile.
        doc = await asyncio.to_thread(self._document, url, data, mtype, charset)
        doc.final_url, doc.fetched_at = final_url, fetched_at
        return doc

    async def _read(self, url: str, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.limits.max_bytes:
                # Stop here rather than read the rest: a huge page costs memory and time for nothing.
                raise self._too_large(url, None)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, url: str, size: int | None) -> SourceError:
        limit = _size(self.limits.max_bytes)
        got = f" ({_size(size)})" if size is not None else ""
        return SourceError(f"{url}: the page is larger than the {limit} limit{got}", source=url)

    def _document(self, url: str, data: bytes, mtype: str, charset: str | None) -> Document:
        if not data.strip():
            raise SourceError(f"{url}: the page is empty", source=url)
        is_pdf = data[:5] == b"%PDF-"
        if mtype in SNIFF_TYPES and not is_pdf:
            raise SourceError(f"{url}: unsupported content type {mtype or '(none)'} (not a PDF)", source=url)
        if mtype in TEXT_TYPES and charset and not is_pdf:
            # convert.to_text guesses UTF-8 then Latin-1; a declared charset is better than a guess.
            try:
                data = data.decode(charset).encode("utf-8")
            except (LookupError, UnicodeDecodeError):
                pass
        ctype = "application/pdf" if is_pdf else mtype
        page = convert(data, ctype, url)
        text = page.text.strip()
        if not text:
            raise SourceError(f"{url}: no readable text on the page", source=url)
        parts = urlsplit(url)
        fallback = (parts.netloc + parts.path).rstrip("/") or url
        if is_pdf:
            content_type = "application/pdf"
        else:
            content_type = "text/markdown" if mtype in HTML_TYPES else (mtype or "text/plain")
        return Document(uri=url, title=page.title or title_from_markdown(text, fallback), text=text,
                        content_type=content_type, site=page.site, author=page.author, published=page.published)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
