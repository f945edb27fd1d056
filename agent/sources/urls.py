"""Source URLs: checking them, normalizing them for keys and deduplication, and reading URL lists.

Two spellings of one page (``HTTP://Example.com:80/a?b=2&a=1#top`` and ``http://example.com/a?a=1&b=2``)
must share one scrape step and count as one source, so every URL is normalized before it is keyed or
compared. Normalizing never changes which page a server returns: only the scheme and host case, a
default port, the fragment, the order of query parameters and ``utm_*`` tracking parameters go.

A URL list (``--urls-file``) holds web pages only. :func:`read_urls_file_checked` returns its good URLs
and, apart, each line it cannot use with the reason, so that one typo or a ``javascript:`` line fails
that line alone. ``file://`` lines are refused: a list made elsewhere must not pull local files into a
prompt sent to a model vendor; local files go through ``--file``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from agent.errors import UsageError

WEB_SCHEMES = ("http", "https")
SCHEMES = (*WEB_SCHEMES, "file")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Query parameters that say how someone arrived at a page, not which page it is.
_TRACKING = ("utm_",)
_TRACKING_NAMES = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid"})


def is_web_url(url: str) -> bool:
    return urlsplit(url.strip()).scheme.lower() in WEB_SCHEMES


def is_file_url(url: str) -> bool:
    return urlsplit(url.strip()).scheme.lower() == "file"


def check_url(url: str) -> str:
    """``url`` stripped, if it is an http, https or file URL; else a one-line :class:`UsageError`."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise UsageError(f"{url!r} is not a valid URL", hint="give http://, https:// or file:// URLs") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        looks_like_host = not parts.scheme and "." in text.split("/")[0]
        raise UsageError(f"{url!r} is not an http, https or file URL",
                         hint=f"did you mean https://{text}?" if looks_like_host else "give http://, https:// or file:// URLs")
    if scheme in WEB_SCHEMES and not parts.hostname:
        raise UsageError(f"{url!r} has no host name", hint="give URLs such as https://example.com/page")
    if scheme == "file" and not parts.path:
        raise UsageError(f"{url!r} names no file", hint="give file URLs such as file:///home/me/notes.md")
    return text


def normalize_url(url: str) -> str:
    """The canonical spelling of a web URL: what scrape steps are keyed by and sources deduplicated on."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if parts.username or parts.password:
        userinfo = parts.username or ""
        if parts.password:
            userinfo += f":{parts.password}"
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or ("/" if scheme in WEB_SCHEMES else "")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith(_TRACKING) and k.lower() not in _TRACKING_NAMES]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


def file_url_path(url: str) -> str:
    """The local path a ``file://`` URL names (``file:///a%20b.md`` -> ``/a b.md``)."""
    parts = urlsplit(url.strip())
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"{url!r} names a file on another machine ({parts.netloc})",
                         hint="file:// URLs must name local files: file:///path/to/file")
    return unquote(parts.path)


def _read_listing(path: str) -> list[tuple[int, str]]:
    """The non-blank, non-comment lines of ``path`` with their numbers; a :class:`UsageError` if it
    cannot be read at all."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}", hint="check the path given to --urls-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"cannot read the URL list {path}: {reason}",
                         hint="--urls-file takes a UTF-8 text file with one URL per line") from None
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append((number, line))
    return lines


def read_urls_file(path: str) -> list[str]:
    """The URLs listed in ``path``, one a line, unchecked; blank lines and ``#`` comments are skipped.

    Its callers check each line themselves; :func:`read_urls_file_checked` checks them for you and
    sets the bad ones apart.
    """
    return [line for _, line in _read_listing(path)]


def web_url_problem(text: str) -> str | None:
    """Why ``text`` is not an http(s) URL a fetcher can read, or None if it is one."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return "not a valid URL (it holds spaces or control characters)"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "not a valid URL"
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "a local file; local files go through --file, not a URL list"
    if scheme not in WEB_SCHEMES:
        if not parts.scheme and "." in text.split("/")[0]:
            return f"not an http(s) URL (did you mean https://{text}?)"
        return f"not an http(s) URL ({scheme}:)" if scheme else "not an http(s) URL"
    if not parts.hostname:
        return "not an http(s) URL: it has no host name"
    return None


def read_urls_file_checked(path: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The http(s) URLs listed in ``path``, and the lines it cannot use as ``(line, reason)``.

    Blank lines and ``#`` comments are skipped; a reason names the line's number (``"line 4: not an
    http(s) URL (javascript:)"``). A file that cannot be read at all is a :class:`UsageError`.
    """
    urls: list[str] = []
    rejects: list[tuple[str, str]] = []
    for number, line in _read_listing(path):
        problem = web_url_problem(line)
        if problem is None:
            urls.append(line)
        else:
            rejects.append((line[:300], f"line {number}: {problem}"))
    return urls, rejects


def dedupe(urls: list[str]) -> list[str]:
    """``urls`` checked, keeping the first spelling of each normalized web URL, in order."""
    out: list[str] = []
    seen: set[str] = set()
    for url in urls:
        url = check_url(url)
        ident = normalize_url(url) if is_web_url(url) else url
        if ident not in seen:
            seen.add(ident)
            out.append(url)
    return out
