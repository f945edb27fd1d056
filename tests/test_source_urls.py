"""URL checking, normalization and URL lists, and what scrape and search step keys are made of."""

from __future__ import annotations

import pytest

from agent.errors import UsageError
from agent.sources.backend import FetchLimits
from agent.sources.firecrawl import FirecrawlBackend
from agent.sources.scrape import scrape_spec, search_spec
from agent.sources.urls import check_url, dedupe, file_url_path, normalize_url, read_urls_file
from agent.sources.web import WebFetcher


@pytest.mark.parametrize("given,expected", [
    ("HTTP://Example.COM:80/a/b?z=1&a=2#section", "http://example.com/a/b?a=2&z=1"),
    ("https://example.com:443", "https://example.com/"),
    ("https://example.com:8443/x", "https://example.com:8443/x"),
    ("https://example.com/p?utm_source=mail&utm_campaign=x&id=3&fbclid=abc", "https://example.com/p?id=3"),
    ("https://example.com/p?b=&a=1", "https://example.com/p?a=1&b="),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("  https://example.com/Path  ", "https://example.com/Path"),  # paths are case-sensitive
])
def test_normalize_url(given, expected):
    assert normalize_url(given) == expected


@pytest.mark.parametrize("bad,words", [
    ("example.com", "did you mean https://example.com?"),
    ("ftp://example.com/file", "not an http, https or file URL"),
    ("mailto:someone@example.com", "not an http, https or file URL"),
    ("https://", "has no host name"),
    ("http://example.com:notaport/", "not a valid URL"),
])
def test_check_url_refuses_what_cannot_be_read(bad, words):
    with pytest.raises(UsageError) as info:
        check_url(bad)
    assert words in info.value.one_line() and "\n" not in info.value.one_line()


def test_file_urls():
    assert check_url("file:///tmp/notes.md") == "file:///tmp/notes.md"
    assert file_url_path("file:///tmp/field%20notes.md") == "/tmp/field notes.md"
    assert file_url_path("file://localhost/tmp/a.md") == "/tmp/a.md"
    with pytest.raises(UsageError, match="another machine"):
        file_url_path("file://server/share/a.md")


def test_dedupe_keeps_the_first_spelling_in_order():
    urls = ["https://b.example/x", "https://a.example/y?utm_medium=z", "HTTPS://A.EXAMPLE/y#top",
            "https://b.example/x", "file:///tmp/a.md", "file:///tmp/a.md"]
    assert dedupe(urls) == ["https://b.example/x", "https://a.example/y?utm_medium=z", "file:///tmp/a.md"]


def test_read_urls_file_skips_blank_lines_and_comments(tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text("\ufeff# heat pumps\nhttps://a.example/1\n\n   \n  https://b.example/2  \n# done\n",
                       encoding="utf-8")
    assert read_urls_file(str(listing)) == ["https://a.example/1", "https://b.example/2"]
    with pytest.raises(UsageError, match="no such file"):
        read_urls_file(str(tmp_path / "missing.txt"))


def test_scrape_keys_follow_the_normalized_url_and_the_backend_never_the_limits():
    web = WebFetcher()
    same = scrape_spec(web, "HTTPS://Example.com:443/a?b=1&a=2&utm_source=x#frag")
    assert same.key == scrape_spec(WebFetcher(FetchLimits(timeout_s=1, max_retries=0)), "https://example.com/a?a=2&b=1").key
    assert same.key != scrape_spec(web, "https://example.com/a?a=2&b=3").key
    assert same.request["url"] == "https://example.com/a?a=2&b=1" and same.request["reader"] >= 1
    here = FirecrawlBackend(api_url="http://127.0.0.1:3002", api_key="fc-secret0123456789abcd")
    there = FirecrawlBackend(api_url="http://10.0.0.5:3002", api_key="fc-secret0123456789abcd")
    other_key = FirecrawlBackend(api_url="http://127.0.0.1:3002", api_key="fc-other01234567890abcd")
    url = "https://example.com/a"
    assert len({scrape_spec(web, url).key, scrape_spec(here, url).key, scrape_spec(there, url).key}) == 3
    assert scrape_spec(here, url).key == scrape_spec(other_key, url).key
    assert "fc-secret" not in repr(scrape_spec(here, url).request) + scrape_spec(here, url).endpoint
    assert scrape_spec(here, url).request["formats"] == ["markdown"]


def test_search_keys_follow_the_normalized_query_and_the_limit():
    fc = FirecrawlBackend(api_url="http://127.0.0.1:3002")
    spec = search_spec(fc, "  heat   pumps\tcold ", 3)
    assert spec.kind == "search" and spec.request["query"] == "heat pumps cold"
    assert spec.key == search_spec(fc, "heat pumps cold", 3).key
    assert spec.key != search_spec(fc, "heat pumps cold", 5).key
