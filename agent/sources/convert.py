"""Turning bytes into readable text: HTML main content, PDF text, plain text and Markdown.

HTML goes through trafilatura, which keeps the article and drops navigation, footers and cookie
banners, with the settings :data:`EXTRACTION` that ``bench/bench_extraction.py`` chose on 65 real pages;
PDFs through pypdf (with fontTools, which it needs to read the encodings of embedded CFF fonts: without
it apostrophes and other characters vanish). Both are imported on first use: they are heavy and most
runs need one. Their log messages ("fontTools is required", "discarding data") go to this module's
debug log, never to the terminal (see :func:`quiet_libraries`).

Every text is cleaned the same way (:func:`clean_text`): no control characters or NUL (tab and newline
stay; the C1 codes a Windows-1252 text shows when read as Latin-1 become the characters they stood for,
so a ``0x92`` is an apostrophe again), and runs of blank lines become one. A PDF's text also loses the
hyphens of words broken at line ends (:func:`join_hyphenated`).

:func:`convert` returns a :class:`Converted` with the title and what the page says of itself (site,
author, date); :func:`to_text` is its older ``(text, title)`` form. Both are plain functions of bytes,
so a caller on an event loop runs them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import io
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

from agent.errors import SourceError

TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
HTML_TYPES = ("text/html", "application/xhtml+xml")
PDF_TYPES = ("application/pdf",)

#: The trafilatura settings of every HTML conversion, chosen by measurement (``bench/bench_extraction.py``,
#: table in ``bench/README.md``): the balanced default keeps what ``favor_precision`` dropped (an
#: interview's questions, "Additional reporting by ...") and lets no more boilerplate through;
#: comments, printed under their own heading, hold content the corpus expects. Dropping bold and
#: italic markers (``keep_emphasis=False``) scored the same, so the Markdown stays as trafilatura writes it.
EXTRACTION: dict[str, Any] = {
    "favor_precision": False, "favor_recall": False, "include_comments": True, "include_tables": True,
    "include_links": False, "keep_emphasis": True,
}
#: The heading put between a page's text and its readers' comments, so no model takes one for the other.
COMMENTS_HEADING = "## Comments"

log = logging.getLogger(__name__)

# -- library logs ------------------------------------------------------------------------------------

#: Libraries whose log records are theirs to explain, not ours to show: pypdf warns once per font it
#: cannot fully parse (1,412 lines for one PDF), trafilatura on every page it finds nothing in.
QUIET_LOGGERS = ("pypdf", "fontTools", "trafilatura", "htmldate", "courlan", "justext", "readability")
_quiet_lock = threading.Lock()
_quieted = False


class _ToDebug(logging.Handler):
    """Passes a library's records on as debug records of this module, whatever their level."""

    def emit(self, record: logging.LogRecord) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return  # formatting pypdf's messages (each holds a whole font dictionary) costs time
        try:
            message = record.getMessage()
        except Exception:  # a library's malformed record must not break a conversion
            message = str(record.msg)
        log.debug("%s: %s", record.name, message)


def quiet_libraries() -> None:
    """Route the converters' own log records to this module's debug log (``--debug`` shows them).

    Without a handler of their own, their warnings reach Python's last-resort handler, which prints
    them on stderr in the middle of a run's progress display. Idempotent and thread-safe.
    """
    global _quieted
    if _quieted:
        return
    with _quiet_lock:
        for name in QUIET_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(h, _ToDebug) for h in logger.handlers):
                logger.addHandler(_ToDebug())
            logger.propagate = False
        _quieted = True


# -- cleaning ----------------------------------------------------------------------------------------

def _c1_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in range(0x80, 0xA0):
        try:
            table[code] = bytes([code]).decode("cp1252")
        except UnicodeDecodeError:
            table[code] = None  # five codes Windows-1252 leaves undefined
    return table


# Control characters go; tab and newline stay; form feed, vertical tab and the Unicode line and
# paragraph separators are line breaks. Soft hyphens, zero-width spaces and stray byte order marks
# are invisible, but split the words a reader (or a phrase search) would see.
_CLEAN = {
    **{c: None for c in range(0x20) if c not in (0x09, 0x0A, 0x0B, 0x0C)},
    0x0B: "\n", 0x0C: "\n", 0x7F: None, 0x2028: "\n", 0x2029: "\n\n",
    0xAD: None, 0x200B: None, 0xFEFF: None,
    **_c1_table(),
}
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """``text`` without control characters, composed (NFC: a ``u`` and a combining diaeresis are one
    ``ü``), with ``\\n`` line ends and at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n").translate(_CLEAN))
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUN.sub("\n\n", text).strip()


_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                            "\ufb05": "st", "\ufb06": "st"})
_LETTERS = r"[^\W\d_]+"
# A word, a hyphen at the end of its line, and a word at the start of the next.
_BROKEN = re.compile(rf"(?P<left>{_LETTERS})(?P<hyphen>[-\u2010\u00ad])[ \t]*\n[ \t]*(?P<right>{_LETTERS})")
_COMPOUND = re.compile(rf"{_LETTERS}[-\u2010]{_LETTERS}")
_WORD = re.compile(_LETTERS)


def join_hyphenated(text: str) -> str:
    """Words a PDF broke at line ends, whole again: ``adip-\\niscing`` becomes ``adipiscing``.

    A hyphen at a line end is usually typesetting, but sometimes a compound's own hyphen. Decided so:
    a soft hyphen always goes; before a capital (``Hewlett-\\nPackard``, ``anti-\\nAmerican``) the
    hyphen stays and only the line break goes; before a lowercase letter the hyphen goes too, unless
    the document itself writes that word with a hyphen elsewhere and never without (``well-\\nknown``
    in a text that also says ``well-known``).
    """
    compounds = {m.group(0).lower().replace("\u2010", "-") for m in _COMPOUND.finditer(text)}
    words = {m.group(0).lower() for m in _WORD.finditer(text)}

    def join(match: re.Match[str]) -> str:
        left, hyphen, right = match.group("left"), match.group("hyphen"), match.group("right")
        if hyphen == "\u00ad":
            return left + right
        if right[0].isupper():
            return f"{left}-{right}"
        whole = (left + right).lower()
        if f"{left}-{right}".lower() in compounds and whole not in words:
            return f"{left}-{right}"
        return left + right

    return _BROKEN.sub(join, text)


def clean_pdf_text(text: str) -> str:
    """A PDF's extracted text cleaned: :func:`clean_text`, ligatures spelled out, hyphenation undone."""
    return clean_text(join_hyphenated(clean_text(text.translate(_LIGATURES))))


# -- results -----------------------------------------------------------------------------------------

@dataclass
class Converted:
    """A document's text and what it says about itself; empty strings where it says nothing."""

    text: str
    title: str = ""
    site: str = ""
    author: str = ""
    published: str = ""  # an ISO date (2024-03-01) or date and time, as precise as the source gives it


def title_from_markdown(text: str, fallback: str) -> str:
    for line in text.splitlines():
        match = re.match(r"^#{1,3}\s+(.+?)\s*#*$", line.strip())
        if match:
            return match.group(1)
    return fallback


def _first_line_title(text: str) -> str:
    """A text's first line, if it reads as a title: short, with letters, not a sentence."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if not line:
            continue
        if 3 <= len(line) <= 120 and re.search(r"[^\W\d_]", line) and not line.endswith((".", ",", ";", ":")):
            return line
        return ""
    return ""


# -- HTML --------------------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"\s+(?:[|\-\u2013\u2014\u00b7\u2022\u00bb\u00ab\u203a\u2039:/]|::)\s+")
_MOUNT_IDS = ("root", "app", "__next", "__nuxt", "___gatsby", "svelte", "main-app", "application")
_INVISIBLE = ("script", "style", "noscript", "template", "svg")
#: Below this many characters of text outside scripts, a page that has scripts is a script's shell.
_SHELL_TEXT = 200


def _squash(text: str | None) -> str:
    return " ".join((text or "").split())


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _site_names(site: str, url: str) -> set[str]:
    """Spellings of a site's name a title may carry: ``CHIP Online``, ``chip.de``, ``chip``."""
    import ipaddress
    from urllib.parse import urlsplit

    names = {_alnum(site)} if site else set()
    host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    if host:
        names.add(_alnum(host))
        try:
            ipaddress.ip_address(host)
        except ValueError:
            labels = host.split(".")
            if len(labels) >= 2:
                names.add(_alnum(labels[-2]))
    names.discard("")
    return names


def _words(text: str) -> list[str]:
    return [w for w in (_alnum(w) for w in text.split()) if w]


def _is_site(part: str, names: set[str], site: str = "", *, suffix: bool = False) -> bool:
    key = _alnum(part)
    if not key:
        return False
    if key in names:
        return True
    # The first words of the site's name: "CHIP" for "CHIP Online" (but not "The" for "The Guardian").
    words, site_words = _words(part), _words(site)
    if len(key) >= 4 and words and words == site_words[:len(words)]:
        return True
    # After the title, a short part holding the host's name is its publisher: "- Stadt Stuttgart" on
    # stuttgart.de, "| Kanzlei Viehbacher" on viehbacher.com.
    return suffix and len(words) <= 4 and any(len(name) >= 5 and name in key for name in names)


def strip_site(title: str, site: str, url: str = "") -> str:
    """``title`` without the site's name before or after it: ``Heat pumps | Example News`` -> ``Heat pumps``.

    Only a part that is the site's name (its ``og:site_name``, its host, or the host's main label)
    goes; the whole title stays if nothing else would remain.
    """
    title = _squash(title)
    names = _site_names(site, url)
    if site and title.lower() != site.lower():
        for sep in _SEPARATORS.finditer(title):
            if title[sep.end():].lower() == site.lower():  # a site name with separators of its own
                title = title[:sep.start()]
                break
    while True:
        cuts = list(_SEPARATORS.finditer(title))
        if not cuts:
            return title
        head, tail = title[:cuts[0].start()], title[cuts[-1].end():]
        if _is_site(tail, names, site, suffix=True):
            title = title[:cuts[-1].start()].strip()
        elif _is_site(head, names, site):
            title = title[cuts[0].end():].strip()
        else:
            return title


def _looks_like_slug(text: str) -> bool:
    """``adac-kindersitztest-herbst-2018``: a URL's last part, not a title written for people."""
    return " " not in text and bool(re.fullmatch(r"[\w.]+(?:[-_][\w.]+)+", text))


def _meta(tree: Any, *names: str) -> str:
    for name in names:
        for value in tree.xpath(f"//meta[@property='{name}' or @name='{name}']/@content"):
            if _squash(value):
                return _squash(value)
    return ""


def html_title(tree: Any, site: str, url: str, text: str) -> str:
    """A page's title: og:title or <title> without the site's name; else its first heading."""
    heading = ""
    for h1 in tree.iter("h1"):
        heading = _squash(h1.text_content())
        if heading:
            break
    if not heading:
        heading = title_from_markdown(text, "")
    for candidate in (_meta(tree, "og:title", "twitter:title"), _squash(tree.findtext(".//title"))):
        if not candidate or _looks_like_slug(candidate):
            continue
        title = strip_site(candidate, site, url)
        if title and not _is_site(title, _site_names(site, url), site):
            return title
    return heading[:300]


def needs_browser(tree: Any, extracted: str) -> bool:
    """Whether a page is a script's empty shell: its text appears only once a browser runs the scripts.

    Such a page has scripts, almost no text outside them, and either nothing to extract or the signs
    of an app that draws itself: a ``<noscript>`` message, an empty mount point (``<div id="root">``).
    """
    if not tree.xpath("//script[@src or normalize-space()]"):
        return False
    body = tree.find("body")
    if body is None:
        return not extracted
    shown = 0
    for text in body.xpath(".//text()"):
        holder = text.getparent()
        if holder is not None and text.is_tail:
            holder = holder.getparent()
        if holder is None or any(el.tag in _INVISIBLE for el in (holder, *holder.iterancestors())):
            continue
        shown += len(_squash(text))
        if shown >= _SHELL_TEXT:
            return False
    if not extracted:
        return True
    said = any(_squash(n.text_content()) for n in tree.iter("noscript"))
    ids = " or ".join(f"@id='{i}'" for i in _MOUNT_IDS)
    mount = tree.xpath(f"//body//*[({ids} or @data-reactroot or @ng-version) and not(normalize-space())]")
    return said or bool(mount)


def _javascript_error(source: str) -> SourceError:
    return SourceError(
        f"{source}: the page needs a browser to render its text (it is drawn by JavaScript); "
        "Firecrawl renders such pages: set FIRECRAWL_API_KEY", source=source)


# Markdown bold and italic around words; a lone star ("(*um)", "5 * 3") is not emphasis.
# Underscores stay: trafilatura writes emphasis with stars, and "__init__" is a name, not a marker.
_BOLD = re.compile(r"(\*\*)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])(\*)(?=[^\s*])([^*\n]+?)(?<=[^\s*])\1(?![\w*])")


def strip_emphasis(markdown: str) -> str:
    """``markdown`` without bold and italic markers: ``Jacke: **Bershka**`` -> ``Jacke: Bershka``."""
    return _ITALIC.sub(r"\2", _BOLD.sub(r"\2", markdown))


_HTML_LOCK = threading.Lock()


def html_convert(html: str | bytes, url: str = "", **settings: Any) -> Converted:
    """An HTML page's main content as Markdown, with its title, site, author and date.

    ``settings`` override :data:`EXTRACTION` (the benchmark tries others). A page with nothing to read
    gives empty text; a script's shell (see :func:`needs_browser`) is a :class:`SourceError` saying so.
    """
    import trafilatura
    from trafilatura.utils import load_html

    quiet_libraries()
    options = {**EXTRACTION, **settings}
    comments_wanted = options.pop("include_comments")
    keep_emphasis = options.pop("keep_emphasis")
    # One page at a time: lxml trees copied by trafilatura in several threads at once crashed the whole
    # process (a C-level abort, seen with 65 real pages read together). The work is CPU-bound under the
    # GIL anyway; the lock only keeps it off the event loop, safely.
    with _HTML_LOCK:
        tree = load_html(html)
        if tree is None:
            return Converted(text="")
        document = trafilatura.bare_extraction(
            tree, url=url or None, with_metadata=True, include_formatting=True, include_comments=comments_wanted,
            # Dates the page states in its markup, not ones guessed from its text.
            date_extraction_params={"extensive_search": False, "original_date": True}, **options,
        )
    if document is not None and not hasattr(document, "text"):  # trafilatura 1.x returns a dict
        from types import SimpleNamespace

        document = SimpleNamespace(**document)
    body = clean_text(getattr(document, "text", None) or "") if document is not None else ""
    comments = clean_text(getattr(document, "comments", None) or "") if document is not None else ""
    if not keep_emphasis:
        body, comments = strip_emphasis(body), strip_emphasis(comments)
    if needs_browser(tree, body):
        raise _javascript_error(url or "the page")
    text = f"{body}\n\n{COMMENTS_HEADING}\n\n{comments}" if body and comments else body
    site = _meta(tree, "og:site_name", "application-name") or _squash(getattr(document, "sitename", None))
    if len(site) > 80 or "copyright" in site.lower() or "\u00a9" in site:
        site = ""
    return Converted(
        text=text, title=html_title(tree, site, url, body), site=site,
        author=_squash(getattr(document, "author", None))[:200],
        published=_squash(getattr(document, "date", None)),
    )


# -- PDF ---------------------------------------------------------------------------------------------

# Titles PDF tools write for people who never set one: a file name, a path, "Microsoft Word - x.docx",
# "Binder1", "Untitled".
_FILE_TITLE = re.compile(
    r"""(?ix)^(?:
        .*\.(?:pdf|docx?|dotx?|odt|rtf|txt|pptx?|xlsx?|indd|qxd|pages|key|tex|dvi|e?ps|ai|html?|pub|wpd|cdr|png|jpe?g|tiff?)
      | (?:microsoft\s+)?(?:word|powerpoint|excel|office)\s+-\s+.*
      | (?:binder|document|untitled|book|presentation|slide|sheet|scan|print|page)\s*[-_ ]?\d*
      | untitled\b.*
      | .*[\\/].*
      | [^\s]*_[^\s]*
    )$""")


def pdf_title(metadata_title: str, text: str) -> str:
    """A PDF's metadata title unless it is a file name or a placeholder; else its first line, if a title."""
    title = _squash(metadata_title)
    if title and not _FILE_TITLE.match(title) and re.search(r"[^\W\d_]{2}", title):
        return title
    return _first_line_title(text)


def _pdf_date(value: Any) -> str:
    """A PDF date (``D:20240301120000Z``) as an ISO date, or ``""``."""
    match = re.match(r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?", str(value or ""))
    if not match:
        return ""
    year, month, day = match.group(1), match.group(2), match.group(3)
    if not 1 <= int(month or 1) <= 12 or not 1 <= int(day or 1) <= 31:
        return year
    return "-".join(p for p in (year, month, day) if p)


def pdf_convert(data: bytes, source: str) -> Converted:
    """The text of a PDF, page by page and cleaned, with its title, author and date.

    An encrypted PDF opens when it has an empty user password, as most "protected" PDFs do (they
    only restrict printing or copying); one that needs a password is a :class:`SourceError`.
    """
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    quiet_libraries()
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = [clean_pdf_text(page.extract_text() or "") for page in reader.pages]
        info = reader.metadata or {}
        metadata = {key: str(info.get(key) or "") for key in ("/Title", "/Author", "/CreationDate")}
    except FileNotDecryptedError as exc:
        raise SourceError(f"{source}: the PDF is protected by a password", source=source) from exc
    except DependencyError as exc:
        raise SourceError(f"{source}: the PDF cannot be read here ({exc})", source=source) from exc
    except Exception as exc:  # noqa: BLE001 - a malformed PDF breaks pypdf in many ways; each is unreadable
        raise SourceError(f"{source}: not a readable PDF ({exc})", source=source) from exc
    text = "\n\n".join(p for p in pages if p)
    return Converted(
        text=text, title=pdf_title(clean_text(metadata["/Title"]), text),
        author=_squash(clean_text(metadata["/Author"]))[:200], published=_pdf_date(metadata["/CreationDate"]),
    )


# -- any type ----------------------------------------------------------------------------------------

#: PDFs at least this large are converted in a worker process: pypdf is pure Python, so threads would
#: take turns on one core, and eight large PDFs would be read one after another.
PROCESS_PDF_BYTES = 128 * 1024
_pool: Any = None
_pool_lock = threading.Lock()
_in_worker = False


def _worker_init() -> None:
    global _in_worker
    _in_worker = True
    quiet_libraries()


def _pdf_elsewhere(data: bytes, source: str) -> Converted:
    """``pdf_convert`` in the shared worker pool (one process a core, started on first use)."""
    global _pool
    import concurrent.futures
    import multiprocessing
    import os

    with _pool_lock:
        if _pool is None:
            # spawn, not fork: the parent runs threads (the event loop's, a lease's heartbeat).
            _pool = concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 2,
                                                           mp_context=multiprocessing.get_context("spawn"),
                                                           initializer=_worker_init)
            import atexit

            atexit.register(_pool.shutdown, wait=True, cancel_futures=True)  # before modules are torn down
    try:
        return _pool.submit(pdf_convert, data, source).result()
    except SourceError:
        raise
    except Exception as exc:  # a worker that died (memory, a crash in a parser): say so, as any failure
        raise SourceError(f"{source}: the PDF could not be converted ({type(exc).__name__}: {exc})",
                          source=source) from exc


def convert(data: bytes, content_type: str, source: str) -> Converted:
    """Text and what is known of it from ``data`` of ``content_type``; raises :class:`SourceError` for
    anything else. A body starting with ``%PDF-`` is a PDF whatever it was called."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in PDF_TYPES or data[:5] == b"%PDF-":
        if len(data) >= PROCESS_PDF_BYTES and not _in_worker:
            return _pdf_elsewhere(data, source)
        return pdf_convert(data, source)
    if ctype in HTML_TYPES:
        return html_convert(data, source)
    if ctype in TEXT_TYPES or ctype.startswith("text/"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        return Converted(text=clean_text(text))
    raise SourceError(f"{source}: unsupported content type {ctype or 'unknown'}", source=source)


def to_text(data: bytes, content_type: str, source: str) -> tuple[str, str]:
    """Text and title from ``data`` of ``content_type``; raises :class:`SourceError` for anything else."""
    document = convert(data, content_type, source)
    return document.text, document.title
