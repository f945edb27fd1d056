"""The built-in fetcher against a loopback website: content, PDFs, limits and every way a page fails."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time

import pytest

from agent.errors import SourceError
from agent.sources.backend import FetchLimits
from agent.sources.web import USER_AGENT, WebFetcher
from tests.servers import Reply, serve
from tests.servers.website import ARTICLE_PAGE, Site, html, make_pdf, page

FAST = dict(timeout_s=2.0, max_retries=0, retry_cap_s=0.01)


def fetch(url: str, **limits) -> object:
    """Scrape ``url`` with a fresh fetcher under the retry policy; returns the Document or the error."""
    fetcher = WebFetcher(FetchLimits(**{**FAST, **limits}))

    async def go():
        try:
            return await fetcher.scrape(url)
        except SourceError as exc:
            return exc
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def failure(url: str, **limits) -> SourceError:
    result = fetch(url, **limits)
    assert isinstance(result, SourceError), f"expected a failure, got {result!r}"
    assert url in result.message
    return result


# -- content ----------------------------------------------------------------------------------

def test_html_keeps_the_article_and_drops_nav_footer_and_cookie_banner():
    with serve(Site({"/article": html(ARTICLE_PAGE)})) as server:
        doc = fetch(server.url + "/article")
    assert doc.title == "Heat pumps in the cold"
    assert "seasonal coefficient of performance near 2.5" in doc.text
    assert "insulating the house first" in doc.text
    lowered = doc.text.lower()
    for boilerplate in ("cookies", "shop our catalogue", "about us", "all rights reserved", "privacy"):
        assert boilerplate not in lowered
    assert doc.content_type == "text/markdown"
    assert server.requests[0].headers["user-agent"] == USER_AGENT


def test_pdf_by_content_type():
    pdf = make_pdf(["Ground-source heat pumps reach a COP of four.", "Drilling is the main cost."],
                   title="Ground source study")
    with serve(Site({"/study.pdf": Reply(200, pdf, {"Content-Type": "application/pdf"})})) as server:
        doc = fetch(server.url + "/study.pdf")
    assert doc.title == "Ground source study"
    assert "COP of four" in doc.text and "Drilling is the main cost" in doc.text
    assert doc.content_type == "application/pdf"


@pytest.mark.parametrize("ctype", ["application/pdf", "application/octet-stream", None])
def test_pdf_without_extension_is_recognised(ctype):
    pdf = make_pdf(["Cold climate field trial", "Heat pumps kept homes at 21 degrees in January."])
    headers = {"Content-Type": ctype} if ctype else {}
    with serve(Site({"/download": Reply(200, pdf, headers)})) as server:
        doc = fetch(server.url + "/download?id=7")
    assert "kept homes at 21 degrees" in doc.text
    assert doc.title == "Cold climate field trial"  # its first line, as it has no /Title
    assert doc.content_type == "application/pdf"


def test_plain_text_and_markdown_are_read_as_is():
    site = Site({
        "/notes.txt": Reply(200, "Notes on heat pumps\n\nThey work in the cold.", {"Content-Type": "text/plain"}),
        "/readme": Reply(200, "# Heat pump guide\n\nSize for the coldest week.", {"Content-Type": "text/markdown"}),
        "/latin": Reply(200, "Caf\xe9 owners like heat pumps.".encode("latin-1"),
                        {"Content-Type": "text/plain; charset=iso-8859-1"}),
    })
    with serve(site) as server:
        notes, readme, latin = (fetch(server.url + p) for p in ("/notes.txt", "/readme", "/latin"))
    assert notes.text.startswith("Notes on heat pumps") and notes.content_type == "text/plain"
    assert readme.title == "Heat pump guide" and "coldest week" in readme.text
    assert latin.text == "Café owners like heat pumps."


def test_redirects_are_followed():
    site = Site({
        "/old": Reply(301, "", {"Location": "/newer"}),
        "/newer": Reply(302, "", {"Location": "/final"}),
        "/final": html(page("Final page", "Heat pumps are efficient in mild and cold weather alike.")),
    })
    with serve(site) as server:
        doc = fetch(server.url + "/old")
    assert doc.title == "Final page" and "efficient in mild and cold weather" in doc.text
    assert [r.path for r in server.requests] == ["/old", "/newer", "/final"]


def test_too_many_redirects_fail():
    site = Site({f"/hop{i}": Reply(302, "", {"Location": f"/hop{i + 1}"}) for i in range(10)})
    with serve(site) as server:
        err = failure(server.url + "/hop0", max_redirects=3)
    assert "too many redirects" in err.message and not err.retryable
    assert len(server.requests) == 4  # the first request and three redirects, then it stops


# -- failures ---------------------------------------------------------------------------------

def test_404_fails_at_once_without_retries():
    with serve(Site()) as server:
        err = failure(server.url + "/missing", max_retries=3)
    assert err.status == 404 and not err.retryable
    assert "HTTP 404" in err.message and "not found" in err.message
    assert len(server.requests) == 1


@pytest.mark.parametrize("reply", [Reply(200, "late", delay=30.0), Reply(200, page("x", "y"), {"Content-Type": "text/html"}, hang=30.0)],
                         ids=["no-answer", "body-stalls"])
def test_a_page_that_hangs_times_out(reply):
    with serve(Site({"/slow": reply})) as server:
        started = time.monotonic()
        err = failure(server.url + "/slow", timeout_s=0.3)
    assert time.monotonic() - started < 15  # the page hangs for 30 s: it was not waited for
    assert err.retryable and ("timed out" in err.message or "within" in err.message)


def test_a_huge_page_is_refused():
    big = "<html><body><p>" + "heat pump " * 300_000 + "</p></body></html>"
    with serve(Site({"/big": html(big)})) as server:
        err = failure(server.url + "/big", max_bytes=1024 * 1024)
    assert "larger than the 1 MB limit" in err.message and not err.retryable


def test_a_page_growing_past_the_limit_while_streamed_is_cut_off():
    # A small compressed answer that inflates past the cap: only streaming can catch it.
    bomb = gzip.compress(b"<html><body><p>" + b"a" * (4 * 1024 * 1024) + b"</p></body></html>")
    assert len(bomb) < 64 * 1024
    with serve(Site({"/bomb": Reply(200, bomb, {"Content-Type": "text/html", "Content-Encoding": "gzip"})})) as server:
        err = failure(server.url + "/bomb", max_bytes=1024 * 1024)
    assert "larger than the 1 MB limit" in err.message


def test_a_dropped_connection_is_retryable():
    with serve(Site({"/drop": Reply(drop=True)})) as server:
        err = failure(server.url + "/drop")
    assert err.retryable and "connection dropped" in err.message


def test_an_empty_page_fails():
    site = Site({"/empty": html(""), "/blank": html("<html><body><div> </div></body></html>")})
    with serve(site) as server:
        empty = failure(server.url + "/empty")
        blank = failure(server.url + "/blank")
    assert "empty" in empty.message and not empty.retryable
    assert "no readable text" in blank.message and not blank.retryable


@pytest.mark.parametrize("ctype,body,expected", [
    ("image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "unsupported content type image/png"),
    ("application/octet-stream", b"\x00\x01\x02binary", "not a PDF"),
    ("application/zip", b"PK\x03\x04", "unsupported content type application/zip"),
])
def test_binary_and_unsupported_types_fail(ctype, body, expected):
    with serve(Site({"/file": Reply(200, body, {"Content-Type": ctype})})) as server:
        err = failure(server.url + "/file")
    assert expected in err.message and not err.retryable


def test_refused_connection():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    err = failure(f"http://127.0.0.1:{port}/page")
    assert "refused" in err.message and not err.retryable


def test_tls_failure():
    # An https URL pointed at a plain-HTTP server: the TLS handshake cannot succeed.
    with serve(Site({"/": html(page("x", "y"))})) as server:
        err = failure(server.url.replace("http://", "https://") + "/")
    assert "TLS" in err.message and not err.retryable


def test_dns_failure():
    err = failure("http://no-such-host.invalid/page")
    assert "could not be resolved" in err.message and not err.retryable


# -- retries and limits -----------------------------------------------------------------------

def test_429_and_5xx_are_retried_by_the_policy():
    answers = iter([Reply(429, "slow down", {"Retry-After": "0"}), Reply(503, "busy"), Reply(500, "oops")])

    def flaky(request):
        return next(answers, html(page("Recovered", "Heat pumps recovered after the outage.")))

    with serve(Site({"/flaky": flaky})) as server:
        doc = fetch(server.url + "/flaky", max_retries=4)
    assert doc.title == "Recovered"
    assert len(server.requests) == 4


def test_retries_give_up_after_max_retries():
    with serve(Site({"/down": Reply(503, "down")})) as server:
        err = failure(server.url + "/down", max_retries=2)
    assert err.status == 503 and err.retryable
    assert len(server.requests) == 3


def test_requests_in_flight_per_host_are_limited():
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def slow(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return html(page(request.path, f"Page {request.path} says heat pumps work."))

    site = Site({f"/p{i}": slow for i in range(6)})
    with serve(site) as server:
        fetcher = WebFetcher(FetchLimits(**{**FAST, "per_host": 2}))

        async def go():
            try:
                return await asyncio.gather(*(fetcher.scrape(f"{server.url}/p{i}") for i in range(6)))
            finally:
                await fetcher.aclose()

        docs = asyncio.run(go())
    assert len(docs) == 6 and all("heat pumps work" in d.text for d in docs)
    assert state["peak"] == 2


def test_a_page_that_hangs_is_tried_twice_at_most_and_the_message_counts_it():
    hung = Reply(200, "late", delay=3.0)
    with serve(Site({"/slow": hung})) as server:
        err = failure(server.url + "/slow", timeout_s=0.3, max_retries=4)
        asked = len(server.requests)
    assert asked == 2  # not the five attempts max_retries would allow
    assert "no complete answer in 2 attempts of 0.3s each" in err.message and "s in all)" in err.message
    assert not err.retryable


def test_large_pdfs_are_converted_in_worker_processes(monkeypatch):
    """pypdf is pure Python: large PDFs go to a process pool so several convert at once, with the same text."""
    from agent.sources import convert
    from tests.servers.website import make_pdf

    data = make_pdf(["Nordic field trial", "Heat pumps kept working at minus twenty degrees."], title="Trial")
    here = convert.convert(data, "application/pdf", "trial.pdf")
    monkeypatch.setattr(convert, "PROCESS_PDF_BYTES", 1)
    elsewhere = convert.convert(data, "application/pdf", "trial.pdf")
    assert convert._pool is not None  # it really went to a worker
    assert elsewhere == here and "minus twenty degrees" in elsewhere.text
    with pytest.raises(SourceError):
        convert.convert(b"%PDF-1.4 not really a pdf", "application/pdf", "broken.pdf")
