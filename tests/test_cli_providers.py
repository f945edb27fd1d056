"""``research run`` with OpenAI, Anthropic and Gemini models at once, each a loopback fake of its API.

The real CLI, the real SDKs, real HTTP: a run writes a report with every model's analysis and prices
each step; a rerun sends nothing; a missing key stops everything before a request; a rejected key
stops the run, and once the key is fixed ``research resume`` finishes it without paying twice.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import CORPUS, QUESTION, cli
from tests.servers import serve
from tests.servers.anthropic_api import AnthropicAPI
from tests.servers.gemini_api import GeminiAPI
from tests.servers.openai_api import OpenAIAPI

# google-genai defines a ClientSession subclass, which aiohttp frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"]
KEYS = {"openai": "openai-key-1a2b3c", "anthropic": "anthropic-key-4d5e6f", "gemini": "gemini-key-7a8b9c"}


class Vendors:
    def __init__(self, stack: contextlib.ExitStack, monkeypatch) -> None:
        self.fakes = {"openai": OpenAIAPI(key=KEYS["openai"]), "anthropic": AnthropicAPI(key=KEYS["anthropic"]),
                      "gemini": GeminiAPI(key=KEYS["gemini"])}
        self.servers = {name: stack.enter_context(serve(fake)) for name, fake in self.fakes.items()}
        for name, value in {
            "OPENAI_API_KEY": KEYS["openai"], "OPENAI_BASE_URL": f"{self.servers['openai'].url}/v1",
            "ANTHROPIC_API_KEY": KEYS["anthropic"], "ANTHROPIC_BASE_URL": self.servers["anthropic"].url,
            "GEMINI_API_KEY": KEYS["gemini"], "GOOGLE_GEMINI_BASE_URL": self.servers["gemini"].url,
            "RESEARCH_MAX_RETRIES": "1", "RESEARCH_RETRY_CAP": "0.01",
        }.items():
            monkeypatch.setenv(name, value)

    def requests(self) -> dict[str, int]:
        return {name: len(server.requests) for name, server in self.servers.items()}

    def answered_twice(self) -> list[str]:
        return [f"{name}: {body[:80]!r}" for name, fake in self.fakes.items()
                for body, n in Counter(r.body for r in fake.answered).items() if n > 1]


@pytest.fixture
def vendors(monkeypatch):
    with contextlib.ExitStack() as stack:
        yield Vendors(stack, monkeypatch)


def run_args(*extra: str) -> list[str]:
    args = ["run", QUESTION, "--file", str(CORPUS)]
    for model in MODELS:
        args += ["--model", model]
    return args + list(extra)


def show(run_id: str) -> dict:
    result = cli("show", run_id, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_three_vendors_write_one_report_and_a_rerun_sends_nothing(vendors):
    first = cli(*run_args("--run-id", "three", "--format", "md,json"))
    assert first.exit_code == 0, first.stderr
    report = Path("reports/three.md").read_text()
    for model in MODELS:
        assert f"### {model}" in report
    for vendor in ("openai", "anthropic", "gemini"):
        assert f"{vendor} " in report and "answer " in report
    assert all(count > 0 for count in vendors.requests().values())

    summary = show("three")
    llm_steps = [s for s in summary["steps"] if s["kind"] == "llm"]
    assert {s["provider"] for s in llm_steps} == {"openai", "anthropic", "gemini"}
    for step in llm_steps:
        assert step["status"] == "completed" and not step["replayed"]
        assert step["input_tokens"] > 0 and step["output_tokens"] > 0
        assert step["cost_usd"] > 0
    assert summary["totals"]["cost_complete"] is True
    assert summary["totals"]["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in llm_steps), abs=1e-5)

    before = vendors.requests()
    again = cli(*run_args("--run-id", "three-again"))
    assert again.exit_code == 0, again.stderr
    assert vendors.requests() == before
    rerun = show("three-again")
    assert rerun["totals"]["paid"] == 0 and rerun["totals"]["cost_usd"] == 0
    assert rerun["totals"]["saved_usd"] == pytest.approx(summary["totals"]["cost_usd"], abs=1e-5)  # sums of rounded costs


def test_missing_key_stops_before_any_request(vendors, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = cli(*run_args("--run-id", "nokey"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ANTHROPIC_API_KEY" in lines[0] and "anthropic" in lines[0]
    assert vendors.requests() == {"openai": 0, "anthropic": 0, "gemini": 0}


def test_rejected_key_stops_the_run_and_resume_finishes_it(vendors, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "anthropic-key-revoked")
    stopped = cli(*run_args("--run-id", "badkey"))
    assert stopped.exit_code == 1
    lines = stopped.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "anthropic" in lines[0] and "ANTHROPIC_API_KEY" in lines[0] and "research resume badkey" in lines[0]
    assert "anthropic-key-revoked" not in stopped.stderr
    assert vendors.requests()["anthropic"] == 1  # a rejected key is not retried
    assert show("badkey")["status"] in ("failed", "stopped")

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEYS["anthropic"])
    resumed = cli("resume", "badkey")
    assert resumed.exit_code == 0, resumed.stderr
    assert "### anthropic:claude-haiku-4-5" in Path("reports/badkey.md").read_text()
    assert vendors.answered_twice() == []
    summary = show("badkey")
    assert summary["status"] == "completed" and summary["totals"]["failed"] == 0


def test_a_step_that_keeps_failing_is_reported_and_the_run_goes_on(vendors):
    gemini = vendors.fakes["gemini"]
    gemini.script(gemini.error(500, "backend error"), gemini.error(503, "still down"))
    result = cli(*run_args("--run-id", "partial"))
    assert result.exit_code == 3, result.stderr
    assert vendors.requests()["gemini"] == 2  # one attempt and the one retry RESEARCH_MAX_RETRIES allows
    report = Path("reports/partial.md").read_text()
    assert "### openai:gpt-4o-mini" in report and "### anthropic:claude-haiku-4-5" in report
    assert "## What failed" in report and "gemini:gemini-2.5-flash failed with HTTP 503" in report
    (failed,) = [s for s in show("partial")["steps"] if s["status"] == "failed"]
    assert failed["provider"] == "gemini" and "HTTP 503" in failed["error"]

    fixed = cli("resume", "partial")  # the server is back: only the failed analysis is paid for
    assert fixed.exit_code == 0, fixed.stderr
    assert vendors.requests()["gemini"] == 3
    assert vendors.answered_twice() == []
