"""Local files and directories as sources: Markdown, text, HTML and PDF."""

from __future__ import annotations

from pathlib import Path

from agent.errors import SourceError, UsageError
from agent.sources import Document
from agent.sources.convert import title_from_markdown, to_text

#: Part of every file read's key: bump it when the conversion to text changes.
READER_VERSION = 1
SUFFIX_TYPES = {
    ".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain", ".text": "text/plain",
    ".rst": "text/plain", ".html": "text/html", ".htm": "text/html", ".pdf": "application/pdf",
}


def expand(paths: list[str]) -> list[Path]:
    """Files named, and supported files found under directories named, in a stable order.

    A path that does not exist, or a named file of an unsupported type, is a :class:`UsageError`.
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
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "reader": READER_VERSION}


def read_file(path: Path) -> Document:
    """Read one local file into a :class:`Document`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}", source=str(path)) from exc
    ctype = SUFFIX_TYPES.get(path.suffix.lower(), "text/plain")
    text, title = to_text(data, ctype, str(path))
    if not text.strip():
        raise SourceError(f"{path}: no readable text", source=str(path))
    if not title and ctype == "text/plain":
        first = text.strip().splitlines()[0].strip()
        title = first if len(first) <= 120 and not first.endswith(".") else ""
    return Document(uri=str(path), title=title or title_from_markdown(text, path.stem), text=text, content_type=ctype)
