"""Web sources in ``research run``: URLs, URL lists, search, failures, replay, freshness and resume.

Everything runs on the offline default model against loopback servers; the servers' request logs show
what was fetched, the journal (``research show --json``) what was paid for and what replayed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env
from tests.helpers import ROOT, cli, cli_json
from tests.servers import Reply, serve
from tests.servers.firecrawl import FakeFirecrawl, FakePage
from tests.servers.website import ARTICLE_PAGE, Site, html, make_pdf, page

Q = "Do heat pumps work in cold climates?"
COSTS_V1 = page("Running costs", "Heat pumps cost about as much to run as a gas boiler in cold climates.",
                "Insulation lowers the running cost of a heat pump further.")
COSTS_V2 = page("Running costs", "Heat pumps now cost less to run than a gas boiler in cold climates.",
                "Insulation lowers the running cost of a heat pump further.")


def website() -> Site:
    return Site({
        "/article": html(ARTICLE_PAGE),
        "/costs": html(COSTS_V1),
        "/trial": Reply(200, make_pdf(["Nordic field trial", "Heat pumps kept working at minus twenty degrees."]),
                        {"Content-Type": "application/octet-stream"}),
    })


def run(*args, code: int = 0) -> dict:
    result = cli("run", Q, *args, "--json")
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)


def steps(run_id: str) -> list[dict]:
    return cli_json("show", run_id)["steps"]


def summaries(run_id: str) -> dict[str, bool]:
    """Summarize steps of a run by the source's path on the site -> replayed."""
    return {"/" + s["name"].rsplit("/", 1)[1]: s["replayed"] for s in steps(run_id)
            if s["kind"] == "llm" and s["name"].startswith("summarize")}


def test_urls_end_to_end_with_a_failed_source(tmp_path):
    with serve(website()) as server:
        result = cli("run", Q, "--url", f"{server.url}/article", "--url", f"{server.url}/trial",
                     "--url", f"{server.url}/gone", "--run-id", "web1")
    assert result.exit_code == 3, result.stderr
    assert "1 step(s) failed; see: research show web1" in result.stdout
    report = Path("reports/web1.md").read_text()
    assert "[1] Heat pumps in the cold" in report and "[2] Nordic field trial" in report
    assert "## What failed or was left out" in report
    assert f"- scrape: fetch {server.url}/gone: HTTP 404 not found\n" in report
    assert "cookies" not in report.lower() and "All rights reserved" not in report
    failed = [s for s in steps("web1") if s["status"] == "failed"]
    assert [(s["kind"], s["name"]) for s in failed] == [("scrape", f"scrape {server.url}/gone")]


def test_urls_file_is_read_and_duplicate_urls_are_fetched_once(tmp_path):
    site = website()
    with serve(site) as server:
        listing = tmp_path / "urls.txt"
        listing.write_text(
            "# sources for the heat pump question\n\n"
            f"{server.url}/article\n"
            f"  {server.url.upper().replace('HTTP://', 'http://')}/article#intro  \n"
            f"{server.url}/costs?utm_source=newsletter\n"
            "\n# the end\n"
        )
        out = run("--urls-file", listing, "--url", f"{server.url}/costs", "--run-id", "list1")
        assert sorted(site.hits.items()) == [("/article", 1), ("/costs", 1)]
    assert out["totals"]["failed"] == 0
    report = Path(out["report_path"]).read_text()
    # --url sources come first, then the list's, each under its first spelling
    assert "[1] Running costs" in report and "[2] Heat pumps in the cold" in report and "[3]" not in report
    assert f"1. [Running costs]({server.url}/costs): <{server.url}/costs> (fetched 20" in report


def test_identical_content_at_two_urls_is_one_source():
    site = website()
    site["/mirror"] = html(COSTS_V1)
    with serve(site) as server:
        out = run("--url", f"{server.url}/costs", "--url", f"{server.url}/mirror")
    report = Path(out["report_path"]).read_text()
    assert "[2]" not in report and "has the same content as [1]" in report


def test_file_urls_are_sources_too(tmp_path):
    notes = tmp_path / "field notes.md"
    notes.write_text("# Field notes\n\nOur heat pump ran all winter at minus ten degrees.\n")
    with serve(website()) as server:
        out = run("--url", notes.as_uri(), "--url", f"{server.url}/article")
    report = Path(out["report_path"]).read_text()
    assert "Field notes" in report and "Heat pumps in the cold" in report


def test_a_rerun_fetches_nothing():
    site = website()
    with serve(site) as server:
        urls = ["--url", f"{server.url}/article", "--url", f"{server.url}/costs", "--url", f"{server.url}/trial"]
        first = run(*urls)
        fetched = site.total()
        second = run(*urls)
        assert site.total() == fetched == 3
    assert second["totals"]["paid"] == 0 and second["totals"]["replayed"] == first["totals"]["calls"]


def test_max_age_refetches_and_only_changed_pages_are_summarized_again():
    site = website()
    with serve(site) as server:
        urls = ["--url", f"{server.url}/article", "--url", f"{server.url}/costs"]
        run(*urls, "--run-id", "day1")
        site["/costs"] = html(COSTS_V2)
        # Within the age limit nothing is fetched, so the change is not seen yet.
        run(*urls, "--max-age", "12h", "--run-id", "day1b")
        assert site.total() == 2
        out = run(*urls, "--max-age", "0s", "--run-id", "day2")
        assert site.hits["/article"] == 2 and site.hits["/costs"] == 2
    scrapes = [s for s in steps("day2") if s["kind"] == "scrape"]
    assert len(scrapes) == 2 and not any(s["replayed"] for s in scrapes)
    assert summaries("day2") == {"/article": True, "/costs": False}
    assert "now cost less to run" in Path(out["report_path"]).read_text()


def test_a_resumed_run_replays_what_it_saw_whatever_its_age():
    site = website()
    with serve(site) as server:
        urls = ["--url", f"{server.url}/article", "--url", f"{server.url}/costs"]
        run(*urls, "--max-age", "0s", "--run-id", "seen")
        site["/costs"] = html(COSTS_V2)
        run(*urls, "--max-age", "0s", "--run-id", "later")  # stores the new version over the old
        before = site.total()
        out = cli_json("resume", "seen")
        assert site.total() == before  # the pinned pages replay although every entry is "too old"
    report = Path(out["report_path"]).read_text()
    assert "about as much to run as a gas boiler" in report and "now cost less" not in report
    assert out["totals"]["failed"] == 0


def test_search_without_a_backend_is_one_line_and_exit_2():
    result = cli("run", Q, "--search", "3")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "--search needs a search backend" in result.stderr and "FIRECRAWL_API_KEY" in result.stderr


def test_a_bad_url_is_one_line_and_exit_2():
    for bad, words in (("example.com/page", "did you mean https://example.com/page"),
                       ("ftp://example.com/x", "not an http, https or file URL"),
                       ("http:///nohost", "has no host name")):
        result = cli("run", Q, "--url", bad)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
        assert words in result.stderr


def test_a_missing_urls_file_is_one_line_and_exit_2():
    result = cli("run", Q, "--urls-file", "nope.txt")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "no such file: nope.txt" in result.stderr


def test_search_and_scrape_through_firecrawl(monkeypatch):
    results = {Q: [{"url": "https://a.example/cold", "title": "Cold", "description": "Cold climate data"},
                   {"url": "https://b.example/cost?utm_medium=x", "title": "Cost", "description": "Costs"},
                   {"url": "https://c.example/none", "title": "Gone", "description": "Missing page"}]}
    pages = {
        "https://a.example/cold": FakePage("# Cold data\n\nHeat pumps worked at minus twenty in the trial.", "Cold data"),
        "https://b.example/cost?utm_medium=x": FakePage("# Costs\n\nHeat pumps cost little to run when insulated.", "Costs"),
        "https://b.example/cost": FakePage("# Costs\n\nHeat pumps cost little to run when insulated.", "Costs"),
    }
    app = FakeFirecrawl(api_key="fc-test0123456789abcdef", pages=pages, results=results)
    with serve(app) as server:
        monkeypatch.setenv("FIRECRAWL_API_URL", server.url)
        monkeypatch.setenv("FIRECRAWL_API_KEY", "fc-test0123456789abcdef")
        # --url names a search result again (spelled differently): it is scraped once
        out = run("--search", "3", "--url", "https://b.example/cost", "--run-id", "fc1", code=3)
        paths = [r.path for r in server.requests]
        assert paths.count("/v2/search") == 1 and paths.count("/v2/scrape") == 3
        server.clear()
        again = run("--search", "3", "--url", "https://b.example/cost", code=3)
        # what succeeded replays; the page that is gone (404) is remembered as gone: no Firecrawl credits
        assert server.requests == []
        server.clear()
        run("--search", "3", "--url", "https://b.example/cost", "--retry-failed", code=3)
        assert [(r.path, r.json()["url"]) for r in server.requests] == [("/v2/scrape", "https://c.example/none")]
    journal = steps("fc1")
    assert [s["kind"] for s in journal].count("search") == 1
    assert {s["provider"] for s in journal if s["kind"] in ("search", "scrape")} == {"firecrawl"}
    report = Path(out["report_path"]).read_text()
    assert "Cold data" in report and "Costs" in report and "https://c.example/none" in report
    assert again["totals"]["paid"] == 0 and again["totals"]["failed"] == 1


def test_a_rejected_firecrawl_key_stops_the_run_with_one_line(monkeypatch):
    with serve(FakeFirecrawl(api_key="fc-right0123456789abcdef")) as server:
        monkeypatch.setenv("FIRECRAWL_API_URL", server.url)
        monkeypatch.setenv("FIRECRAWL_API_KEY", "fc-wrong0123456789abcdef")
        result = cli("run", Q, "--url", "https://a.example/1", "--url", "https://a.example/2", "--run-id", "bad")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "FIRECRAWL_API_KEY" in result.stderr and "research resume bad" in result.stderr
    assert "fc-wrong" not in result.stderr
    assert cli_json("show", "bad")["status"] == "failed"


def test_help_imports_neither_firecrawl_nor_the_fetcher():
    code = ("import sys\n"
            "from agent.cli import main\n"
            "sys.argv = ['research', 'run', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('firecrawl', 'httpx', 'agent.sources.web') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env=subprocess_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--urls-file" in proc.stdout and "--search" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_fetch_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RESEARCH_FETCH_MAX_BYTES", "2000")
    big = page("Big page", *["Heat pumps keep working in cold climates when they are well sized."] * 200)
    with serve(Site({"/big": html(big), "/costs": html(COSTS_V1)})) as server:
        out = run("--url", f"{server.url}/big", "--url", f"{server.url}/costs", code=3)
    failed = [s for s in steps(out["run_id"]) if s["status"] == "failed"]
    assert len(failed) == 1 and "/big" in failed[0]["name"] and "the 2,000 bytes limit" in failed[0]["error"]
    monkeypatch.setenv("RESEARCH_FETCH_MAX_BYTES", "lots")
    result = cli("run", Q, "--url", "https://example.org/x")
    assert result.exit_code == 2 and "RESEARCH_FETCH_MAX_BYTES" in result.stderr


def test_lasting_failures_are_remembered_and_transient_ones_are_not(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "0")
    site = website()
    site["/flaky"] = Reply(503, "busy", {"Content-Type": "text/plain"})
    with serve(site) as server:
        urls = ["--url", f"{server.url}/article", "--url", f"{server.url}/gone", "--url", f"{server.url}/flaky"]
        run(*urls, "--run-id", "f1", code=3)
        assert site.hits["/gone"] == 1 and site.hits["/flaky"] == 1
        run(*urls, "--run-id", "f2", code=3)
        assert site.hits["/gone"] == 1  # a 404 is not asked again within the hour
        assert site.hits["/flaky"] == 2  # a 503 is
        report = Path("reports/f2.md").read_text()
        assert "HTTP 404 not found (failed earlier at " in report and "not retried" in report
        run(*urls, "--run-id", "f3", "--retry-failed", code=3)
        assert site.hits["/gone"] == 2


def test_bad_lines_of_a_url_list_fail_alone_and_robots_txt_is_honoured(tmp_path):
    site = website()
    site["/robots.txt"] = Reply(200, "User-agent: *\nDisallow: /costs\n", {"Content-Type": "text/plain"})
    site["/old"] = Reply(301, "", {"Location": "/article"})
    with serve(site) as server:
        listing = tmp_path / "urls.txt"
        listing.write_text(f"{server.url}/old\njavascript:alert(1)\nfile:///etc/passwd\n{server.url}/costs\n")
        out = run("--urls-file", listing, "--run-id", "bad1", code=3)
        assert site.hits["/costs"] == 0  # robots.txt said no, so it was not asked for
        report = Path(out["report_path"]).read_text()
        failed = report.split("## What failed or was left out", 1)[1]
        assert "line 2" in failed and "javascript:" in failed
        assert "line 3" in failed and "--file" in failed
        assert "robots.txt of 127.0.0.1" in failed and "--ignore-robots" in failed
        # Provenance: the page that redirected is cited where it was asked for, and says where it was read.
        assert f"<{server.url}/old> (read at <{server.url}/article>" in report
        assert "/etc/passwd" not in report.split("## What failed", 1)[0]
        again = run("--urls-file", listing, "--ignore-robots", "--run-id", "bad2", code=3)
        assert site.hits["/costs"] == 1
        assert "robots.txt" not in Path(again["report_path"]).read_text()
