"""The report holds each cited sentence against the source it cites: a changed figure, a wrong source and
an invented sentence are marked where they stand; a faithful one is not."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

from tests.helpers import cli, cli_json
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI

Q = "How well do heat pumps work in cold climates?"
NORDIC = ("# Nordic field trial\n\nIn the Nordic field trial, the units kept working through a winter that reached "
          "minus 25 °C. The trial followed 140 homes in Finland and Sweden.\n")
COSTS = ("# Running costs\n\nWhere electricity costs four times as much as gas, a heat pump needs a seasonal COP "
         "above four to be cheaper to run than a gas boiler.\n")


class Scripted(OpenAIAPI):
    """A model whose synthesis is plausible and partly wrong."""

    def answer_text(self, model, request):
        prompt = json.dumps(request.json()["messages"])
        if "Write two Markdown sections" in prompt:
            return ("## Answer\n\n"
                    "In the Nordic field trial, the units kept working through a winter that reached "
                    "minus 25 °C [1]. The trial followed 190 homes in Finland and Sweden [1]. Where electricity "
                    "costs four times as much as gas, a heat pump needs a seasonal COP above four to be cheaper "
                    "to run than a gas boiler [1]. Geothermal loops double the lifetime of every compressor [2].\n")
        return super().answer_text(model, request)


def write_docs() -> Path:
    docs = Path("docs")
    docs.mkdir()
    (docs / "1-nordic.md").write_text(NORDIC)
    (docs / "2-costs.md").write_text(COSTS)
    return docs


@contextlib.contextmanager
def scripted_model(monkeypatch) -> Iterator[None]:
    """The partly wrong model of :class:`Scripted`, as ``openai:`` for the block."""
    with serve(Scripted(key="sk-claims")) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-claims")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        yield


def test_failed_claims_are_marked_and_listed_and_faithful_ones_are_not(tmp_path, monkeypatch):
    docs = write_docs()
    with scripted_model(monkeypatch):
        out = cli_json("run", Q, "--file", docs, "--model", "openai:gpt-4o-mini", "--format", "md,json",
                       "--run-id", "claims")
    report = Path(out["report_paths"]["md"]).read_text()
    answer = report.split("## Answer", 1)[1].split("## Where the models", 1)[0]
    assert "minus 25 °C [1]. The trial" in answer  # copied from its source: no mark after it
    assert "Sweden [1]. ⚠ *“190” is not in [1]*" in answer  # the source says 140
    assert "gas boiler [1]. ⚠ *" in answer and "[2]" in answer.split("gas boiler [1]. ⚠", 1)[1].split("*", 2)[1]
    assert "compressor [2]. ⚠ *no source of this run says this*" in answer
    section = report.split("## Claims checked", 1)[1].split("## Sources", 1)[0]
    assert "figure not in source" in section and "found elsewhere" in section and "not found" in section
    claims = json.loads(Path(out["report_paths"]["json"]).read_text())["claims"]
    verdicts = [c["verdict"] for c in claims if c["section"] == "answer"]
    assert verdicts == ["quoted", "figure not in source", "found elsewhere", "not found"]
    off = cli("run", Q, "--file", docs, "--no-check-claims", "--run-id", "plain")
    assert off.exit_code == 0 and "## Claims checked" not in Path("reports/plain.md").read_text()


class Checker(OpenAIAPI):
    """A second-pass model: it finds the paraphrase about running costs contradicted by its source."""

    def answer_text(self, model, request):
        prompt = json.dumps(request.json()["messages"])
        if "Write two Markdown sections" in prompt:
            return ("## Answer\n\n"
                    "In the Nordic field trial, the units kept working through a winter that reached "
                    "minus 25 °C [1]. Running a heat pump always costs less than running a gas boiler [2].\n")
        return super().answer_text(model, request)


def test_a_check_model_judges_what_the_first_pass_cannot_settle(tmp_path, monkeypatch):
    docs = Path("docs")
    docs.mkdir()
    (docs / "1-nordic.md").write_text(NORDIC)
    (docs / "2-costs.md").write_text(COSTS)
    fake = Checker(key="sk-check", json_reply={"verdict": "contradicted",
                                               "quote": "a heat pump needs a seasonal COP above four to be cheaper"})
    with serve(fake) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-check")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        args = ("run", Q, "--file", docs, "--model", "openai:gpt-4o-mini", "--check-with", "openai:gpt-4o-mini",
                "--format", "md,json", "--run-id", "judged")
        out = cli_json(*args)
        checks = [r for r in fake.answered if "claim_check" in json.dumps(r.json().get("response_format", {}))]
        again = cli_json(*args)
    assert checks, "the unsettled claim went to the check model through structured output"
    claims = json.loads(Path(out["report_paths"]["json"]).read_text())["claims"]
    judged = [c for c in claims if "second_pass" in c]
    assert judged and judged[0]["second_pass"]["verdict"] == "contradicted"
    assert judged[0]["second_pass"]["quote_found"] is True
    report = Path(out["report_paths"]["md"]).read_text()
    assert "gas boiler [2]. ⚠ *contradicted by [2], says openai:gpt-4o-mini*" in report
    assert "contradicted (openai:gpt-4o-mini)" in report.split("## Claims checked", 1)[1]
    steps = cli_json("show", "judged")["steps"]
    assert any(s["name"].startswith("check claim:") and s["cost_usd"] for s in steps)  # it is paid and counted
    assert again["totals"]["this_attempt"]["paid"] == 0  # and replays like every other step
    refused = cli("run", Q, "--file", docs, "--check-with", "local:extractive")
    assert refused.exit_code == 2 and "cannot judge claims" in refused.stderr
