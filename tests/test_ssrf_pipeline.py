"""The address guard end to end, through ``research run`` (issue 13).

The suite's loopback site on 127.0.0.1 plays the user's own host; a second server on 127.0.0.2 plays a
cloud metadata endpoint whose every answer is a canary that must reach nothing: not the report, not the
cache or journal, not the terminal. Host names resolve through a stub put on ``agent.sources.guard``'s
module resolver, as a pipeline test reaches a fetcher that the run built itself.

Where search results can reach the built-in fetcher: nowhere, today. ``--search`` and ``--depth`` need
Firecrawl, and whenever Firecrawl is configured it scrapes every page of the run on its own side. So the
tests here cover what exists (user-given URLs from ``--url`` and ``--urls-file``, and where their
redirects lead) and pin that a search result at a private address is never connected to by us; one test
simulates a built-in backend that can search, to pin that search and planner results are not trusted.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path

import pytest

from agent.sources import guard
from agent.sources.backend import SearchHit
from agent.sources.guard import ALLOW_HINT
from agent.sources.web import WebFetcher
from tests.helpers import cli
from tests.servers import Reply, serve
from tests.servers.firecrawl import FakeFirecrawl, FakePage
from tests.servers.website import Site, html, page, serve_at

Q = "Do heat pumps work in cold climates, and what do they cost to run?"
CANARY = "AKIA-CANARY-SECRET-9c41"
IAM = "/latest/meta-data/iam"
ARTICLE = page("Heat pumps in the cold",
               "Modern heat pumps keep working in cold climates well below freezing.",
               "Running costs of a heat pump depend on the electricity price and on insulation.")
# Worded for the question, so that a run allowed to read it quotes it: proof the canary would show.
SECRET = (f"Heat pumps in cold climates cost {CANARY} to run. "
          f"AccessKeyId: {CANARY}\nSecretAccessKey: {CANARY}\n")


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setenv("RESEARCH_FETCH_TIMEOUT", "3")
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "1")
    monkeypatch.setenv("RESEARCH_RETRY_CAP", "0.01")


@pytest.fixture
def metadata():
    """A "cloud metadata" server on 127.0.0.2 (another machine, as far as the guard knows)."""
    site = Site({IAM: Reply(200, SECRET, {"Content-Type": "text/plain; charset=utf-8"})})
    with serve_at("127.0.0.2", site) as server:
        yield server


def stub_resolver(answers: dict[str, list[str]]):
    """``guard.resolve`` for these names; IP literals are themselves; any other name does not exist."""

    async def resolve(host: str, port: int) -> list[str]:
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


def research(*args: str):
    return cli("run", Q, *args, "--format", "md,html,json")


def files_with(root: Path, needle: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle``: reports, cache values, journal and WAL."""
    data = needle.encode()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and data in p.read_bytes())


def assert_leaked_nowhere(tmp_path: Path, result) -> None:
    assert (tmp_path / "cache" / "journal.sqlite3").exists()  # the scan below covers the journal
    assert files_with(tmp_path, CANARY) == []
    assert CANARY not in result.stdout and CANARY not in result.stderr


def failures(run_id: str) -> list[str]:
    """The report's "What failed or was left out" lines."""
    report = Path(f"reports/{run_id}.md").read_text()
    section = report.split("## What failed or was left out\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("- ")]


def sources(run_id: str) -> list[str]:
    return [s["uri"] for s in json.loads(Path(f"reports/{run_id}.json").read_text())["sources"]]


# -- 1, 2: a user-given URL redirecting to another private host ---------------------------------

def test_a_user_url_redirecting_to_another_private_host_fails_and_the_canary_goes_nowhere(tmp_path, metadata):
    site = Site({"/page": Reply(302, "", {"Location": metadata.url + IAM}), "/article": html(ARTICLE)})
    with serve(site) as server:
        result = research("--url", f"{server.url}/page", "--url", f"{server.url}/article", "--run-id", "ssrf1")
    assert result.exit_code == 3, result.stderr
    assert "1 step(s) failed; see: research show ssrf1" in result.stdout
    assert failures("ssrf1") == [f"- scrape: fetch {server.url}/page: redirected to 127.0.0.2, "
                                 f"a private address (loopback); {ALLOW_HINT}"]
    assert sources("ssrf1") == [f"{server.url}/article"]  # the run went on and read the good source
    assert metadata.requests == []  # refused at connect time: the metadata server was never asked
    assert site.hits == {"/page": 1, "/article": 1}  # and the refusal was not retried
    assert_leaked_nowhere(tmp_path, result)

    shown = cli("show", "ssrf1", "--json")
    (failed,) = [s for s in json.loads(shown.stdout)["steps"] if s["status"] == "failed"]
    assert failed["kind"] == "scrape" and "redirected to 127.0.0.2" in failed["error"]
    assert CANARY not in shown.stdout


def test_allow_private_hosts_reaches_the_fetcher_and_the_canary_page_is_read(tmp_path, metadata):
    site = Site({"/page": Reply(302, "", {"Location": metadata.url + IAM}), "/article": html(ARTICLE)})
    with serve(site) as server:
        result = research("--url", f"{server.url}/page", "--url", f"{server.url}/article", "--run-id", "ssrf2",
                          "--allow-private-hosts")
    assert result.exit_code == 0, result.stderr
    assert sources("ssrf2") == [f"{server.url}/page", f"{server.url}/article"]
    assert [r.path for r in metadata.requests] == [IAM]
    # The scan that found nothing above finds the canary here: the cache does not hide it from a scan.
    leaked = files_with(tmp_path, CANARY)
    assert "work/reports/ssrf2.md" in leaked and any(p.startswith("cache/") for p in leaked)


def test_a_page_read_with_allow_private_hosts_is_not_replayed_to_a_run_without_it(metadata):
    site = Site({"/page": Reply(302, "", {"Location": metadata.url + IAM}), "/article": html(ARTICLE)})
    with serve(site) as server:
        urls = ("--url", f"{server.url}/page", "--url", f"{server.url}/article")
        assert research(*urls, "--run-id", "open1", "--allow-private-hosts").exit_code == 0
        result = research(*urls, "--run-id", "shut1")
    assert result.exit_code == 3, result.stderr
    assert failures("shut1") == [f"- scrape: fetch {server.url}/page: redirected to 127.0.0.2, "
                                 f"a private address (loopback); {ALLOW_HINT}"]
    assert CANARY not in result.stdout
    assert all(CANARY not in Path(f"reports/shut1.{ext}").read_text() for ext in ("md", "html", "json"))
    assert len(metadata.requests) == 1  # the allowed run's; the guarded one fetched /page again and stopped
    assert site.hits["/page"] == 2


# -- 3: what exists for URLs not named by the user ---------------------------------------------

def test_urls_file_hosts_are_trusted_but_their_redirects_to_other_private_hosts_are_not(tmp_path, monkeypatch, metadata):
    # wiki.intranet.test is the user's own intranet wiki (private, named in the URL list); its pages
    # redirect to a name resolving to the metadata server, and to the metadata address itself.
    monkeypatch.setattr(guard, "resolve", stub_resolver({"wiki.intranet.test": ["127.0.0.1"],
                                                         "metadata.internal.test": ["127.0.0.2"]}))
    site = Site({"/article": html(ARTICLE), "/old": Reply(301, "", {"Location": "/article"})})
    with serve(site) as server:
        port = server.url.rsplit(":", 1)[1]
        wiki = f"http://wiki.intranet.test:{port}"
        site["/moved"] = Reply(302, "", {"Location": f"http://metadata.internal.test:{metadata.url.rsplit(':', 1)[1]}{IAM}"})
        site["/cloud"] = Reply(307, "", {"Location": "http://169.254.169.254" + IAM})
        listing = tmp_path / "urls.txt"
        listing.write_text(f"# the intranet wiki\n{wiki}/old\n{wiki}/moved\n{wiki}/cloud\n")
        result = research("--urls-file", str(listing), "--run-id", "list1")
    assert result.exit_code == 3, result.stderr
    assert sources("list1") == [f"{wiki}/old"]  # a redirect staying on the trusted host is followed
    assert sorted(failures("list1")) == sorted([
        f"- scrape: fetch {wiki}/moved: redirected to metadata.internal.test, which resolves to 127.0.0.2, "
        f"a private address (loopback); {ALLOW_HINT}",
        # Refused before any connection: the suite's socket guard would have raised on 169.254.169.254.
        f"- scrape: fetch {wiki}/cloud: redirected to 169.254.169.254, a private address (cloud metadata); {ALLOW_HINT}",
    ])
    assert server.requests and all(r.headers["host"] == f"wiki.intranet.test:{port}" for r in server.requests)
    assert metadata.requests == []
    assert_leaked_nowhere(tmp_path, result)


def test_a_search_result_at_a_private_address_is_scraped_by_firecrawl_never_by_us(monkeypatch, metadata):
    # The only way search results exist today: Firecrawl searches, and then it also scrapes every page.
    target = metadata.url + IAM
    firecrawl = FakeFirecrawl(results={Q: [{"url": target, "title": "Metadata"}]},
                              pages={target: FakePage("# Heat pumps\n\nHeat pumps work in cold climates.", title="Heat pumps")})
    with serve(firecrawl) as server:
        monkeypatch.setenv("FIRECRAWL_API_URL", server.url)
        result = research("--search", "1", "--run-id", "fc1")
    assert result.exit_code == 0, result.stderr
    assert sources("fc1") == [target]
    assert [(r.path, (r.json() or {}).get("url")) for r in server.requests] == [("/v2/search", None), ("/v2/scrape", target)]
    assert metadata.requests == []  # our process never connected to the search result


def test_without_firecrawl_there_is_no_search_for_results_to_come_from(metadata):
    result = research("--search", "2")
    assert result.exit_code == 2 and "--search needs a search backend" in result.stderr
    result = cli("run", Q, "--url", metadata.url + IAM, "--depth", "1")
    assert result.exit_code == 2 and "--depth needs a search backend" in result.stderr
    assert metadata.requests == []


def test_search_and_planner_results_would_not_be_trusted_by_the_builtin_fetcher(tmp_path, monkeypatch, metadata):
    # No backend searches and scrapes with the built-in fetcher today; this simulates one, so that the
    # run's trust (the hosts the user named, and no other) is pinned for when one does.
    monkeypatch.setattr(guard, "resolve", stub_resolver({"search-hit.test": ["10.0.0.5"],
                                                         "planner-hit.test": ["192.168.7.7"]}))
    monkeypatch.setattr("agent.sources.backend.search_available", lambda: True)
    monkeypatch.setattr("pipelines.research.search_available", lambda: True)
    queries: list[str] = []

    async def search_once(self, query: str, limit: int) -> list[SearchHit]:
        queries.append(query)
        if query == Q:
            return [SearchHit(metadata.url + IAM), SearchHit("http://search-hit.test/heat-pumps")]
        return [SearchHit(f"http://planner-hit.test/{len(queries)}")]

    monkeypatch.setattr(WebFetcher, "can_search", True)
    monkeypatch.setattr(WebFetcher, "search_once", search_once)
    with serve(Site({"/article": html(ARTICLE)})) as server:
        result = research("--url", f"{server.url}/article", "--search", "2", "--depth", "1", "--breadth", "1",
                          "--run-id", "deep1")
    assert result.exit_code == 3, result.stderr
    assert len(queries) == 2  # the question, then the planner's one follow-up query
    assert sources("deep1") == [f"{server.url}/article"]
    assert failures("deep1") == [
        f"- scrape: fetch {metadata.url}{IAM}: 127.0.0.2 is a private address (loopback); {ALLOW_HINT}",
        f"- scrape: fetch http://search-hit.test/heat-pumps: search-hit.test resolves to 10.0.0.5, "
        f"a private address (private network); {ALLOW_HINT}",
        f"- scrape 1: fetch http://planner-hit.test/2: planner-hit.test resolves to 192.168.7.7, "
        f"a private address (private network); {ALLOW_HINT}",
    ]
    assert metadata.requests == []
    assert_leaked_nowhere(tmp_path, result)


# -- 4: the user's own loopback site still works -----------------------------------------------

def test_a_user_given_loopback_url_is_read_and_the_report_written():
    with serve(Site({"/article": html(ARTICLE)})) as server:
        result = research("--url", f"{server.url}/article", "--run-id", "own1")
    assert result.exit_code == 0, result.stderr
    assert "report: reports/own1.md" in result.stdout
    report = Path("reports/own1.md").read_text()
    assert "[1] Heat pumps in the cold" in report and "What failed" not in report
    assert sources("own1") == [f"{server.url}/article"]
