"""Where research material comes from: local files, web pages, web search.

Every reader returns a :class:`Document` (JSON-able) and raises :class:`~agent.errors.SourceError` on a
source it cannot read; the pipelines make each read a durable ``scrape`` step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Document:
    """A source's readable text, as Markdown where structure survives."""

    uri: str
    title: str
    text: str
    content_type: str = "text/markdown"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Document":
        return cls(**{k: data[k] for k in ("uri", "title", "text", "content_type") if k in data})
