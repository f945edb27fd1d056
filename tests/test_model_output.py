"""What real models do to an answer: they loop, end in bare citation lists, stop at their limit and skip
the heading they were asked for. None of it is published silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.answers import tidy
from tests.helpers import CORPUS, QUESTION, cli, cli_json
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI

LOOP = "Heat pumps work in cold climates when they are sized for the coldest week [1]."


def test_tidy_removes_loops_and_bare_citation_lines():
    text = "\n".join(["## Answer", "", LOOP] + [LOOP] * 24 + ["[1] [2] [3] [4] [5] [6] [7] [8] [9]", "Short. [2]"])
    cleaned, notes = tidy(text)
    assert cleaned.count(LOOP) == 1 and "[9]" not in cleaned and cleaned.endswith("Short. [2]")
    assert notes == ["it repeated itself; 24 repeated lines were removed",
                     "1 line of bare citation numbers was removed"]
    assert tidy("- Yes.\n- Yes.")[0] == "- Yes.\n- Yes."  # short lines may repeat: that is not a loop


class Rambling(OpenAIAPI):
    """A small model: the synthesis loops under its own heading; summaries stop at the token limit
    unless given more room."""

    def answer_text(self, model, request):
        body = request.json()
        prompt = json.dumps(body["messages"])
        if "Write two Markdown sections" in prompt:
            return "# My findings\n\n" + "\n".join([LOOP] * 25) + "\n[1] [2] [3] [4] [5]"
        return "Heat pumps keep working at minus twenty degrees in the Nordic field trial."

    def success(self, model, request, text):
        reply = super().success(model, request, text)
        limit = request.json().get("max_tokens") or request.json().get("max_completion_tokens")
        if "Summarize, in at most" in json.dumps(request.json()["messages"]) and limit and limit < 1000:
            reply.body["choices"][0]["finish_reason"] = "length"
        return reply


def test_truncated_looping_and_headless_answers_are_repaired_and_said(tmp_path, monkeypatch):
    fake = Rambling(key="sk-rambling")
    with serve(fake) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-rambling")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        out = cli_json("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--run-id", "ramble")
    report = Path(out["report_path"]).read_text()
    answer = report.split("## Answer", 1)[1].split("## Where the models", 1)[0]
    assert answer.count(LOOP[:40]) == 1 and "[5]" not in answer.split("\n")[-2]
    notes = report.split("## What failed or was left out", 1)[1]
    assert "repeated itself; 24 repeated lines were removed" in notes
    assert "bare citation numbers" in notes
    assert "no Answer section of its own" in notes
    assert "# My findings" not in report
    # Summaries cut at their 600-token limit were asked again with 1200, which the fake answers in full.
    steps = cli_json("show", "ramble")["steps"]
    first = [s for s in steps if s["name"].startswith("summarize") and "again" not in s["name"]]
    again = [s for s in steps if "(again, 1200 tokens)" in s["name"]]
    assert first and len(again) == len(first) and all(s["truncated"] for s in first)
    assert not any(s.get("truncated") for s in again)
    shown = cli("show", "ramble")
    assert shown.exit_code == 0 and shown.stdout.count("(cut at its token limit)") == len(first)
    # The offline banner belongs to reports the offline model wrote, not to every run it took part in.
    assert "Made with `local:extractive`" not in report


@pytest.mark.parametrize("text, expected", [
    ("  One line of summary with [1] in it.  \n", ("One line of summary with [1] in it.", [])),
    ("One line\r\n", ("One line", [])),
    ("[1] [2] [3]", ("", ["1 line of bare citation numbers was removed"])),
    ("", ("", [])),
    ("Same five words here now.\nSame five words here now!", ("Same five words here now.", [
        "it repeated itself; 1 repeated line was removed"])),
])
def test_tidy_of_one_line_and_of_several(text, expected):
    assert tidy(text) == expected
