"""``ollama:`` asks its server for the model's context window, once, and keeps the answer as a step.

The server here is the OpenAI fake behind an ``/api/show`` route that speaks Ollama's native API. A
model whose parameters set ``num_ctx 2048`` gets a long source in parts that fit 2048 tokens; a second
run with the server no longer answering ``/api/show`` (an older Ollama, a proxy that forwards only
``/v1``) splits the source alike, so every step replays and nothing is sent again.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.helpers import cli_json
from tests.servers import Reply, Request, serve
from tests.servers.openai_api import OpenAIAPI
from tests.test_mapreduce import long_document
from agent.providers.openai import ollama_context

QUESTION = "Do heat pumps keep their efficiency in cold winters?"


class Ollama:
    """Ollama's ``/api/show`` beside the OpenAI-compatible ``/v1`` the fake answers."""

    def __init__(self, show: dict | None) -> None:
        self.api = OpenAIAPI()
        self.show = show
        self.shown: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        if request.path == "/api/show":
            with self.lock:
                self.shown.append(request.json())
            if self.show is None:
                return Reply(404, {"error": "not found"})
            return Reply(200, self.show)
        return self.api(request)


def chats(server) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


def test_the_context_window_comes_from_the_server_and_stays_put(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "long.md").write_text(long_document(160), encoding="utf-8")  # ~ 8k tokens
    monkeypatch.chdir(tmp_path)
    ollama = Ollama({"parameters": "num_ctx                        2048\nstop \"<|im_end|>\"",
                     "model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768}})
    with serve(ollama) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        first = cli_json("run", QUESTION, "--file", "docs", "--model", "ollama:qwen2.5", "--run-id", "one",
                         "--no-check-claims")
        sent = chats(server)
        assert ollama.shown and ollama.shown[0]["model"] == "qwen2.5"
        assert len(ollama.shown) == 1  # asked once for the whole run, not once per source part
        parts = [r.json() for r in server.requests if r.path.endswith("/chat/completions")]
        summaries = [p for p in parts if "part " in str(p["messages"])]
        assert len(summaries) >= 4  # an 8k-token source in parts that fit a 2048-token window
        steps = cli_json("show", "one")["steps"]
        probes = [s for s in steps if s["kind"] == "probe"]
        assert len(probes) == 1 and probes[0]["status"] == "completed"

        ollama.show = None  # the server stops answering /api/show
        second = cli_json("run", QUESTION, "--file", "docs", "--model", "ollama:qwen2.5", "--run-id", "two",
                          "--no-check-claims")
    assert chats(server) == sent  # the same parts, the same keys: nothing sent again
    assert second["totals"]["this_attempt"]["paid"] == 0
    reports = [Path(run["report_path"]).read_text(encoding="utf-8") for run in (first, second)]
    assert reports[0].split("\n", 3)[3] == reports[1].split("\n", 3)[3]  # past the title and run id


def test_a_server_that_cannot_say_leaves_the_default_and_stores_nothing(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.md").write_text("# Note\n\nHeat pumps work in cold climates when sized well.\n")
    monkeypatch.chdir(tmp_path)
    ollama = Ollama(None)
    with serve(ollama) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        out = cli_json("run", QUESTION, "--file", "docs", "--model", "ollama:qwen2.5", "--run-id", "r",
                       "--no-check-claims")
        steps = cli_json("show", "r")["steps"]
    assert ollama.shown  # it asked
    assert not [s for s in steps if s["kind"] == "probe"]  # a failed question is neither stored nor journaled
    assert out["totals"]["failed"] == 0


def test_what_an_api_show_answer_gives():
    assert ollama_context({"parameters": "num_ctx 4096\ntemperature 0.7"}, 8192) == 4096
    # no num_ctx: the trained length, no more than the default the server is assumed to serve
    assert ollama_context({"model_info": {"llama.context_length": 131072}}, 8192) == 8192
    assert ollama_context({"model_info": {"gemma.context_length": 2048}}, 8192) == 2048
    assert ollama_context({"parameters": "stop x"}, 8192) is None
    assert ollama_context(["not", "a", "mapping"], 8192) is None
