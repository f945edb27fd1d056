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
    assert summary["totals"]["cost_usd"] == 0.0 and summary["totals"]["cost_complete"] is False
