"""Webhook delivery, seen from a real loopback receiver: the bytes, the signature, retries, failures.

Signatures are checked the way the module docstring tells a receiver to, with ``hmac`` directly, so
the documented scheme is what is tested. Waits go through an injected ``sleep`` that records them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import pytest

from agent.sources.web import USER_AGENT
from agent.webhook import SECRET_ENV, Delivery, deliver, redact_url, signature, verify_signature
from tests.servers import Reply, serve
from tests.servers.receiver import (
    Receiver, accepting, echoing, flaky, hanging, rate_limited, refusing,
)

PATH = "/services/T0AAAA/B0BBBB/hooktoken9f3kq2"
PAYLOAD = {"event": "run.completed", "run_id": "20261122-100800-8699", "report": "reports/demo.md",
           "totals": {"paid": 12, "replayed": 0, "cost_usd": 0.0}, "question": "Heat pumps at −15 °C? ✓"}


@pytest.fixture(autouse=True)
def no_env_secret(monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)


@pytest.fixture
def waits():
    return []


def expected_body(payload=PAYLOAD) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def receiver_verifies(request, secret: str) -> bool:
    """What a receiver does, by the module docstring: HMAC of ``timestamp.body``, compared in constant time."""
    timestamp = request.headers["x-research-timestamp"]
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers.get("x-signature", ""), f"sha256={mac}")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_payload_arrives_byte_exact_with_its_headers():
    with serve(accepting(204)) as server:
        before = int(time.time())
        result = deliver(server.url + PATH, PAYLOAD, event_id="demo:completed")
    assert result == Delivery("sent", 1, 204, None, result.duration_s)
    [request] = server.requests
    assert request.method == "POST" and request.path == PATH
    assert request.body == expected_body()
    assert "−15 °C? ✓".encode() in request.body  # UTF-8 as is, not \u escapes
    assert request.json() == PAYLOAD
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["x-research-event"] == "demo:completed"
    assert before <= int(request.headers["x-research-timestamp"]) <= time.time() + 1
    assert "x-signature" not in request.headers  # no secret, no signature


def test_signature_verifies_with_the_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "env-secret-3k9")
    with serve(accepting()) as server:
        assert deliver(server.url + PATH, PAYLOAD, event_id="e1").status == "sent"
    [request] = server.requests
    assert request.headers["x-signature"].startswith("sha256=")
    assert receiver_verifies(request, "env-secret-3k9")
    assert not receiver_verifies(request, "env-secret-3k8")
    assert verify_signature(request.body, request.headers, "env-secret-3k9")
    assert not verify_signature(request.body, request.headers, "wrong")


def test_an_explicit_secret_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "env-secret-3k9")
    with serve(accepting()) as server:
        deliver(server.url + PATH, PAYLOAD, event_id="e1", secret="arg-secret-77")
        deliver(server.url + PATH, PAYLOAD, event_id="e2", secret="")  # explicitly unsigned
    signed, unsigned = server.requests
    assert receiver_verifies(signed, "arg-secret-77")
    assert not receiver_verifies(signed, "env-secret-3k9")
    assert "x-signature" not in unsigned.headers


def test_a_receiver_refuses_a_tampered_body_or_a_stale_timestamp():
    body = expected_body()
    timestamp = "1700000000"
    headers = {"X-Research-Timestamp": timestamp, "X-Signature": signature(body, "s3cret", timestamp)}
    assert verify_signature(body, headers, "s3cret", now=1700000100)
    assert not verify_signature(body.replace(b"12", b"13"), headers, "s3cret", now=1700000100)
    assert not verify_signature(body, headers, "s3cret", now=1700000000 + 301)  # a replay, later
    moved = {**headers, "X-Research-Timestamp": "1700000001"}  # the signature covers the timestamp
    assert not verify_signature(body, moved, "s3cret", now=1700000100)
    assert not verify_signature(body, {"X-Signature": headers["X-Signature"]}, "s3cret")


def test_5xx_is_retried_with_growing_jittered_waits_then_sent(waits):
    with serve(flaky(failures=2, status=500)) as server:
        result = deliver(server.url + PATH, PAYLOAD, event_id="e1", secret="k-123456", sleep=waits.append)
    assert (result.status, result.attempts, result.http_status, result.error) == ("sent", 3, 200, None)
    assert len(server.requests) == 3
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0
    # Every retry is the same event with the same bytes, each attempt signed for its own timestamp.
    assert {r.headers["x-research-event"] for r in server.requests} == {"e1"}
    assert {r.body for r in server.requests} == {expected_body()}
    assert all(receiver_verifies(r, "k-123456") for r in server.requests)


def test_retry_after_is_honoured_and_capped(waits):
    with serve(rate_limited("3", "120")) as server:
        result = deliver(server.url + PATH, PAYLOAD, event_id="e1", backoff_cap_s=10, sleep=waits.append)
    assert (result.status, result.attempts) == ("sent", 3)
    assert waits == [3.0, 10.0]


def test_backoff_never_waits_past_the_cap_and_gives_up_after_all_attempts(waits):
    with serve(flaky(failures=10, status=503)) as server:
        result = deliver(server.url + PATH, PAYLOAD, event_id="e1", attempts=5, backoff_cap_s=1.5,
                         sleep=waits.append)
    assert (result.status, result.attempts, result.http_status) == ("failed", 5, 503)
    assert len(server.requests) == 5 and len(waits) == 4
    assert max(waits) <= 1.5 and waits[-1] >= 0.75
    assert "503" in result.error and "after 5 attempts" in result.error


def test_400_is_not_retried_and_says_why(waits):
    with serve(refusing(400, "invalid_payload")) as server:
        result = deliver(server.url + PATH, PAYLOAD, event_id="e1", sleep=waits.append)
    assert (result.status, result.attempts, result.http_status) == ("failed", 1, 400)
    assert len(server.requests) == 1 and waits == []
    assert "HTTP 400" in result.error and "invalid_payload" in result.error


def test_a_redirect_is_not_followed(waits):
    with serve(Receiver(Reply(302, headers={"Location": "/elsewhere/othertoken"}))) as server:
        result = deliver(server.url + PATH, PAYLOAD, event_id="e1", sleep=waits.append)
    assert (result.status, result.attempts, result.http_status) == ("failed", 1, 302)
    assert [r.path for r in server.requests] == [PATH]
    assert "redirects are not followed" in result.error and "othertoken" not in result.error


def test_a_refused_connection_is_retried_then_fails_without_raising(waits):
    url = f"http://127.0.0.1:{closed_port()}{PATH}"
    result = deliver(url, PAYLOAD, event_id="e1", attempts=3, sleep=waits.append)
    assert (result.status, result.attempts, result.http_status) == ("failed", 3, None)
    assert len(waits) == 2
    assert "refused" in result.error


def test_a_hanging_receiver_times_out_on_every_attempt(waits):
    with serve(hanging(30.0)) as server:
        started = time.monotonic()
        result = deliver(server.url + PATH, PAYLOAD, event_id="e1", attempts=2, timeout_s=0.2,
                         sleep=waits.append)
        elapsed = time.monotonic() - started
    assert (result.status, result.attempts, result.http_status) == ("failed", 2, None)
    assert len(server.requests) == 2 and len(waits) == 1
    assert "no answer within 0.2s" in result.error
    assert elapsed < 15  # bounded by the timeouts, not by the receiver (30 s an attempt)


def test_a_2xx_counts_as_sent_even_if_its_body_never_comes():
    with serve(Receiver(Reply(200, body="ok", hang=2.0))) as server:
        result = deliver(server.url + PATH, PAYLOAD, event_id="e1", timeout_s=0.3)
    assert (result.status, result.attempts, result.http_status) == ("sent", 1, 200)
    assert result.duration_s < 1.0


@pytest.mark.parametrize("url, why", [
    ("", "no URL"),
    ("hooks.example.com/services/T0/B0/tok", "not an http or https URL"),
    ("ftp://hooks.example.com/x", "not an http or https URL"),
    ("http:///path-only", "no host"),
    ("http://127.0.0.1:99999/x", "not a valid URL"),
])
def test_an_invalid_url_is_a_failed_delivery(url, why, waits):
    result = deliver(url, PAYLOAD, event_id="e1", sleep=waits.append)
    assert (result.status, result.attempts, result.http_status) == ("failed", 0, None)
    assert why in result.error and waits == []


def test_a_bad_event_id_or_payload_fails_before_sending():
    with serve(accepting()) as server:
        header_injection = deliver(server.url + PATH, PAYLOAD, event_id="e1\r\nX-Evil: 1")
        not_json = deliver(server.url + PATH, {"when": object()}, event_id="e1")
    assert server.requests == []
    assert (header_injection.status, header_injection.attempts) == ("failed", 0)
    assert "event id" in header_injection.error
    assert (not_json.status, not_json.attempts) == ("failed", 0) and "not JSON" in not_json.error


def test_the_url_token_and_the_secret_never_appear_in_a_failure(monkeypatch, waits):
    monkeypatch.setenv(SECRET_ENV, "hmac-secret-xq7")
    query = "?token=querytoken55x"
    with serve(echoing(404)) as server:
        echoed = deliver(server.url + PATH + query, PAYLOAD, event_id="e1", sleep=waits.append)
        host = server.url.removeprefix("http://")
    refused = deliver(f"http://user:pw-1234@127.0.0.1:{closed_port()}{PATH}{query}", PAYLOAD,
                      event_id="e1", attempts=2, secret="arg-secret-zz9", sleep=waits.append)
    assert echoed.error.startswith(f"webhook http://{host}/…: answered HTTP 404 Not Found: no webhook at ***")
    assert refused.error.startswith("webhook http://127.0.0.1:") and "refused" in refused.error
    for result in (echoed, refused):
        text = json.dumps(result.to_json())
        for secret in ("hooktoken9f3kq2", "T0AAAA", "querytoken55x", "pw-1234", "hmac-secret-xq7", "arg-secret-zz9"):
            assert secret not in text


def test_redact_url_keeps_only_scheme_host_and_port():
    assert redact_url("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/…"
    assert redact_url("HTTP://User:Pass@Example.COM:8443/p?token=t#f") == "http://example.com:8443/…"
    assert redact_url("http://[::1]:9000/hook") == "http://[::1]:9000/…"
    assert redact_url("discord.com/api/webhooks/1/tok") == "<invalid URL>"
    assert redact_url("http://host:notaport/tok") == "<invalid URL>"


def test_a_delivery_is_json():
    result = Delivery("failed", 2, 503, "webhook http://h/…: answered HTTP 503", 1.25)
    assert json.loads(json.dumps(result.to_json())) == {
        "status": "failed", "attempts": 2, "http_status": 503,
        "error": "webhook http://h/…: answered HTTP 503", "duration_s": 1.25}
