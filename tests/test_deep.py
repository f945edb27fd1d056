"""Deep mode: rounds of plan -> search -> read, each durable, so a rerun or resume decides the same."""

import json
import re
from pathlib import Path

from tests.helpers import cli, cli_json
from tests.servers import serve
from tests.servers.firecrawl import FakeFirecrawl, FakePage

Q = "Do heat pumps work well in cold climates?"
KEY = "fc-deep0123456789abcdef"


class GrowingWeb(FakeFirecrawl):
    """A web where every query finds two pages about its words, and every such page exists."""

    def __call__(self, request):
        body = request.json() or {}
        if request.path == "/v2/search":
            query = body.get("query", "")
            slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")
            self.results.setdefault(query, [
                {"url": f"https://deep.example/{slug}/{n}", "title": f"{query} ({n})", "description": query}
                for n in (1, 2)
            ])
        if request.path == "/v2/scrape":
            url = body.get("url", "")
            words = url.rsplit("/", 2)[-2].replace("-", " ")
            self.pages.setdefault(url, FakePage(
                f"# On {words}\n\nA study of {words} found that heat pumps in cold climates kept working when "
                f"installers sized them well. Page {url[-1]} adds that {words} matter for running costs.", f"On {words}"))
        return super().__call__(request)


def test_depth_rounds_are_durable_and_replay_the_same_decisions(monkeypatch):
    with serve(GrowingWeb(api_key=KEY)) as server:
        monkeypatch.setenv("FIRECRAWL_API_URL", server.url)
        monkeypatch.setenv("FIRECRAWL_API_KEY", KEY)
        out = cli_json("run", Q, "--search", "2", "--depth", "2", "--breadth", "2", "--run-id", "deep")
        first_requests = len(server.requests)
        steps = cli_json("show", "deep")["steps"]
        names = [s["name"] for s in steps]
        assert "plan round 1" in names and "plan round 2" in names
        searches = [s for s in steps if s["kind"] == "search"]
        assert 3 <= len(searches) <= 5  # the question, then up to two queries a round
        report = Path(out["report_path"]).read_text()
        sources = re.findall(r"^### \[(\d+)\]", report, flags=re.M)
        assert len(sources) > 2  # follow-up rounds found more than the first search

        server.clear()
        again = cli_json("resume", "deep")
        assert server.requests == [] and again["status"] == "completed"
        assert Path(again["report_path"]).read_text() == report

        fresh = cli_json("run", Q, "--search", "2", "--depth", "2", "--breadth", "2")
        assert server.requests == [] and fresh["totals"]["paid"] == 0
    assert first_requests >= 6


def test_depth_without_search_backend_is_one_line():
    result = cli("run", Q, "--file", ".", "--depth", "1")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "--depth needs a search backend" in result.stderr


def test_the_planner_is_asked_for_json_and_a_rambling_one_is_noted(monkeypatch):
    """The plan goes through the SDK's structured output; a model that writes prose anyway still gives
    bounded queries, and the report says what was done."""
    from tests.servers.openai_api import OpenAIAPI

    class Rambling(OpenAIAPI):
        def answer_text(self, model, request):
            if "follow-up web search queries" in json.dumps(request.json()):
                return ("I would suggest looking at how heat pumps perform in very cold Nordic winters when "
                        "installers size them carefully and homes are well insulated against the cold, and also at "
                        "what the grants cover, how long the waiting lists are and what owners say a year later\n"
                        "cold climate heat pump running costs")
            return super().answer_text(model, request)

    openai = Rambling(key="sk-plan", follows_schema=False)
    with serve(GrowingWeb(api_key=KEY)) as web, serve(openai) as models:
        monkeypatch.setenv("FIRECRAWL_API_URL", web.url)
        monkeypatch.setenv("FIRECRAWL_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-plan")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{models.url}/v1")
        out = cli_json("run", Q, "--search", "1", "--depth", "1", "--breadth", "2", "--model", "openai:gpt-4o-mini")
    plan = next(r.json() for r in openai.answered if "follow-up web search queries" in json.dumps(r.json()))
    assert plan["response_format"]["type"] == "json_schema"
    assert plan["response_format"]["json_schema"]["schema"]["properties"]["queries"]["type"] == "array"
    searched = [r.json()["query"] for r in web.requests if r.path == "/v2/search"]
    assert all(len(q.split()) <= 32 for q in searched) and len(searched) == 3
    report = Path(out["report_path"]).read_text()
    assert "did not answer in the JSON asked for" in report and "cut to their first words" in report
