"""Crash safety with hosted models: SIGKILL a real ``research run`` talking to three slow vendor APIs.

The OpenAI, Anthropic and Gemini fakes answer after a fixed latency, two calls in flight per provider,
so a kill lands while some answers are journaled and others are on the wire. After ``research resume``:

- no request whose answer the journal had recorded is sent again (the fakes' answers name the request
  they answer, so the journal says exactly which requests were already paid for);
- no request is answered twice, except those that were in flight when the process died;
- the report equals the one an uninterrupted run with the same ``--run-id`` writes.

The killed runs are real processes; the reference run and the resumes run in-process through the same
CLI, which keeps the drill fast (each new process spends seconds importing the three SDKs).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from agent.store import Store
from tests.conftest import subprocess_env
from tests.helpers import CORPUS, QUESTION, cli, completed_events, research_proc, sigkill_when
from tests.servers import serve
from tests.servers.anthropic_api import AnthropicAPI
from tests.servers.fake_api import digest
from tests.servers.gemini_api import GeminiAPI
from tests.servers.openai_api import OpenAIAPI

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

RUN_ID = "crash-hosted"
LATENCY = 0.2
CONCURRENCY = 2
MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"]
LLM_STEPS = 5 + 3 + 1  # a summary per source (5 in the corpus), an analysis per model, the report
_ANSWER = re.compile(r"answer ([0-9a-f]{12})")


def run_args(cache: Path, out: Path) -> list[str]:
    args = ["run", QUESTION, "--file", str(CORPUS), "--run-id", RUN_ID, "--cache-dir", str(cache),
            "--out", str(out), "--concurrency", str(CONCURRENCY)]
    for model in MODELS:
        args += ["--model", model]
    return args


def journaled_requests(cache: Path) -> set[str]:
    """The requests (by digest) whose answers the journal recorded as completed."""
    conn = sqlite3.connect(cache / "journal.sqlite3")
    try:
        keys = [k for (k,) in conn.execute(
            "SELECT DISTINCT key FROM events WHERE status = 'completed' AND kind = 'llm' AND run_id = ?", (RUN_ID,))]
    finally:
        conn.close()
    with Store(cache) as store:
        texts = [store.get(key)["value"]["text"] for key in keys]
    return {_ANSWER.search(text).group(1) for text in texts}


@pytest.fixture
def apis(monkeypatch):
    fakes = {"openai": OpenAIAPI(latency=LATENCY, key="openai-key-1a2b3c"),
             "anthropic": AnthropicAPI(latency=LATENCY, key="anthropic-key-4d5e6f"),
             "gemini": GeminiAPI(latency=LATENCY, key="gemini-key-7a8b9c")}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(serve(fake)) for name, fake in fakes.items()}
        settings = {
            "OPENAI_API_KEY": "openai-key-1a2b3c", "OPENAI_BASE_URL": f"{servers['openai'].url}/v1",
            "ANTHROPIC_API_KEY": "anthropic-key-4d5e6f", "ANTHROPIC_BASE_URL": servers["anthropic"].url,
            "GEMINI_API_KEY": "gemini-key-7a8b9c", "GOOGLE_GEMINI_BASE_URL": servers["gemini"].url,
        }
        for name, value in settings.items():  # for the runs made in this process
            monkeypatch.setenv(name, value)
        yield fakes, servers, subprocess_env(**settings)


def test_sigkill_mid_run_then_resume_pays_for_nothing_twice(tmp_path, apis):
    fakes, servers, env = apis
    # Only the runs to be killed need a process of their own (each pays ~4 s to import three SDKs);
    # the reference and the resumes run in this one.
    reference = cli(*run_args(tmp_path / "ref-cache", tmp_path / "ref-out"))
    assert reference.exit_code == 0, reference.stderr
    expected = (tmp_path / "ref-out" / f"{RUN_ID}.md").read_text()
    assert sum(len(f.answered) for f in fakes.values()) == LLM_STEPS

    kill_points = {
        # two summaries answered and journaled, two more on the wire
        "summaries": lambda cache: len(servers["openai"].requests) >= 4,
        # every summary done, the three analyses racing to finish
        "analyses": lambda cache: completed_events(cache, "llm") >= 6,
    }
    for point, reached in kill_points.items():
        for name in fakes:
            servers[name].clear()
            fakes[name].answered.clear()
        cache, out = tmp_path / f"cache-{point}", tmp_path / f"out-{point}"
        proc = research_proc(*run_args(cache, out), env=env, cwd=tmp_path)
        sigkill_when(proc, lambda: reached(cache), seconds=20)

        paid_before = journaled_requests(cache)
        assert paid_before, "nothing was journaled before the kill"
        sent_before = {name: len(server.requests) for name, server in servers.items()}
        in_flight = {digest(r) for server in servers.values() for r in server.requests} - paid_before
        assert len(in_flight) <= CONCURRENCY * len(MODELS)
        if point == "summaries":
            assert in_flight, "the kill was meant to land with requests on the wire"

        resumed = cli("resume", RUN_ID, "--cache-dir", str(cache))
        assert resumed.exit_code == 0, resumed.stderr
        assert (out / f"{RUN_ID}.md").read_text() == expected

        for name, server in servers.items():
            again = {digest(r) for r in server.requests[sent_before[name]:]}
            assert not again & paid_before, f"{name} was asked again for answers the journal had"
        twice = [d for fake in fakes.values() for d, n in Counter(digest(r) for r in fake.answered).items() if n > 1]
        assert set(twice) <= in_flight, "an answer received before the kill was paid for again"
        assert sum(len(f.answered) for f in fakes.values()) <= LLM_STEPS + len(in_flight)
