"""Local files and directories as sources: Markdown, text, HTML and PDF.

Only regular files are read (a FIFO would block forever, ``/dev/zero`` never ends), and no more of one
than a web page may hold (``RESEARCH_FETCH_MAX_BYTES``, 20 MB unless set). A file whose name says text
but whose bytes are binary (an executable, an archive, random data) fails as a source rather than being
summarized and quoted.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

from agent.errors import SourceError, UsageError
from agent.sources import Document
from agent.sources.convert import title_from_markdown, to_text

#: Part of every file read's key: bump it when the conversion to text changes.
#: 2: binary content and non-regular files fail, UTF-16/32 text with a byte order mark is decoded.
READER_VERSION = 2
SUFFIX_TYPES = {
    ".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain", ".text": "text/plain",
    ".rst": "text/plain", ".html": "text/html", ".htm": "text/html", ".pdf": "application/pdf",
}

# Control bytes real text does not use. Tab, newlines, vertical tab, form feed (page breaks in text
# taken from PDFs), backspace (overstruck man pages) and escape (terminal colours) are left out.
_CONTROL_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\v\f\r\b\x1b") + b"\x7f"
_OTHER_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
# Git's test for binary content, applied to the same first 8,000 bytes: text never holds a NUL.
_NUL_WINDOW = 8000
# Above these shares of all bytes, a file is binary. Random bytes hold about 10% such controls and
# about 40% bytes that are not valid UTF-8. Latin-1 text is not UTF-8 either, but only its accented
# letters fail to decode: a few in a hundred in French or Portuguese prose, a fifth in the densest
# phrases.
_MAX_CONTROL_SHARE = 0.05
_MAX_INVALID_UTF8_SHARE = 0.30
# Byte order marks, longest first: UTF-32-LE's begins with UTF-16-LE's.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def expand(paths: list[str]) -> list[Path]:
    """Files named, and supported files found under directories named, in a stable order.

    A path that does not exist, or a named file of an unsupported type, is a :class:`UsageError`.
    Under a directory only regular files are taken (``is_file`` follows symlinks and is false for
    FIFOs, sockets and devices); a named file that is not one fails when it is read.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if raw.startswith("file://"):
            path = Path(raw[len("file://"):])
        if not path.exists():
            raise UsageError(f"no such file or directory: {raw}", hint="check the path given to --file")
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in SUFFIX_TYPES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise UsageError(f"{raw} holds no readable files",
                                 hint=f"--file takes {', '.join(sorted(SUFFIX_TYPES))} files or directories of them")
        else:
            if path.suffix.lower() not in SUFFIX_TYPES:
                raise UsageError(f"cannot read {raw}: unsupported file type {path.suffix or '(none)'}",
                                 hint=f"--file takes {', '.join(sorted(SUFFIX_TYPES))}")
            found = [path]
        for p in found:
            resolved = p.resolve()
            if resolved not in seen:
                seen.add(resolved)
                out.append(resolved)
    return out


def file_fingerprint(path: Path) -> dict[str, object]:
    """What identifies a file's version cheaply, for the read step's key."""
    info = path.stat()
    return {"path": str(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns, "reader": READER_VERSION}


def max_bytes() -> int:
    """The largest file read: the web fetcher's page limit, so one setting bounds every source."""
    from agent.sources.backend import FetchLimits

    return FetchLimits.from_limits(None).max_bytes


def looks_binary(data: bytes) -> bool:
    """Whether ``data`` is binary rather than text in UTF-8 or Latin-1.

    Binary when a NUL comes early, when control characters that text does not use are more than a
    small share, or when much of it is not valid UTF-8. Text with a few stray controls, such as the
    form feeds between pages of text taken from a PDF, is still text.
    """
    if not data:
        return False
    if b"\0" in data[:_NUL_WINDOW]:
        return True
    if len(data.translate(None, _OTHER_BYTES)) > len(data) * _MAX_CONTROL_SHARE:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # A replacement character stands for each invalid sequence, mostly a single stray byte.
        invalid = data.decode("utf-8", errors="replace").count("\ufffd")
        return invalid > len(data) * _MAX_INVALID_UTF8_SHARE
    return False


def read_file(path: Path) -> Document:
    """Read one local file into a :class:`Document`; a file that cannot be read is a :class:`SourceError`."""
    name = str(path)
    data = _read_regular(path, max_bytes())
    ctype = SUFFIX_TYPES.get(path.suffix.lower(), "text/plain")
    if ctype != "application/pdf" and data[:5] != b"%PDF-":  # to_text reads those as PDFs
        data = _text_bytes(data, name)
    text, title = to_text(data, ctype, name)
    if not text.strip():
        raise SourceError(f"{path}: no readable text", source=name)
    if not title and ctype == "text/plain":
        first = text.strip().splitlines()[0].strip()
        title = first if len(first) <= 120 and not first.endswith(".") else ""
    return Document(uri=name, title=title or title_from_markdown(text, path.stem), text=text, content_type=ctype)


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (after symlinks) of at most ``limit`` bytes."""
    name = str(path)
    try:
        # Checked before opening, since opening a device can itself do something (rewind a tape).
        _check_regular(path, os.stat(path), limit)
        # O_NONBLOCK: should a FIFO take the file's place after that check, opening it cannot hang;
        # the check is repeated on what was opened. Regular files ignore the flag.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as handle:
            _check_regular(path, os.fstat(handle.fileno()), limit)
            # One byte past the limit tells a file that grew since its size was read from one that fits.
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}", source=name) from exc
    if len(data) > limit:
        raise _too_large(path, limit)
    return data


def _check_regular(path: Path, info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"cannot read {path}: it is {_kind(info.st_mode)}, not a regular file", source=str(path))
    if info.st_size > limit:
        raise _too_large(path, limit)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a special file"


def _too_large(path: Path, limit: int) -> SourceError:
    size = f"{limit / 1024 / 1024:.3g} MB" if limit >= 1024 * 1024 else f"{limit:,} bytes"
    return SourceError(f"{path}: the file is larger than the {size} limit", source=str(path),
                       hint="raise RESEARCH_FETCH_MAX_BYTES to read larger files")


def _text_bytes(data: bytes, name: str) -> bytes:
    """``data`` as UTF-8 (or Latin-1) text for the converter, or a :class:`SourceError` if it is binary."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            # UTF-16 and UTF-32 are full of NULs; with a byte order mark they are text all the same.
            # One that does not decode stays as it is and is judged below like any other bytes.
            try:
                data = data.decode(codec).encode("utf-8")
            except UnicodeDecodeError:
                pass
            break
    if looks_binary(data):
        raise SourceError(f"{name} is not text: it holds binary data", source=name,
                          hint="text files are read as UTF-8 (or Latin-1); save it as UTF-8 if it is text")
    return data
