"""robots.txt for the built-in fetcher: read once per site, asked before each page.

A site's robots.txt is fetched the first time a page of it is read (through the fetcher's own client,
so the address guard and the User-Agent apply), kept for the fetcher's life, and parsed with the
standard library's :mod:`urllib.robotparser` under the fetcher's User-Agent. Pages it disallows fail
as sources, saying so and naming ``--ignore-robots``.

What the answer for robots.txt means (RFC 9309 section 2.3.1, with one deliberate difference):

- 2xx: its rules apply (the first 512 KiB of it are read).
- 4xx, 404 included: there are no rules; every page may be read.
- 5xx, a timeout, a refused or dropped connection, a redirect loop: every page may be read. RFC 9309
  asks crawlers to assume the opposite. This fetcher is no crawler: it reads the handful of pages a
  person named or a search returned, once, and a flaky robots.txt must not fail a research run when
  the page itself answers. The page's own fetch then succeeds or fails on its own.

Only the URL a source names is checked, not the hops of its redirects: the site chose where to send
us. Known limits of :mod:`urllib.robotparser`: rules match by prefix in file order (the first
matching ``Allow``/``Disallow`` wins, not the longest), and ``*``/``$`` wildcards inside paths are not
understood (such a rule matches nothing).

:class:`Robots` is JSON-able (``to_json``/``from_json``), so a pipeline may fetch it as a durable step
and hand it to a fetcher with :meth:`RobotsCache.remember`, or replace :attr:`RobotsCache.load`.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx

if TYPE_CHECKING:
    from agent.sources.web import WebFetcher

#: The most of a robots.txt read (RFC 9309 asks for at least 500 KiB).
MAX_BYTES = 512 * 1024
#: The longest wait for a robots.txt, whatever the page timeout: every page of the site waits for it.
MAX_WAIT_S = 10.0
IGNORE_HINT = "pass --ignore-robots to read it anyway"


def origin(url: str) -> str:
    """The site a robots.txt speaks for: scheme, host and port (``https://example.com:8443``)."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), "", "", ""))


def robots_url(url: str) -> str:
    return origin(url) + "/robots.txt"


def host_of(url: str) -> str:
    """The host (and port, if any) a failure names: ``example.com``, ``127.0.0.1:8080``."""
    return urlsplit(url.strip()).netloc.lower().rpartition("@")[2]


@dataclass(frozen=True)
class Robots:
    """What a site's robots.txt said: its HTTP status (None when no answer came) and its text."""

    origin: str
    status: int | None = None
    text: str = ""
    #: Why there are no rules, when there are none: "HTTP 404", "timed out", ...
    note: str = ""

    @property
    def has_rules(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def allows(self, url: str, user_agent: str) -> bool:
        """Whether ``user_agent`` may read ``url`` (a URL of this site)."""
        if not self.has_rules:
            return True
        return self._parser().can_fetch(user_agent, url)

    def _parser(self) -> RobotFileParser:
        parser = getattr(self, "_parsed", None)
        if parser is None:
            parser = RobotFileParser()
            parser.parse(self.text.splitlines())
            object.__setattr__(self, "_parsed", parser)  # a cache on a frozen value
        return parser

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Robots":
        status = data.get("status")
        return cls(origin=str(data["origin"]), status=int(status) if status is not None else None,
                   text=str(data.get("text") or ""), note=str(data.get("note") or ""))


async def fetch_robots(client: httpx.AsyncClient, site: str, *, timeout_s: float = MAX_WAIT_S) -> Robots:
    """The robots.txt of ``site`` (an origin), read with ``client``; never raises for the site's failures."""
    url = site + "/robots.txt"
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("GET", url, timeout=timeout_s) as response:
                if not 200 <= response.status_code < 300:
                    return Robots(site, response.status_code, note=f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_BYTES:
                        break
    except (TimeoutError, asyncio.TimeoutError):
        return Robots(site, note="timed out")
    except httpx.HTTPError as exc:
        return Robots(site, note=f"no answer ({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001 - the guard's refusal, a bad redirect: the page will say why
        return Robots(site, note=f"no answer ({type(exc).__name__})")
    text = bytes(body[:MAX_BYTES]).decode("utf-8", errors="replace")
    return Robots(site, response.status_code, text=text)


Loader = Callable[[str], Awaitable[Robots]]


class RobotsCache:
    """Each site's :class:`Robots`, loaded once however many pages of it are read at the same time."""

    def __init__(self, load: Loader) -> None:
        #: ``load(origin)``: how a site's robots.txt is obtained; a pipeline may wrap it in a durable step.
        self.load = load
        self._known: dict[str, Robots] = {}
        self._pending: dict[str, asyncio.Task[Robots]] = {}

    def remember(self, robots: Robots) -> None:
        self._known[robots.origin] = robots

    def known(self, site: str) -> Robots | None:
        return self._known.get(site)

    async def get(self, site: str) -> Robots:
        if site in self._known:
            return self._known[site]
        task = self._pending.get(site)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.get_running_loop().create_task(self._load(site))
            self._pending[site] = task
        # Shielded: one page giving up (its deadline) must not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def _load(self, site: str) -> Robots:
        try:
            robots = await self.load(site)
        except Exception as exc:  # noqa: BLE001 - a loader's failure allows, like a robots.txt that failed
            robots = Robots(site, note=f"not read ({type(exc).__name__})")
        finally:
            self._pending.pop(site, None)
        self._known[site] = robots
        return robots


async def robots_allows(fetcher: "WebFetcher", url: str) -> bool:
    """Whether ``fetcher``'s robots.txt rules let it read ``url``, reading the site's robots.txt first
    if this fetcher has not yet."""
    from agent.sources.web import USER_AGENT

    robots = await fetcher.robots.get(origin(url))
    return robots.allows(url, USER_AGENT)


def disallowed_message(url: str) -> str:
    return f"{url}: skipped: robots.txt of {host_of(url)} disallows it; {IGNORE_HINT}"
