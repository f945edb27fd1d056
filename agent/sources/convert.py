"""Turning bytes into readable text: HTML main content, PDF text, plain text and Markdown.

HTML goes through trafilatura, which keeps the article and drops navigation, footers and cookie
banners; PDFs through pypdf. Both are imported on first use: they are heavy and most runs need one.
"""

from __future__ import annotations

import io
import re

from agent.errors import SourceError

TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
HTML_TYPES = ("text/html", "application/xhtml+xml")
PDF_TYPES = ("application/pdf",)


def title_from_markdown(text: str, fallback: str) -> str:
    for line in text.splitlines():
        match = re.match(r"^#{1,3}\s+(.+?)\s*#*$", line.strip())
        if match:
            return match.group(1)
    return fallback


def html_to_markdown(html: str | bytes, url: str = "") -> tuple[str, str]:
    """The main content of an HTML page as Markdown, and its title."""
    import trafilatura

    text = trafilatura.extract(
        html, url=url or None, output_format="markdown", include_comments=False, include_tables=True,
        favor_precision=True, with_metadata=False,
    ) or ""
    title = ""
    try:
        meta = trafilatura.extract_metadata(html, default_url=url or None)
        title = (meta.title if meta else "") or ""
    except Exception:  # metadata is a nicety; a page without it is still a page
        title = ""
    return text.strip(), title.strip()


def pdf_to_text(data: bytes, source: str) -> tuple[str, str]:
    """The text of a PDF, page by page, and its title (from its metadata, if any)."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "")
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"{source}: not a readable PDF ({exc})", source=source) from exc
    return "\n\n".join(p for p in pages if p), title


def to_text(data: bytes, content_type: str, source: str) -> tuple[str, str]:
    """Text and title from ``data`` of ``content_type``; raises :class:`SourceError` for anything else."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in PDF_TYPES or data[:5] == b"%PDF-":
        return pdf_to_text(data, source)
    if ctype in HTML_TYPES:
        return html_to_markdown(data, source)
    if ctype in TEXT_TYPES or ctype.startswith("text/"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        return text, ""
    raise SourceError(f"{source}: unsupported content type {ctype or 'unknown'}", source=source)
