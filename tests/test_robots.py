"""robots.txt in the built-in fetcher, against the loopback site: read once per site, honoured under our
User-Agent, lenient when it cannot be read, and off with ``ignore_robots``."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.errors import SourceError
from agent.sources.backend import FetchLimits, web_backend
from agent.sources.robots import Robots, RobotsCache, origin, robots_allows
from agent.sources.web import USER_AGENT, WebFetcher
from tests.servers import Reply, serve
from tests.servers.website import Site, html, page
from tests.test_sources_real import fetch_all

FAST = dict(timeout_s=2.0, max_retries=0, retry_cap_s=0.01)
PUBLIC = page("Heat pumps in public", "Heat pumps work in cold climates, field trials show.")
PRIVATE = page("Members only", "Internal notes on heat pump pricing.")


def robots(text: str, status: int = 200, **kw) -> Reply:
    return Reply(status, text, {"Content-Type": "text/plain"}, **kw)


def honouring(**limits) -> WebFetcher:
    """The fetcher a run gets: web_backend with robots.txt honoured."""
    backend = web_backend(None, ignore_robots=False, **{**FAST, **limits})
    assert isinstance(backend, WebFetcher) and backend.honours_robots
    return backend


def site_with(rules: Reply) -> Site:
    return Site({"/robots.txt": rules, "/public/page": html(PUBLIC), "/private/page": html(PRIVATE),
                 "/private/other": html(PRIVATE), "/jump": Reply(302, "", {"Location": "/private/page"})})


def test_a_disallowed_page_is_skipped_with_the_reason_and_the_hint_and_never_requested():
    site = site_with(robots("User-agent: *\nDisallow: /private/\n"))
    with serve(site) as server:
        ok, skipped = fetch_all([f"{server.url}/public/page", f"{server.url}/private/page"], honouring())
    assert ok.title == "Heat pumps in public"
    host = server.url.removeprefix("http://")
    assert isinstance(skipped, SourceError) and not skipped.retryable
    assert skipped.message == (f"{server.url}/private/page: skipped: robots.txt of {host} disallows it; "
                               "pass --ignore-robots to read it anyway")
    assert site.hits["/private/page"] == 0  # skipped before asking
    assert [r.headers["user-agent"] for r in server.requests if r.path == "/robots.txt"] == [USER_AGENT]


def test_robots_txt_is_read_once_per_site_however_many_pages_are_read_at_once():
    site = site_with(robots("User-agent: *\nDisallow: /private/\n", delay=0.3))
    urls = [f"/public/page?n={i}" for i in range(6)] + ["/private/page", "/private/other"]
    with serve(site) as server:
        results = fetch_all([server.url + u for u in urls], honouring())
    assert site.hits["/robots.txt"] == 1
    assert sum(isinstance(r, SourceError) for r in results) == 2
    assert site.hits["/public/page"] == 6


def test_rules_for_our_user_agent_win_over_the_catch_all():
    rules = "User-agent: durable-research\nDisallow: /public/\n\nUser-agent: *\nDisallow: /private/\n"
    with serve(site_with(robots(rules))) as server:
        public, private = fetch_all([f"{server.url}/public/page", f"{server.url}/private/page"], honouring())
    assert isinstance(public, SourceError) and "robots.txt" in public.message
    assert private.title == "Members only"


def test_disallow_all_skips_every_page_but_allow_all_reads_them():
    with serve(site_with(robots("User-agent: *\nDisallow: /\n"))) as server:
        (blocked,) = fetch_all([f"{server.url}/public/page"], honouring())
    assert isinstance(blocked, SourceError) and "disallows it" in blocked.message
    with serve(site_with(robots("User-agent: *\nDisallow:\n"))) as server:
        (read,) = fetch_all([f"{server.url}/private/page"], honouring())
    assert read.title == "Members only"


def test_only_the_url_asked_for_is_checked_not_where_it_redirects():
    # The site itself sends us there; robots.txt speaks for what we ask, as RFC 9309 crawlers do.
    with serve(site_with(robots("User-agent: *\nDisallow: /private/\n"))) as server:
        (doc,) = fetch_all([f"{server.url}/jump"], honouring())
    assert doc.title == "Members only" and doc.final_url == f"{server.url}/private/page"


@pytest.mark.parametrize("reply", [
    robots("gone", status=404), robots("no", status=403), robots("oops", status=500), robots("busy", status=503),
    Reply(drop=True), robots("User-agent: *\nDisallow: /\n", delay=30.0),
], ids=["404", "403", "500", "503", "dropped", "timeout"])
def test_a_robots_txt_that_cannot_be_read_allows_every_page(reply):
    site = site_with(reply)
    with serve(site) as server:
        started = time.monotonic()
        (doc,) = fetch_all([f"{server.url}/private/page"], honouring(timeout_s=0.5))
        took = time.monotonic() - started
    assert doc.title == "Members only"
    assert site.hits["/robots.txt"] == 1 and site.hits["/private/page"] == 1
    assert took < 15  # a hanging robots.txt (30 s) costs at most one timeout, not the run


def test_a_missing_robots_txt_on_a_site_that_defines_none_allows_all():
    site = Site({"/private/page": html(PRIVATE)})
    with serve(site) as server:
        (doc,) = fetch_all([f"{server.url}/private/page"], honouring())
    assert doc.title == "Members only"
    assert site.robots_hits == 1 and [r.path for r in server.requests] == ["/robots.txt", "/private/page"]


def test_ignore_robots_reads_the_page_without_asking_for_robots_txt():
    site = site_with(robots("User-agent: *\nDisallow: /\n"))
    with serve(site) as server:
        backend = web_backend(None, ignore_robots=True, **FAST)
        assert isinstance(backend, WebFetcher) and not backend.honours_robots
        (doc,) = fetch_all([f"{server.url}/private/page"], backend)
    assert doc.title == "Members only"
    assert site.hits["/robots.txt"] == 0


def test_callers_that_do_not_say_keep_the_fetcher_as_it_was():
    # Like trusted_hosts=None: a caller from before robots.txt support does not change behaviour
    # until it passes ignore_robots; a bare WebFetcher does not consult robots.txt either.
    assert not web_backend(None).honours_robots
    assert not WebFetcher().honours_robots
    assert web_backend(None, ignore_robots=False).honours_robots


def test_robots_allows_answers_for_a_url_and_reads_robots_txt_once():
    site = site_with(robots("User-agent: *\nDisallow: /private/\n"))
    with serve(site) as server:
        fetcher = WebFetcher(FetchLimits(**FAST))

        async def go():
            try:
                return [await robots_allows(fetcher, server.url + p)
                        for p in ("/public/page", "/private/page", "/private/other", "/")]
            finally:
                await fetcher.aclose()

        answers = asyncio.run(go())
    assert answers == [True, False, False, True]
    assert site.hits["/robots.txt"] == 1 and site.hits["/public/page"] == 0  # robots.txt only


def test_a_robots_record_round_trips_as_json_and_can_be_handed_to_a_fetcher():
    # A pipeline can make the robots.txt read a durable step: store to_json(), remember() on replay.
    record = Robots("http://wiki.example", 200, "User-agent: *\nDisallow: /drafts/\n")
    again = Robots.from_json(record.to_json())
    assert again == record and again.has_rules
    assert not again.allows("http://wiki.example/drafts/x", USER_AGENT)
    assert again.allows("http://wiki.example/pages/x", USER_AGENT)
    assert Robots("http://wiki.example", 404, note="HTTP 404").allows("http://wiki.example/drafts/x", USER_AGENT)

    loads = []

    async def load(site):
        loads.append(site)
        return Robots(site, 200, "User-agent: *\nDisallow: /\n")

    cache = RobotsCache(load)
    cache.remember(record)

    async def go():
        return await cache.get("http://wiki.example"), await cache.get("http://other.example")

    remembered, loaded = asyncio.run(go())
    assert remembered is record and loads == ["http://other.example"] and not loaded.allows("http://other.example/a", USER_AGENT)


def test_a_loader_that_fails_allows_and_origins_keep_scheme_and_port():
    async def broken(site):
        raise RuntimeError("boom")

    cache = RobotsCache(broken)
    result = asyncio.run(cache.get("https://a.example"))
    assert result.allows("https://a.example/x", USER_AGENT) and "RuntimeError" in result.note
    assert origin("HTTPS://A.Example:8443/path?q=1") == "https://a.example:8443"
    assert origin("http://a.example/") != origin("https://a.example/")
