"""``--max-cost``: stop before a paid call would go past the budget; resume with a new one."""

import json
from pathlib import Path

from tests.helpers import CORPUS, QUESTION, cli, cli_json


def price_local(tmp_path, monkeypatch):
    prices = tmp_path / "prices.json"
    # Price the offline model like a hosted one so budgets have something to count.
    prices.write_text(json.dumps({"local": {"extractive": {"input": 100.0, "output": 100.0}}}))
    monkeypatch.setenv("RESEARCH_PRICES", str(prices))


def test_budget_stops_then_resume_continues(tmp_path, monkeypatch):
    price_local(tmp_path, monkeypatch)
    result = cli("run", QUESTION, "--file", CORPUS, "--run-id", "b1", "--max-cost", "0.5", "--concurrency", "1")
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "budget" in result.stderr and "research resume b1" in result.stderr
    shown = cli_json("show", "b1")
    assert shown["status"] == "stopped"
    assert shown["totals"]["failed"] == 0  # held back, not failed
    spent = shown["totals"]["cost_usd"]
    assert 0 < spent <= 0.5
    paid_before = {s["key"] for s in shown["steps"] if s["kind"] == "llm" and not s["replayed"]}
    assert 0 < len(paid_before) < 7
    assert not Path("reports/b1.md").exists()

    resumed = cli("resume", "b1", "--max-cost", "100", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    shown = cli_json("show", "b1")
    assert shown["status"] == "completed" and shown["totals"]["paid"] == 12
    assert Path("reports/b1.md").exists()
    # what was paid before the stop was not paid again
    assert shown["totals"]["cost_usd"] > spent
    events_paid = [s for s in shown["steps"] if s["key"] in paid_before]
    assert all(not s["replayed"] for s in events_paid)


def test_costs_are_reported_and_saved_on_replay(tmp_path, monkeypatch):
    price_local(tmp_path, monkeypatch)
    first = cli_json("run", QUESTION, "--file", CORPUS)
    second = cli_json("run", QUESTION, "--file", CORPUS)
    assert first["totals"]["cost_usd"] > 0
    assert second["totals"]["cost_usd"] == 0
    assert abs(second["totals"]["saved_usd"] - first["totals"]["cost_usd"]) < 1e-6


def test_budget_with_an_unpriced_model_is_refused_before_any_call(monkeypatch):
    from tests.servers import serve
    from tests.servers.openai_api import OpenAIAPI

    with serve(OpenAIAPI()) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000000000")
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        result = cli("run", QUESTION, "--file", CORPUS, "--model", "openai:my-finetune", "--max-cost", "1")
        assert server.requests == []
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "price is unknown" in result.stderr and "RESEARCH_PRICES" in result.stderr
