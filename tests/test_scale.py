"""A run over many sources keeps summaries in memory, not sources.

- Sources are read only a few waves ahead of their summaries, so a run over thousands never holds
  thousands of texts (watched from a loopback model that answers one request at a time).
- Each text waits on disk once read; the JSON report streams them back one at a time, byte for byte
  what ``json.dumps`` of the whole report would give.
- The claim check reads every source once for its word weights, then builds full indexes of a few at a
  time; its verdicts are remembered in the store, so a replay does not match every claim again.

Memory and time figures are in ``bench/bench_memory.py``; these tests pin the mechanisms.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from pathlib import Path

from agent import claimcheck
from pipelines.report import write_json
from pipelines.research import ResearchResult, Source
from pipelines.spill import LazyTexts, Spill
from tests.helpers import cli_json
from tests.servers import Request, serve
from tests.servers.openai_api import OpenAIAPI
from tests.test_claims_in_report import Q, scripted_model, write_docs


class Watching(OpenAIAPI):
    """Answers one request at a time, noting how many sources had been read when each summary was asked."""

    def __init__(self, journal: Path) -> None:
        super().__init__(latency=0.02)
        self.journal = journal
        self.lock = threading.Lock()
        self.ahead: list[int] = []

    def __call__(self, request: Request):
        with self.lock:  # one at a time, like a single-slot server
            if "<source>" in json.dumps(request.json() or {}):  # the summarize prompt, and only it
                with sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True) as db:
                    (read,) = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'scrape' AND replayed = 0").fetchone()
                self.ahead.append(read - len(self.ahead))  # read, less the summaries already answered
            return super().__call__(request)


def test_sources_are_read_only_a_few_waves_ahead_of_their_summaries(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"note-{i:02d}.md").write_text(f"# Note {i}\n\nHeat pump {i} kept a COP of {2 + i / 10:.1f} "
                                               f"through winter {2000 + i}.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    fake = Watching(tmp_path / "cache" / "journal.sqlite3")
    with serve(fake) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        out = cli_json("run", "What did the heat pumps do in winter?", "--file", docs, "--model", "openai:gpt-4o-mini",
                       "--concurrency", "1", "--no-check-claims")
    assert out["totals"]["failed"] == 0
    assert len(fake.ahead) >= 40  # every summary was seen
    # At most max(8, 2 x concurrency) sources are in hand (read, not yet summarized); without the bound
    # all 40 are read before the second summary is answered.
    assert max(fake.ahead) <= 8, fake.ahead


def test_the_json_report_streams_sources_byte_for_byte():
    spill = Spill()
    texts = ["Erste Quelle: Wärmepumpen — 3,5 kW.\n\n| a | b |", "second \u2028 source \"quoted\" \\ back", ""]
    sources = [Source(id=i + 1, uri=f"doc{i}.md", title=f"Doc {i}", spilled=spill.put(t), summary=f"summary {i}")
               for i, t in enumerate(texts)]
    result = ResearchResult(run_id="r", status="completed", question="q?", models=["local:extractive"],
                            started_at="2026-12-01", sources=sources, synthesis="## Answer\n\nYes [1].")
    out = io.StringIO()
    write_json(result, out)
    expected = {**{k: v for k, v in json.loads(json.dumps(result.__dict__, default=lambda o: None)).items()},
                "sources": [s.to_json() for s in sources]}
    assert json.loads(out.getvalue())["sources"] == expected["sources"]
    assert [s["text"] for s in json.loads(out.getvalue())["sources"]] == texts
    # the very bytes json.dumps gives for the whole report, sources and all
    whole = {k: (v if k != "sources" else [s.to_json() for s in sources]) for k, v in json.loads(out.getvalue()).items()}
    assert out.getvalue() == json.dumps(whole, indent=2, ensure_ascii=False) + "\n"
    empty = io.StringIO()
    write_json(ResearchResult(run_id="e", status="completed", question="q?", models=[], started_at=""), empty)
    assert json.loads(empty.getvalue())["sources"] == []


def test_the_claim_check_reads_each_source_once_and_keeps_a_few():
    reads: dict[int, int] = {}

    def read(text: str) -> str:
        sid = int(text.split()[1])
        reads[sid] = reads.get(sid, 0) + 1
        return text

    texts = {i: f"Source {i} reports that heat pump {i} kept a seasonal COP of {2 + i / 100:.2f} in winter {i}."
             for i in range(1, 61)}
    index = claimcheck.corpus(LazyTexts(texts, read))
    assert set(reads.values()) == {1}  # the weights: every source read once, none kept
    answer = "## Answer\n\n" + " ".join(f"Heat pump {i} kept a seasonal COP of {2 + i / 100:.2f} in winter {i} [{i}]."
                                         for i in range(1, 41))
    verdicts = claimcheck.check_all(answer, index, *claimcheck.answer_span(answer))
    assert [v.verdict for v in verdicts] == ["quoted"] * 40
    assert len(index._built) <= index.KEEP  # full indexes of a few sources at a time, not of all 60
    # Each claim looks at its cited source and OTHERS more: far fewer reads than 40 claims x 60 sources.
    assert sum(reads.values()) <= 60 + 40 * (1 + claimcheck.OTHERS)


def test_claim_verdicts_are_remembered_and_a_replay_reports_them_alike(tmp_path, monkeypatch):
    docs = write_docs()
    with scripted_model(monkeypatch):
        first = cli_json("run", Q, "--file", docs, "--model", "openai:gpt-4o-mini", "--format", "md,json")
        stats = cli_json("cache", "stats")
        second = cli_json("run", Q, "--file", docs, "--model", "openai:gpt-4o-mini", "--format", "md,json")
    assert stats["kinds"]["check"]["entries"] >= 2  # the answer's and the analysis's verdicts
    claims = [json.loads(Path(run["report_paths"]["json"]).read_text())["claims"] for run in (first, second)]
    assert claims[0] == claims[1] and any(c["verdict"] == "figure not in source" for c in claims[0])
    assert second["totals"]["this_attempt"]["paid"] == 0


def _journal_with_steps(directory: Path, run_id: str, count: int) -> None:
    from agent.journal import Journal

    journal = Journal(directory)
    journal.start_run(run_id, question="q?", inputs={"models": ["local:extractive"]}, config={}, fingerprint="f")
    for i in range(count):
        event = {"key": f"k{i}", "kind": "llm", "name": f"summarize source {i}", "provider": "local", "model": "m",
                 "status": "completed", "replayed": 0, "digest": "d", "input_tokens": 10, "output_tokens": 5,
                 "cost_usd": 0.001, "saved_usd": None, "duration_s": 0.01, "error": None, "detail": None}
        journal.record(run_id, 1, event, defer=True)
        if i % 3 == 0:  # a later attempt replays some: each step is still listed once, as paid
            journal.record(run_id, 2, {**event, "replayed": 1, "cost_usd": 0.0, "saved_usd": 0.001}, defer=True)
    journal.record(run_id, 2, {**event, "key": "bad", "name": "a failed one", "status": "failed", "error": "boom",
                               "cost_usd": None})
    journal.close()


def test_show_streams_a_run_of_many_steps_in_order_with_its_totals(tmp_path):
    from agent.journal import JournalBase
    from tests.helpers import cli

    _journal_with_steps(tmp_path / "cache", "big", 3 * JournalBase.PAGE + 7)
    shown = cli_json("show", "big", "--cache-dir", tmp_path / "cache")
    steps = shown["steps"]
    assert [s["key"] for s in steps] == [f"k{i}" for i in range(3 * JournalBase.PAGE + 7)] + ["bad"]
    assert all(s["status"] == "completed" and not s["replayed"] and s["paid_times"] == 1 for s in steps[:-1])
    assert steps[-1]["status"] == "failed" and steps[-1]["error"] == "boom"
    assert shown["totals"]["calls"] == len(steps) and shown["totals"]["paid"] == len(steps) - 1
    assert shown["totals"]["failed"] == 1 and abs(shown["totals"]["cost_usd"] - 0.001 * (len(steps) - 1)) < 1e-9
    text = cli("show", "big", "--cache-dir", tmp_path / "cache").stdout
    assert text.count("\n  paid     llm    summarize source") == len(steps) - 1 and "a failed one  (boom)" in text
    assert text.rstrip().endswith(f"{len(steps)} steps: {len(steps) - 1} paid, 0 replayed, 1 failed; "
                                  f"cost ${0.001 * (len(steps) - 1):.4f}, saved $0.0000")

    # Streamed and totalled in one pass, the bytes are those of the whole summary dumped at once.
    import json

    from agent.runs import Workspace

    workspace = Workspace.for_reading(str(tmp_path / "cache"))
    try:
        whole = json.dumps(workspace.summary("big"), indent=2, ensure_ascii=False, default=str) + "\n"
    finally:
        workspace.close()
    assert cli("show", "big", "--cache-dir", tmp_path / "cache", "--json").stdout == whole


def test_a_full_disk_for_source_texts_is_the_store_error_it_is(tmp_path):
    import resource

    import pytest

    from agent.errors import StoreError

    spill = Spill(tmp_path)
    assert spill.put("kept").read() == "kept"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    import signal
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    try:
        with pytest.raises(StoreError) as failed:
            spill.put("x" * 4096)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert str(tmp_path) in failed.value.one_line() and failed.value.fatal
    assert spill.put("after").read() == "after"  # what was set aside before is intact
