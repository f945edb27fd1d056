"""Webhook notifications for scheduled reports: one signed JSON POST, retried, and never raising.

When a scheduled run completes, fails or waits, its caller sends a notification with :func:`deliver`
and records in the run journal that the event was sent, so that it is sent once. Every outcome is a
:class:`Delivery`; a failing webhook never fails the run that it reports on.

What a receiver gets
--------------------
``POST <url>`` (redirects are not followed) with the body
``json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded as UTF-8,
and these headers:

- ``Content-Type: application/json`` and the project's ``User-Agent``;
- ``X-Research-Event: <event id>``: the same on every attempt of one event, so a receiver that has
  seen it already answers 2xx and drops the duplicate;
- ``X-Research-Timestamp: <unix seconds>``: when this attempt was sent, a decimal integer;
- ``X-Signature: sha256=<hex>``, only when there is a secret: the lowercase hex HMAC-SHA256, keyed
  with the secret's UTF-8 bytes, of the ASCII timestamp exactly as in ``X-Research-Timestamp``, one
  ``.`` byte, then the raw body bytes::

      expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()

  A receiver verifies it against the raw body (before parsing any JSON), compares with
  ``hmac.compare_digest``, and refuses a timestamp more than a few minutes from its own clock (300 s
  in :func:`verify_signature`), so that a captured request cannot be replayed later. Each retry is
  signed afresh with its own timestamp; it is the event id that marks a duplicate.

The secret is the ``secret`` argument, else ``RESEARCH_WEBHOOK_SECRET``; ``secret=""`` sends unsigned
even when the variable is set.

Answers
-------
2xx: sent. 429, 5xx, timeouts and connection errors: tried again, up to ``attempts`` attempts in all,
after exponential backoff with jitter, or after the server's ``Retry-After`` when it gives one, never
waiting longer than ``backoff_cap_s``. Anything else (3xx, other 4xx, an invalid URL, a TLS
certificate that does not verify): failed at once.

Webhook URLs often carry their credential in the path or query (Slack, Discord), so every message
names the URL only as :func:`redact_url` gives it, ``scheme://host[:port]/…``, and text a receiver
answers with is scrubbed of the URL's path and query and of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import ssl
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

from agent.config import env
from agent.providers.policy import parse_retry_after
from agent.secrets import redact
from agent.sources.web import USER_AGENT

SECRET_ENV = "RESEARCH_WEBHOOK_SECRET"
#: How far a signed timestamp may be from the receiver's clock in :func:`verify_signature`.
SIGNATURE_TOLERANCE_S = 300.0
_BACKOFF_BASE_S = 1.0
# Enough of a refusal to show the receiver's reason ("invalid_token", "channel_not_found").
_SNIPPET_CHARS = 200
_SNIPPET_BYTES = 4096
_jitter = random.Random()


@dataclass
class Delivery:
    """How sending one notification ended."""

    status: str  # "sent" | "failed"
    attempts: int  # HTTP requests made: 0 when the URL, event id or payload was refused before sending
    http_status: int | None  # the last answer's status; None when no answer came
    error: str | None  # why it failed, naming the URL only as redact_url gives it
    duration_s: float  # wall time of the whole delivery, waits included

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Outcome:
    http_status: int | None = None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: which receiver, never its path, query or userinfo."""
    try:
        parts = urlsplit(str(url).strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<invalid URL>"
    if parts.scheme.lower() not in ("http", "https") or not host:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}{'' if port is None else f':{port}'}/…"


def signature(body: bytes, secret: str, timestamp: str) -> str:
    """The ``X-Signature`` value for ``body`` sent at ``timestamp`` (see the module docstring)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, headers: Mapping[str, str], secret: str, *,
                     tolerance_s: float = SIGNATURE_TOLERANCE_S, now: float | None = None) -> bool:
    """For a receiver written in Python: whether ``body`` and ``headers`` carry a valid, fresh signature."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-research-timestamp", "")
    given = lower.get("x-signature", "")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(given.encode(), signature(body, secret, timestamp).encode())


def deliver(url: str, payload: dict, *, event_id: str, secret: str | None = None, attempts: int = 4,
            timeout_s: float = 10.0, backoff_cap_s: float = 30.0,
            sleep: Callable[[float], Any] = time.sleep) -> Delivery:
    """POST ``payload`` to ``url`` as event ``event_id``, retrying what may pass; never raises for it."""
    started = time.monotonic()
    where = redact_url(url)

    def done(status: str, tries: int, outcome: _Outcome) -> Delivery:
        error = None if outcome.error is None else f"webhook {where}: {outcome.error}"
        if error is not None and tries > 1:
            error += f" (after {tries} attempts)"
        return Delivery(status, tries, outcome.http_status, error, time.monotonic() - started)

    problem = _url_problem(url)
    header_safe = isinstance(event_id, str) and event_id.isascii() and event_id.isprintable()
    if problem is None and not (header_safe and event_id):
        problem = "the event id must be non-empty printable ASCII (it is sent as a header)"
    if problem is None:
        try:
            body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            problem = f"the payload is not JSON ({exc})"
    if problem is not None:
        return done("failed", 0, _Outcome(error=problem))
    url = url.strip()

    key = secret if secret is not None else env(SECRET_ENV)
    scrub = _scrubber(url, key)
    total = max(1, int(attempts))
    try:
        client = httpx.Client(follow_redirects=False, timeout=httpx.Timeout(timeout_s))
    except Exception as exc:  # e.g. an unreadable SSL_CERT_FILE: still a Delivery
        return done("failed", 0, _Outcome(error=f"could not set up HTTP ({type(exc).__name__}: {scrub(str(exc))})"))
    with client:
        for tried in range(1, total + 1):
            outcome = _attempt(client, url, body, event_id, key, timeout_s, scrub)
            if outcome.error is None:
                return done("sent", tried, outcome)
            if not outcome.retryable or tried == total:
                return done("failed", tried, outcome)
            sleep(_wait(tried, outcome.retry_after, backoff_cap_s))
    raise AssertionError("unreachable")  # pragma: no cover


def _url_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return "no URL given"
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        return "not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "not an http or https URL"
    if not parts.hostname:
        return "the URL has no host"
    return None


def _wait(tried: int, retry_after: float | None, cap: float) -> float:
    """Seconds before attempt ``tried + 1``: the server's word if given, else jittered backoff."""
    cap = max(0.0, cap)
    if retry_after is not None:
        return min(retry_after, cap)
    # Half fixed, half random: spreads out receivers' retry storms without ever waiting ~0.
    ceiling = min(cap, _BACKOFF_BASE_S * 2 ** (tried - 1))
    return _jitter.uniform(ceiling / 2, ceiling)


def _attempt(client: httpx.Client, url: str, body: bytes, event_id: str, key: str | None,
             timeout_s: float, scrub: Callable[[str], str]) -> _Outcome:
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Research-Event": event_id, "X-Research-Timestamp": timestamp}
    if key:
        headers["X-Signature"] = signature(body, key, timestamp)
    try:
        response = client.send(client.build_request("POST", url, content=body, headers=headers), stream=True)
    except httpx.TimeoutException as exc:
        return _Outcome(error=f"no answer within {timeout_s:g}s ({type(exc).__name__})", retryable=True)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return _Outcome(error=f"not a valid URL ({scrub(str(exc))})")
    except httpx.TransportError as exc:
        return _transport_failure(exc, scrub)
    except Exception as exc:  # the contract: a webhook problem is a Delivery, not a raise
        return _Outcome(error=f"could not send ({type(exc).__name__})")
    try:
        status = response.status_code
        if 200 <= status < 300:
            # The status is the receiver's acknowledgement; its body, if any, is not waited for.
            return _Outcome(http_status=status)
        said = _snippet(response, time.monotonic() + timeout_s, scrub)
        answer = f"answered HTTP {status} {response.reason_phrase}".rstrip() + (f": {said}" if said else "")
        if 300 <= status < 400:
            return _Outcome(status, f"{answer} (redirects are not followed: give the final URL)")
        retryable = status == 429 or status >= 500
        return _Outcome(status, answer, retryable, parse_retry_after(response.headers) if retryable else None)
    finally:
        response.close()


def _transport_failure(exc: httpx.TransportError, scrub: Callable[[str], str]) -> _Outcome:
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            # Waiting does not make a certificate valid.
            return _Outcome(error=f"its TLS certificate does not verify ({cause.verify_message or cause.reason})")
        if isinstance(cause, ConnectionRefusedError):
            return _Outcome(error="the connection was refused (nothing listening there)", retryable=True)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.LocalProtocolError):
        return _Outcome(error=f"could not send the request ({scrub(str(exc))})")
    if isinstance(exc, httpx.ConnectError):
        return _Outcome(error=f"could not connect ({scrub(str(exc)) or type(exc).__name__})", retryable=True)
    return _Outcome(error=f"the connection dropped before an answer ({type(exc).__name__})", retryable=True)


def _snippet(response: httpx.Response, deadline: float, scrub: Callable[[str], str]) -> str:
    """The start of a refusal's body as one line, read within ``deadline``; '' if none came."""
    data = b""
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= _SNIPPET_BYTES or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass  # the reason is a nicety; the status already says what happened
    text = " ".join(data[:_SNIPPET_BYTES].decode("utf-8", "replace").split())
    text = scrub(text)
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…"


def _scrubber(url: str, key: str | None) -> Callable[[str], str]:
    """Masks the URL's path, query, userinfo and the secret in text a receiver or a library produced.

    Receivers echo the path back ("no hook at /services/T0/B0/xyz"), which is where the token is.
    """
    parts = urlsplit(url.strip())
    pieces = {url, url.strip(), parts.path, parts.query, parts.fragment, parts.username or "", parts.password or ""}
    pieces.update(segment for segment in parts.path.split("/") if len(segment) >= 6)
    pieces.update(value for _, value in parse_qsl(parts.query, keep_blank_values=True))
    pieces |= {unquote(piece) for piece in pieces}
    if key:
        pieces.add(key)
    ordered = sorted((p for p in pieces if len(p) >= 4), key=len, reverse=True)

    def scrub(text: str) -> str:
        for piece in ordered:
            text = text.replace(piece, "***")
        return redact(text)

    return scrub
