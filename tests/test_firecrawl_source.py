"""Firecrawl through the real firecrawl-py SDK, against a loopback server speaking its v2 API."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import SourceError
from agent.sources.backend import FetchLimits, SourceAuthError, web_backend
from agent.sources.firecrawl import FirecrawlBackend
from agent.sources.web import WebFetcher
from tests.servers import Reply, serve
from tests.servers.firecrawl import FakeFirecrawl, FakePage

KEY = "fc-test0123456789abcdef"
URL = "https://example.com/heat-pumps"
FAST = dict(timeout_s=5.0, max_retries=3, retry_cap_s=0.01)


def backend_for(server, **kw) -> FirecrawlBackend:
    limits = FetchLimits(**{**FAST, **kw.pop("limits", {})})
    return FirecrawlBackend(limits, api_url=server.url, **kw)


def call(backend, method: str, *args):
    async def go():
        try:
            return await getattr(backend, method)(*args)
        except SourceError as exc:
            return exc
        finally:
            await backend.aclose()

    return asyncio.run(go())


def fake(**kw) -> FakeFirecrawl:
    return FakeFirecrawl(api_key=KEY, pages={URL: FakePage("# Heat pumps\n\nThey work at minus fifteen.", title="Heat pumps")}, **kw)


def test_scrape_returns_markdown_and_sends_the_v2_request():
    with serve(fake()) as server:
        doc = call(backend_for(server, api_key=KEY), "scrape", URL)
    assert doc.uri == URL and doc.title == "Heat pumps"
    assert doc.text == "# Heat pumps\n\nThey work at minus fifteen."
    (request,) = server.requests
    assert request.method == "POST" and request.path == "/v2/scrape"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.json()
    assert body["url"] == URL and body["formats"] == ["markdown"] and body["onlyMainContent"] is True


def test_max_age_is_passed_on_to_firecrawls_own_cache():
    with serve(fake()) as server:
        call(backend_for(server, api_key=KEY, max_age=12 * 3600), "scrape", URL)
    assert server.requests[0].json()["maxAge"] == 12 * 3600 * 1000


def test_search_returns_hits():
    results = {"heat pumps cold": [
        {"url": "https://a.example/one", "title": "One", "description": "First result"},
        {"url": "https://b.example/two", "title": "Two", "description": "Second result"},
        {"url": "https://c.example/three", "title": "Three", "description": "Third result"},
    ]}
    with serve(fake(results=results)) as server:
        hits = call(backend_for(server, api_key=KEY), "search", "heat pumps cold", 2)
    assert [(h.url, h.title, h.snippet) for h in hits] == [
        ("https://a.example/one", "One", "First result"), ("https://b.example/two", "Two", "Second result")]
    body = server.requests[0].json()
    assert server.requests[0].path == "/v2/search" and body["query"] == "heat pumps cold" and body["limit"] == 2


def test_self_hosted_firecrawl_needs_no_key_and_is_chosen_by_its_url(monkeypatch):
    with serve(FakeFirecrawl(pages={URL: FakePage("Self-hosted text about heat pumps.")})) as server:
        monkeypatch.setenv("FIRECRAWL_API_URL", server.url + "/")
        backend = web_backend(None)
        assert isinstance(backend, FirecrawlBackend) and backend.endpoint == server.url
        doc = call(backend, "scrape", URL)
    assert doc.text == "Self-hosted text about heat pumps."
    assert "authorization" not in server.requests[0].headers


def test_without_firecrawl_configured_the_builtin_fetcher_is_used():
    assert isinstance(web_backend(None), WebFetcher)


def test_401_is_one_clear_line_naming_the_key_and_is_not_retried():
    with serve(fake()) as server:
        err = call(backend_for(server, api_key="fc-wrongwrongwrongwrong"), "scrape", URL)
    assert isinstance(err, SourceAuthError) and err.fatal and not err.retryable
    assert "FIRECRAWL_API_KEY" in err.one_line() and "401" in err.one_line()
    assert "\n" not in err.one_line()
    assert len(server.requests) == 1


def test_429_is_retried_by_our_policy():
    server_app = fake()
    server_app.fail_next(Reply(429, {"success": False, "error": "Rate limit exceeded"}, {"Retry-After": "0"}))
    with serve(server_app) as server:
        doc = call(backend_for(server, api_key=KEY), "scrape", URL)
    assert doc.title == "Heat pumps"
    assert len(server.requests) == 2


def test_500_is_retried_then_succeeds():
    server_app = fake()
    server_app.fail_next(*[Reply(500, {"success": False, "error": "Internal error"})] * 2)
    with serve(server_app) as server:
        doc = call(backend_for(server, api_key=KEY), "scrape", URL)
    assert doc.title == "Heat pumps"
    assert len(server.requests) == 3


def test_persistent_500_fails_after_the_retries():
    server_app = fake()
    server_app.fail_next(*[Reply(500, {"success": False, "error": "Internal error"})] * 10)
    with serve(server_app) as server:
        err = call(backend_for(server, api_key=KEY, limits={"max_retries": 2}), "scrape", URL)
    assert isinstance(err, SourceError) and err.retryable and err.status == 500
    assert len(server.requests) == 3


def test_search_errors_are_mapped_too():
    server_app = fake()
    server_app.fail_next(Reply(500, {"success": False, "error": "Search backend down"}),
                         Reply(400, {"success": False, "error": "Bad query"}))
    with serve(server_app) as server:
        err = call(backend_for(server, api_key=KEY), "search", "anything", 3)
    assert isinstance(err, SourceError) and not err.retryable and "Bad query" in err.message
    assert len(server.requests) == 2  # the 500 was retried, the 400 was not


def test_a_page_the_target_site_404s_is_a_failure():
    with serve(fake()) as server:
        err = call(backend_for(server, api_key=KEY), "scrape", "https://example.com/missing")
    assert isinstance(err, SourceError) and err.status == 404 and not err.retryable
    assert "HTTP 404" in err.message
    assert len(server.requests) == 1


@pytest.mark.parametrize("markdown", ["", "   \n"])
def test_an_empty_scrape_is_a_failure(markdown):
    app = FakeFirecrawl(pages={URL: FakePage(markdown, title="Empty")})
    with serve(app) as server:
        err = call(backend_for(server), "scrape", URL)
    assert isinstance(err, SourceError) and "no readable text" in err.message


def test_a_self_hosted_firecrawl_asking_for_a_key_says_the_key_is_not_set():
    with serve(fake()) as server:
        err = call(backend_for(server), "search", "heat pumps", 3)
    assert isinstance(err, SourceAuthError)
    assert "FIRECRAWL_API_KEY is not set" in err.one_line()
