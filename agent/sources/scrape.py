"""The durable scrape and search steps: a page or a search is paid for once, then replayed.

A scrape is keyed by the *normalized* URL (see :mod:`agent.sources.urls`) and what changes its result:
the backend and its endpoint, its formats and its reader version. A search is keyed by the normalized
query, the result limit and the backend. Timeouts, retries and API keys are never part of a key.

Both honour ``max_age``: a stored result older than that is fetched again (a run's journal still
replays what that run saw, whatever its age). A page fetched again whose text did not change gives the
same document, so the model steps downstream, keyed by content, replay for free.
"""

from __future__ import annotations

from agent.sources import Document
from agent.sources.backend import SearchHit, WebBackend
from agent.sources.urls import normalize_url
from agent.steps import Paid, Runtime, StepSpec


def normalize_query(query: str) -> str:
    return " ".join(query.split())


def scrape_spec(backend: WebBackend, url: str, *, max_age: float | None = None) -> StepSpec:
    normalized = normalize_url(url)
    return StepSpec(kind="scrape", name=f"scrape {normalized}"[:200], provider=backend.name,
                    endpoint=backend.endpoint, request={"url": normalized, **backend.key_options()},
                    max_age=max_age)


def search_spec(backend: WebBackend, query: str, limit: int, *, max_age: float | None = None) -> StepSpec:
    query = normalize_query(query)
    return StepSpec(kind="search", name=f"search {query}"[:200], provider=backend.name, endpoint=backend.endpoint,
                    request={"query": query, "limit": int(limit), **backend.key_options()}, max_age=max_age)


async def scrape(runtime: Runtime, backend: WebBackend, url: str, *, max_age: float | None = None) -> Document:
    """The document at ``url``, replayed or fetched through ``backend`` as a durable step."""

    async def work() -> Paid:
        doc = await backend.scrape(url)
        return Paid(doc.to_json(), cost_usd=0.0)

    result = await runtime.step(scrape_spec(backend, url, max_age=max_age), work)
    return Document.from_json(result.value)


async def search(runtime: Runtime, backend: WebBackend, query: str, limit: int, *,
                 max_age: float | None = None) -> list[SearchHit]:
    """The top ``limit`` web results for ``query``, replayed or searched as a durable step."""

    async def work() -> Paid:
        hits = await backend.search(normalize_query(query), limit)
        return Paid([hit.to_json() for hit in hits], cost_usd=0.0)

    result = await runtime.step(search_spec(backend, query, limit, max_age=max_age), work)
    return [SearchHit.from_json(item) for item in result.value]
