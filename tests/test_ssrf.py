"""The built-in fetcher is not led into private addresses (issue 13): only hosts the user named may be
private, checked on every hop against the address actually connected to.

Real sockets throughout: the suite's loopback site on 127.0.0.1 plays the user's own host, a second
server on 127.0.0.2 plays a metadata endpoint that must never be asked, and host names resolve
through a stub resolver given to the fetcher, never by patching httpx.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from agent.errors import SourceError
from agent.sources import guard
from agent.sources.backend import web_backend
from agent.sources.firecrawl import FirecrawlBackend
from agent.sources.guard import ALLOW_HINT, classify, host_key
from agent.sources.web import WebFetcher
from tests.servers import Reply, serve
from tests.servers.website import Site, html, page, serve_at

FAST = dict(timeout_s=3.0, max_retries=2, retry_cap_s=0.01)
CANARY = "AKIA-CANARY-SECRET-7f3e"
ARTICLE = page("Heat pumps at home", "Heat pumps move heat rather than make it, which is why they are efficient.")


def fetch(backend, url: str):
    """Scrape ``url`` under the retry policy; the Document, or the SourceError it failed with."""

    async def go():
        try:
            return await backend.scrape(url)
        except SourceError as exc:
            return exc
        finally:
            await backend.aclose()

    return asyncio.run(go())


def refused(backend, url: str) -> SourceError:
    result = fetch(backend, url)
    assert isinstance(result, SourceError), f"expected a refusal, got {result!r}"
    assert result.message.startswith(f"{url}: ") and result.message.endswith(ALLOW_HINT)
    assert not result.retryable and not getattr(result, "fatal", False)
    assert "\n" not in result.one_line()
    return result


def stub_resolver(answers: dict[str, list[str]], calls: list | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


@pytest.fixture
def metadata():
    """A "cloud metadata" server on 127.0.0.2 whose every answer is a secret."""
    site = Site({"/latest/meta-data/iam": Reply(200, f"AccessKeyId: {CANARY}", {"Content-Type": "text/plain"})})
    with serve_at("127.0.0.2", site) as server:
        yield server


# -- the classifier ---------------------------------------------------------------------------

@pytest.mark.parametrize("address,kind", [
    ("127.0.0.1", "loopback"), ("127.0.0.2", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("2002:7f00:1::", "loopback"),  # IPv4-mapped; 6to4
    ("169.254.169.254", "cloud metadata"), ("::ffff:169.254.169.254", "cloud metadata"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),  # NAT64; AWS's IPv6 one
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("10.1.2.3", "private network"), ("172.16.0.1", "private network"), ("192.168.1.1", "private network"),
    ("fd12:3456::1", "private network"), ("::ffff:10.0.0.1", "private network"),
    ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("fec0::1", "site-local"),
    ("192.0.2.1", "not publicly routable"), ("198.18.0.1", "not publicly routable"),
])
def test_the_classifier_refuses_every_kind_of_non_public_address(address, kind):
    assert classify(address) == kind


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "100.128.0.1"])
def test_the_classifier_lets_public_addresses_through(address):
    assert classify(address) is None


def test_hosts_compare_without_case_port_brackets_or_trailing_dot():
    assert host_key("Example.COM:8080") == host_key("https://example.com./a?b") == "example.com"
    assert host_key("[::1]:80") == host_key("http://[::1]/") == "::1"
    assert host_key("Bücher.de") == "xn--bcher-kva.de"


# -- the fetcher ------------------------------------------------------------------------------

def test_a_trusted_loopback_site_is_read():
    with serve(Site({"/article": html(ARTICLE)})) as server:
        doc = fetch(web_backend(None, trusted_hosts=["127.0.0.1"], **FAST), server.url + "/article")
    assert doc.title == "Heat pumps at home" and "move heat rather than make it" in doc.text


def test_a_redirect_from_a_trusted_host_to_another_private_one_is_refused_before_it_is_asked(metadata):
    target = metadata.url + "/latest/meta-data/iam"
    site = Site({"/start": Reply(302, "", {"Location": target})})
    with serve(site) as server:
        err = refused(web_backend(None, trusted_hosts=["127.0.0.1"], **FAST), server.url + "/start")
    assert f"redirected to 127.0.0.2, a private address (loopback); {ALLOW_HINT}" in err.message
    assert CANARY not in err.one_line()
    assert metadata.requests == []  # refused at connect time: not even a request line reached it
    assert site.hits["/start"] == 1  # a refusal is final, not retried


def test_allow_private_follows_the_same_redirect(metadata):
    site = Site({"/start": Reply(302, "", {"Location": metadata.url + "/latest/meta-data/iam"})})
    with serve(site) as server:
        backend = web_backend(None, trusted_hosts=["127.0.0.1"], allow_private=True, **FAST)
        doc = fetch(backend, server.url + "/start")
    assert CANARY in doc.text and len(metadata.requests) == 1


def test_an_untrusted_url_at_a_private_address_is_refused_without_a_request():
    site = Site({"/article": html(ARTICLE)})
    with serve(site) as server:
        err = refused(web_backend(None, trusted_hosts=["example.com"], **FAST), server.url + "/article")
        nothing = refused(web_backend(None, trusted_hosts=[], **FAST), server.url + "/article")
    assert f"{server.url}/article: 127.0.0.1 is a private address (loopback)" in err.message
    assert nothing.message == err.message
    assert site.total() == 0


@pytest.mark.parametrize("host,shown", [("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is"),
                                        ("2130706433", "2130706433 resolves to 127.0.0.1,")])
def test_other_spellings_of_loopback_are_refused(host, shown):
    # A mapped IPv6 literal, and a decimal IPv4 that the system resolver turns into 127.0.0.1.
    with serve(Site({"/": html(ARTICLE)})) as server:
        port = server.url.rsplit(":", 1)[1]
        err = refused(WebFetcher(trusted_hosts=[]), f"http://{host}:{port}/")
    assert f"{shown} a private address (loopback)" in err.message


def test_a_host_name_resolving_to_a_private_address_is_refused():
    resolve = stub_resolver({"example.test": ["10.1.2.3"], "mixed.test": ["93.184.216.34", "169.254.169.254"]})
    fetcher = WebFetcher(trusted_hosts=["intranet.test"], resolve=resolve)
    err = refused(fetcher, "http://example.test/page")
    assert err.message == f"http://example.test/page: example.test resolves to 10.1.2.3, a private address (private network); {ALLOW_HINT}"
    # One private answer among public ones is enough: connecting could reach either.
    mixed = refused(WebFetcher(trusted_hosts=[], resolve=resolve), "https://mixed.test/")
    assert "mixed.test resolves to 169.254.169.254, a private address (cloud metadata)" in mixed.message


def test_the_module_resolver_can_be_replaced_for_fetchers_made_elsewhere(monkeypatch):
    # How a pipeline test reaches a fetcher that web_backend built.
    monkeypatch.setattr(guard, "resolve", stub_resolver({"search-result.test": ["192.168.0.7"]}))
    err = refused(web_backend(None, trusted_hosts=[], **FAST), "http://search-result.test/x")
    assert "search-result.test resolves to 192.168.0.7" in err.message


def test_a_trusted_name_connects_to_the_address_that_was_resolved_and_keeps_its_host():
    # wiki.test resolves only through the stub: the page arriving proves the connection used its answer.
    calls: list = []
    with serve(Site({"/article": html(ARTICLE)})) as server:
        port = int(server.url.rsplit(":", 1)[1])
        fetcher = WebFetcher(trusted_hosts=["WIKI.test"], resolve=stub_resolver({"wiki.test": ["127.0.0.1"]}, calls))
        doc = fetch(fetcher, f"http://wiki.test:{port}/article")
    assert doc.title == "Heat pumps at home"
    assert server.requests[0].headers["host"] == f"wiki.test:{port}"
    assert calls == [("wiki.test", port)]


def test_redirects_that_stay_on_a_trusted_host_are_followed():
    site = Site({"/old": Reply(301, "", {"Location": "/newer"}), "/final": html(ARTICLE)})
    with serve(site) as server:
        site["/newer"] = Reply(302, "", {"Location": server.url + "/final"})  # absolute, same host
        doc = fetch(web_backend(None, trusted_hosts=[server.url], **FAST), server.url + "/old")
    assert doc.title == "Heat pumps at home"
    assert [r.path for r in server.requests] == ["/old", "/newer", "/final"]


def test_a_redirect_to_another_name_for_the_same_machine_is_refused():
    # Trust is by host name: localhost is not the 127.0.0.1 the user named, though it is the same machine.
    site = Site({"/start": Reply(302, "", {"Location": "/"}), "/": html(ARTICLE)})
    with serve(site) as server:
        site["/start"] = Reply(302, "", {"Location": server.url.replace("127.0.0.1", "localhost") + "/"})
        err = refused(web_backend(None, trusted_hosts=["127.0.0.1"], **FAST), server.url + "/start")
    assert "redirected to localhost, which resolves to " in err.message and "(loopback)" in err.message
    assert [r.path for r in server.requests] == ["/start"]


def test_trust_ignores_case_and_port():
    with serve(Site({"/article": html(ARTICLE)})) as server:
        port = server.url.rsplit(":", 1)[1]
        doc = fetch(WebFetcher(trusted_hosts=["LocalHost:1"]), f"http://localhost:{port}/article")
    assert doc.title == "Heat pumps at home"


def test_guarded_connections_fail_with_the_fetchers_usual_messages():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    closed = fetch(WebFetcher(trusted_hosts=["127.0.0.1"]), f"http://127.0.0.1:{port}/")
    assert isinstance(closed, SourceError) and "connection was refused" in closed.message
    unknown = fetch(WebFetcher(trusted_hosts=[], resolve=stub_resolver({})), "http://nowhere.test/")
    assert isinstance(unknown, SourceError) and "could not be resolved" in unknown.message
    assert not unknown.retryable


def test_trusting_every_host_is_the_default_for_callers_from_before_the_guard(monkeypatch):
    assert web_backend(None).guard is None
    assert web_backend(None, trusted_hosts=["a.example"], allow_private=True).guard is None
    assert web_backend(None, trusted_hosts=()).guard is not None
    # Firecrawl fetches on its own side: the same arguments are accepted and do not apply.
    monkeypatch.setenv("FIRECRAWL_API_URL", "http://127.0.0.1:9")
    assert isinstance(web_backend(None, trusted_hosts=["a.example"], allow_private=False), FirecrawlBackend)
