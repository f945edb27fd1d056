"""What calls cost: the price table, snapshots of listed models, and honest unknowns."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.journal import totals
from agent.llm import CompletionRequest, Usage, complete
from agent.pricing import cost_of, price_of
from agent.providers import get_provider
from agent.runs import Workspace
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI


def test_listed_models_and_their_snapshots_are_priced():
    assert price_of("openai", "gpt-4o-mini") == price_of("openai", "gpt-4o-mini-2024-07-18")
    assert price_of("anthropic", "claude-sonnet-4-5-20250929") == price_of("anthropic", "claude-sonnet-4-5")
    assert price_of("anthropic", "claude-sonnet-4-20250514") == price_of("anthropic", "claude-sonnet-4-0")
    assert price_of("gemini", "gemini-2.0-flash-001") == price_of("gemini", "gemini-2.0-flash")
    assert price_of("ollama", "anything:7b") == {"input": 0.0, "output": 0.0}


def test_a_longer_name_is_another_model_not_a_snapshot():
    # o3-pro costs ten times o3; pricing it as o3 would be a confident wrong number.
    assert price_of("openai", "o3-pro") is None
    assert price_of("openai", "gpt-5-pro") is None
    assert price_of("openai-compatible", "gpt-4o-mini") is None


def test_cost_counts_cached_input_at_its_own_price():
    price = price_of("openai", "gpt-4o-mini")
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=400_000)
    expected = 0.6 * price["input"] + 0.4 * price["cached_input"] + price["output"]
    assert cost_of("openai", "gpt-4o-mini", usage) == pytest.approx(expected)


def test_price_file_extends_the_table(tmp_path, monkeypatch):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"openai-compatible": {"my-model": {"input": 1.0, "output": 2.0}}}))
    monkeypatch.setenv("RESEARCH_PRICES", str(prices))
    assert cost_of("openai-compatible", "my-model", Usage(input_tokens=1000, output_tokens=500)) == pytest.approx(0.002)


def test_unknown_model_counts_tokens_and_costs_none(tmp_path, monkeypatch):
    with serve(OpenAIAPI()) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key-123456")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        provider = get_provider("openai:house-model-v9")
        workspace = Workspace.open(tmp_path / "cache")

        async def go():
            runtime = workspace.start("priced", question="q", inputs={"q": 1}, config={})
            try:
                return await complete(runtime, provider, CompletionRequest(prompt="how much?"), name="ask")
            finally:
                await provider.aclose()

        try:
            completion, result = asyncio.run(go())
            steps = workspace.journal.steps("priced")
            summary = workspace.summary("priced")
        finally:
            workspace.close()
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0
    assert result.input_tokens == completion.usage.input_tokens
    assert result.cost_usd is None
    (step,) = steps
    assert step["input_tokens"] > 0 and step["cost_usd"] is None
    assert totals(steps)["cost_complete"] is False
    assert summary["totals"]["cost_usd"] is None and summary["totals"]["cost_complete"] is False


def test_an_unpriced_model_shows_its_cost_as_unknown_everywhere(tmp_path, monkeypatch):
    from agent import Research
    from tests.helpers import CORPUS, QUESTION, cli

    with serve(OpenAIAPI()) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        first = cli("run", QUESTION, "--file", CORPUS, "--model", "openai-compatible:house-model", "--run-id", "u1")
        assert first.exit_code == 0, first.stderr
        assert "cost unknown" in first.stdout and "$0.0000" not in first.stdout.split("cost ", 1)[1].split(",")[0]
        listed = cli("runs")
        assert "unknown" in listed.stdout and "$0.0000" not in listed.stdout
        (row,) = json.loads(cli("runs", "--json").stdout)
        assert row["cost_usd"] is None and row["cost_complete"] is False
        report = Research(models=["openai-compatible:house-model"]).run(QUESTION, files=[CORPUS])
        assert report.cost_usd == 0.0 or report.cost_usd is None  # a new run: every step replays
        assert report.saved_usd is None  # what the replayed calls cost is not known either
        again = cli("run", QUESTION, "--file", CORPUS, "--model", "openai-compatible:house-model")
        assert "saved unknown" in again.stdout
