"""The durable scrape and search steps: a page or a search is paid for once, then replayed.

A scrape is keyed by the *normalized* URL (see :mod:`agent.sources.urls`) and what changes its result:
the backend and its endpoint, its formats and its reader version. A search is keyed by the normalized
query, the result limit and the backend. Timeouts, retries and API keys are never part of a key.

Both honour ``max_age``: a stored result older than that is fetched again (a run's journal still
replays what that run saw, whatever its age). A page fetched again whose text did not change gives the
same document, so the model steps downstream, keyed by content, replay for free.
"""

from __future__ import annotations

import datetime as _dt

from agent.errors import SourceError
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


#: How long a lasting failure is remembered when the run sets no ``max_age``.
REMEMBER_FAILURE_S = 3600.0
_LASTING = ("could not be resolved", "no readable text", "unsupported content type", "the page is empty",
            "not a PDF", "is not text")  # robots.txt refusals are not remembered: --ignore-robots must work at once


def lasting(exc: BaseException) -> bool:
    """A failure that will not change soon: a 404 or 410, an unknown host, a page that is no document.

    Timeouts, 5xx, refused connections and dropped ones are not: they are tried again next time.
    """
    if not isinstance(exc, SourceError) or exc.retryable or getattr(exc, "fatal", False):
        return False
    return exc.status in (404, 410) or any(marker in exc.message for marker in _LASTING)


def _failure_key(spec: StepSpec) -> str:
    return f"{spec.key}!failed"


async def scrape(runtime: Runtime, backend: WebBackend, url: str, *, max_age: float | None = None,
                 retry_failed: bool = False) -> Document:
    """The document at ``url``, replayed or fetched through ``backend`` as a durable step.

    A lasting failure (see :func:`lasting`) is remembered for ``max_age`` (an hour without one), so a
    rerun neither waits for nor pays (Firecrawl credits) for a page that is gone; ``retry_failed`` tries
    it anyway. Only fetches are remembered this way; a model call's failure never is.
    """
    spec = scrape_spec(backend, url, max_age=max_age)
    remember = max_age if max_age else REMEMBER_FAILURE_S
    if not retry_failed and runtime.lookup(spec) is None:
        failure = runtime.store.get(_failure_key(spec), max_age=remember)
        if failure is not None:
            when = _dt.datetime.fromtimestamp(failure["stored_at"], tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            raise SourceError(f"{failure['value']['error']} (failed earlier at {when}, not retried; "
                              "pass --retry-failed to try again)", source=url)

    async def work() -> Paid:
        doc = await backend.scrape(url)
        return Paid(doc.to_json(), cost_usd=0.0)

    try:
        result = await runtime.step(spec, work)
    except SourceError as exc:
        if lasting(exc):
            runtime.store.put(_failure_key(spec), {"error": exc.message, "status": exc.status}, kind="failure")
        raise
    return Document.from_json(result.value)


async def search(runtime: Runtime, backend: WebBackend, query: str, limit: int, *,
                 max_age: float | None = None) -> list[SearchHit]:
    """The top ``limit`` web results for ``query``, replayed or searched as a durable step."""

    async def work() -> Paid:
        hits = await backend.search(normalize_query(query), limit)
        return Paid([hit.to_json() for hit in hits], cost_usd=0.0)

    result = await runtime.step(search_spec(backend, query, limit, max_age=max_age), work)
    return [SearchHit.from_json(item) for item in result.value]
