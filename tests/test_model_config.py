"""Models named in research.toml (or given in Python) with their own endpoint, key, limits and prices,
side by side with the environment's in one run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import CORPUS, QUESTION, cli, cli_json
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI


def test_two_endpoints_in_one_run_each_with_its_own_settings(tmp_path, monkeypatch):
    official, house = OpenAIAPI(key="sk-official"), OpenAIAPI(key="house-key")
    with serve(official) as a, serve(house) as b:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-official")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{a.url}/v1")
        monkeypatch.setenv("HOUSE_KEY", "house-key")
        Path("research.toml").write_text(f"""
[models.house-qwen]
provider = "openai-compatible"
model = "qwen2.5-7b"
base_url = "{b.url}/v1"
api_key_env = "HOUSE_KEY"
context_window = 1280
max_output_tokens = 300
concurrency = 1
input_price = 0.5
output_price = 1.5
""")
        out = cli_json("run", QUESTION, "--file", CORPUS, "--model", "house-qwen", "--model", "openai:gpt-4o-mini",
                       "--run-id", "two")
    assert out["status"] == "completed"
    # The house model wrote the summaries and the report; OpenAI only its own analysis.
    assert len(official.answered) == 1 and len(house.answered) >= 7
    for request in house.answered:
        body = request.json()
        assert body["model"] == "qwen2.5-7b" and body["max_tokens"] <= 300
        assert request.headers["authorization"] == "Bearer house-key"
    # A small context: the longest source was summarized in parts that fit.
    assert any(" part " in s["name"] for s in cli_json("show", "two")["steps"])
    assert out["totals"]["cost_complete"] is True and out["totals"]["cost_usd"] > 0
    report = Path(out["report_path"]).read_text()
    assert "### house-qwen" in report and "house-key" not in report


def test_a_broken_model_definition_is_one_line(tmp_path):
    Path("research.toml").write_text('[models.x]\nprovider = "openai-compatible"\nbase_ur = "http://h/v1"\n')
    result = cli("run", QUESTION, "--file", CORPUS, "--model", "x")
    assert result.exit_code == 2 and "model 'x': unknown field 'base_ur'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_research_takes_models_with_explicit_settings(tmp_path):
    from agent import Research

    house = OpenAIAPI(key="explicit-key")
    with serve(house) as server:
        research = Research(cache_dir=tmp_path / "c", models=[{
            "name": "house", "provider": "openai-compatible", "model": "qwen", "base_url": f"{server.url}/v1",
            "api_key": "explicit-key", "input_price": 0.1, "output_price": 0.2}])
        report = research.run(QUESTION, files=[CORPUS])
    assert report.status == "completed" and report.cost_usd and report.cost_usd > 0
    assert all(r.headers["authorization"] == "Bearer explicit-key" for r in house.answered)
    journal = (tmp_path / "c" / "journal.sqlite3").read_bytes()
    assert b"explicit-key" not in journal and b"house" in journal
