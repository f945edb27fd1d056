"""A loopback server speaking Firecrawl's v2 API (``POST /v2/scrape``, ``POST /v2/search``) for firecrawl-py.

Pages and search results are scripted per URL and per query; ``failures`` queues error replies (status,
JSON body, headers) that are served, one per request, before the normal answers, so retries can be
watched over the real SDK. With ``api_key`` set, a request without ``Authorization: Bearer KEY`` gets the
401 Firecrawl gives for a bad key.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tests.servers import Reply, Request


@dataclass
class FakePage:
    markdown: str
    title: str = ""
    status: int = 200  # the status the *target site* answered, as Firecrawl reports it
    error: str | None = None


@dataclass
class FakeFirecrawl:
    api_key: str | None = None
    pages: dict[str, FakePage] = field(default_factory=dict)
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[Reply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def fail_next(self, *replies: Reply) -> None:
        with self._lock:
            self.failures.extend(replies)

    def __call__(self, request: Request) -> Reply:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"success": False, "error": "Unauthorized: Invalid token"})
        with self._lock:
            if self.failures:
                return self.failures.pop(0)
        body = request.json() or {}
        if request.method == "POST" and request.path == "/v2/scrape":
            return self._scrape(body)
        if request.method == "POST" and request.path == "/v2/search":
            return self._search(body)
        return Reply(404, {"success": False, "error": f"Cannot {request.method} {request.path}"})

    def _scrape(self, body: dict[str, Any]) -> Reply:
        url = body.get("url", "")
        page = self.pages.get(url)
        if page is None:
            page = FakePage("# Not Found\n\nThis page does not exist.", title="Not Found", status=404,
                            error="Page returned 404")
        metadata = {"title": page.title, "sourceURL": url, "url": url, "statusCode": page.status,
                    "contentType": "text/html; charset=utf-8", "scrapeId": "scrape-1", "creditsUsed": 1,
                    "proxyUsed": "basic", "cacheState": "miss"}
        if page.error:
            metadata["error"] = page.error
        return Reply(200, {"success": True, "data": {"markdown": page.markdown, "metadata": metadata}})

    def _search(self, body: dict[str, Any]) -> Reply:
        hits = self.results.get(body.get("query", ""), [])[: int(body.get("limit") or 5)]
        web = [{"url": h["url"], "title": h.get("title", ""), "description": h.get("description", ""),
                "position": i + 1} for i, h in enumerate(hits)]
        return Reply(200, {"success": True, "data": {"web": web}, "creditsUsed": 2, "id": "search-1"})
