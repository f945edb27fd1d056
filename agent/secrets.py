"""Keeping API keys and passwords out of everything the project writes.

Keys are read from the environment (or ``.env``) at the edge and handed to SDK clients; they are never
part of a step key. Error text from a vendor can still echo a key back, and an endpoint such as
``OPENAI_BASE_URL=https://user:pw@host/v1`` carries its password into every message that names the
server, so every message bound for the journal, a report or the terminal goes through :func:`redact`
first.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

_SECRET_NAME = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD)$")
# Variables naming a server (OPENAI_BASE_URL, OLLAMA_HOST, FIRECRAWL_API_URL, https_proxy...): not secret
# themselves, but credentials written into them are.
_URL_NAME = re.compile(r"(_URL|_HOST|_PROXY|_STORE)$", re.IGNORECASE)
# Shapes of vendor keys, masked even when the key is not in this process's environment.
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|fc-[A-Za-z0-9]{16,})")
# ``scheme://user:password@`` anywhere in a text. The user part is kept (it says which account was
# used); the password goes whatever its length, since here its place, not its value, gives it away.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)[^\s/?#@]+@")
# Shorter values are not masked wherever they appear: they would garble ordinary words.
_MIN_SECRET = 6


def url_credentials(url: str) -> list[str]:
    """The credentials written into ``url``'s userinfo, as written and percent-decoded.

    That is the password of ``user:password@``, or the whole userinfo when it has no password, which
    is how tokens are put into URLs (``https://TOKEN@host``). A URL without a scheme
    (``OLLAMA_HOST=user:pw@host:11434``) is read as a host.
    """
    text = url.strip()
    try:
        netloc = urlsplit(text if "://" in text else f"//{text}").netloc
    except ValueError:
        return []
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return []
    user, colon, password = userinfo.partition(":")
    found = [password] if colon else [user]
    found += [unquote(value) for value in found]
    return list(dict.fromkeys(value for value in found if value))


def secret_values() -> list[str]:
    """Values worth masking wherever they appear (long enough to matter): variables that look like
    credentials, and credentials embedded in the URLs of variables that name a server."""
    values = [v for k, v in os.environ.items() if _SECRET_NAME.search(k)]
    for name, value in os.environ.items():
        if _URL_NAME.search(name):
            values += url_credentials(value)
    return [v for v in dict.fromkeys(values) if len(v) >= _MIN_SECRET]


def redact(text: str) -> str:
    """``text`` with every known secret value, every URL password and every key-shaped token as ``***``."""
    if not text:
        return text
    for value in sorted(secret_values(), key=len, reverse=True):
        text = text.replace(value, "***")
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _KEY_SHAPES.sub("***", text)
