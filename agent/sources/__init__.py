"""Where research material comes from: local files, web pages, web search.

Every reader returns a :class:`Document` (JSON-able) and raises :class:`~agent.errors.SourceError` on a
source it cannot read; the pipelines make each read a durable ``scrape`` step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Document:
    """A source's readable text, as Markdown where structure survives, and where it came from.

    ``title`` is the document's own (a page's title without its site's name, a PDF's title), ``site``
    the name of the site it is on. The provenance fields are empty where unknown: ``final_url`` is
    the address the page was read at after redirects, ``fetched_at`` when (ISO 8601, UTC), and
    ``author`` and ``published`` (an ISO date) what the document says of itself.
    """

    uri: str
    title: str
    text: str
    content_type: str = "text/markdown"
    site: str = ""
    final_url: str = ""
    fetched_at: str = ""
    author: str = ""
    published: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Document":
        """A document from :meth:`to_json`'s output, including that of releases with fewer fields (they
        are left empty) or more (they are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: ("" if v is None and k != "uri" else v) for k, v in data.items() if k in known}
        return cls(**{"title": "", "text": "", **values})
