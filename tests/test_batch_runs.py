"""Batched research runs end to end: the real SDKs against the loopback batch APIs, through the CLI.

A run with ``--batch`` sends its paid model calls as one batch per provider and stage, waits (or, with
``--no-wait``, stops durably ``waiting``), and writes the report a run of single calls writes, at the
batch price. The fakes answer a batch line exactly as they answer the same request sent alone, so
reports can be compared with a synchronous run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import subprocess_env
from tests.helpers import CORPUS, QUESTION, cli
from tests.servers import serve
from tests.servers.anthropic_batch import AnthropicBatchAPI
from tests.servers.gemini_batch import GeminiBatchAPI
from tests.servers.openai_batch import OpenAIBatchAPI, Plan

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

KEYS = {"openai": "openai-key-b1", "anthropic": "anthropic-key-b2", "gemini": "gemini-key-b3"}
MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"]
SOURCES = 5  # files in the corpus
#: Model requests of one run: a summary per source and the synthesis (first model), an analysis per model.
REQUESTS = SOURCES + len(MODELS) + 1


class Vendors:
    def __init__(self, fakes: dict, servers: dict, env: dict[str, str]) -> None:
        self.fakes, self.servers, self.env = fakes, servers, env

    def sync_answered(self) -> int:
        return sum(len(f.answered) for f in self.fakes.values())

    def lines(self) -> Counter:
        """Every batch line submitted, by vendor and name: a count above 1 is a request sent twice."""
        return Counter((name, key) for name, fake in self.fakes.items() for key in fake.submitted())

    def batches(self) -> int:
        return sum(len(f.jobs) for f in self.fakes.values())

    def paid_lines(self) -> Counter:
        return Counter(json.dumps(r.json(), sort_keys=True) for f in self.fakes.values() for r in f.batch_answered)

    def end_all(self) -> None:
        """Every batch submitted so far ends at its next poll."""
        for fake in self.fakes.values():
            for job in fake.jobs.values():
                job.plan = dataclasses.replace(job.plan, polls=0)  # its own: the default plan is shared


@pytest.fixture
def vendors(monkeypatch):
    fakes = {"openai": OpenAIBatchAPI(key=KEYS["openai"], default_plan=Plan(polls=2)),
             "anthropic": AnthropicBatchAPI(key=KEYS["anthropic"], default_plan=Plan(polls=2)),
             "gemini": GeminiBatchAPI(key=KEYS["gemini"], default_plan=Plan(polls=2))}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(serve(fake)) for name, fake in fakes.items()}
        settings = {
            "OPENAI_API_KEY": KEYS["openai"], "OPENAI_BASE_URL": f"{servers['openai'].url}/v1",
            "ANTHROPIC_API_KEY": KEYS["anthropic"], "ANTHROPIC_BASE_URL": servers["anthropic"].url,
            "GEMINI_API_KEY": KEYS["gemini"], "GOOGLE_GEMINI_BASE_URL": servers["gemini"].url,
            "RESEARCH_BATCH_POLL": "0.02", "RESEARCH_BATCH_POLL_CAP": "0.1", "RESEARCH_BATCH_LINGER": "0.25",
            "RESEARCH_BATCH_GRACE": "0.5",
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        yield Vendors(fakes, servers, subprocess_env(**settings))


def run_args(cache: Path, out: Path, run_id: str, *extra: str, models: list[str] = MODELS) -> list[str]:
    args = ["run", QUESTION, "--file", str(CORPUS), "--run-id", run_id, "--cache-dir", str(cache),
            "--out", str(out), *extra]
    for model in models:
        args += ["--model", model]
    return args


def body(report: Path) -> str:
    """A report past its header lines (run id, date, the batch price line), where batched and single runs
    must agree."""
    text = report.read_text()
    return re.sub(r"\A#[^\n]*\n\nRun `[^`]*`[^\n]*\n\n(Model calls through the vendors' batch APIs[^\n]*\n\n)?", "", text)


def totals(cache: Path, run_id: str) -> dict:
    shown = cli("show", run_id, "--cache-dir", str(cache), "--json")
    assert shown.exit_code == 0, shown.stderr
    return json.loads(shown.stdout)


def test_a_batched_run_writes_the_report_of_single_calls_at_half_the_price(tmp_path, vendors):
    batched = cli(*run_args(tmp_path / "cache", tmp_path / "out", "nightly", "--batch"))
    assert batched.exit_code == 0, batched.stderr
    assert vendors.sync_answered() == 0, "a batched run sent requests one by one"
    lines = vendors.lines()
    assert sum(lines.values()) == REQUESTS and max(lines.values()) == 1
    # one batch per provider and stage: openai's summaries, analysis and synthesis; one analysis each other
    assert vendors.batches() == 5
    assert "summaries: batch 5/5 done at openai:gpt-4o-mini" in batched.stderr

    single = cli(*run_args(tmp_path / "cache-single", tmp_path / "out-single", "nightly"))
    assert single.exit_code == 0, single.stderr
    assert vendors.sync_answered() == REQUESTS
    assert body(tmp_path / "out" / "nightly.md") == body(tmp_path / "out-single" / "nightly.md")

    spent = totals(tmp_path / "cache", "nightly")["totals"]
    full = totals(tmp_path / "cache-single", "nightly")["totals"]
    assert spent["batched"] == REQUESTS and "batched" not in full
    assert spent["cost_usd"] == pytest.approx(full["cost_usd"] / 2, abs=2e-6)  # totals keep 6 decimals
    assert spent["sync_cost_usd"] == pytest.approx(full["cost_usd"], abs=2e-6)
    report = (tmp_path / "out" / "nightly.md").read_text()
    assert f"Model calls through the vendors' batch APIs: {REQUESTS} · spent ${spent['cost_usd']:.4f}" in report
    listed = cli("runs", "--cache-dir", str(tmp_path / "cache"))
    assert f"(sync ${full['cost_usd']:.4f})" in listed.stdout
    shown = cli("show", "nightly", "--cache-dir", str(tmp_path / "cache")).stdout
    assert f"{REQUESTS} answered by batch APIs, ${full['cost_usd']:.4f} at synchronous prices" in shown

    # The same cache afterwards, asked one by one: every answer replays, nothing is sent.
    before = vendors.sync_answered()
    again = cli(*run_args(tmp_path / "cache", tmp_path / "out2", "later"))
    assert again.exit_code == 0, again.stderr
    assert vendors.sync_answered() == before and vendors.batches() == 5
    assert totals(tmp_path / "cache", "later")["totals"]["paid"] == 0


def test_answers_paid_one_by_one_replay_in_a_batched_run(tmp_path, vendors):
    first = cli(*run_args(tmp_path / "cache", tmp_path / "out", "single"))
    assert first.exit_code == 0, first.stderr
    batched = cli(*run_args(tmp_path / "cache", tmp_path / "out", "batched", "--batch"))
    assert batched.exit_code == 0, batched.stderr
    assert vendors.batches() == 0
    assert totals(tmp_path / "cache", "batched")["totals"]["paid"] == 0


def test_no_wait_stops_waiting_and_resume_collects_without_submitting_again(tmp_path, vendors):
    for fake in vendors.fakes.values():
        fake.default_plan = Plan(polls=10_000)  # nothing ends until the test says so
    cache, out = tmp_path / "cache", tmp_path / "out"
    handed = cli(*run_args(cache, out, "late", "--batch", "--no-wait"))
    assert handed.exit_code == 0, handed.stderr
    assert "run late waits for its batches (summaries: batch 0/5 done at openai:gpt-4o-mini)" in handed.stdout
    assert "research resume late" in handed.stdout
    assert vendors.batches() == 1 and not (out / "late.md").exists()
    listed = cli("runs", "--cache-dir", str(cache))
    assert "late  waiting" in listed.stdout
    shown = cli("show", "late", "--cache-dir", str(cache))
    assert "summaries, 5 request(s) at openai:gpt-4o-mini: submitted" in shown.stdout
    assert "waiting for 1 batch(es) at the vendors; collect with: research resume late" in shown.stdout

    early = cli("resume", "late", "--cache-dir", str(cache), "--no-wait", "--json")
    assert early.exit_code == 0, early.stderr
    assert json.loads(early.stdout)["status"] == "waiting"
    assert vendors.batches() == 1 and sum(vendors.lines().values()) == SOURCES  # nothing sent again

    rounds = 0
    while not (out / "late.md").exists():
        rounds += 1
        assert rounds <= 4, "the run never finished"
        vendors.end_all()
        step = cli("resume", "late", "--cache-dir", str(cache), "--no-wait")
        assert step.exit_code == 0, step.stderr
    assert rounds == 3  # the summaries, then the three analyses, then the synthesis
    lines = vendors.lines()
    assert sum(lines.values()) == REQUESTS and max(lines.values()) == 1
    assert vendors.sync_answered() == 0

    for fake in vendors.fakes.values():
        fake.default_plan = Plan(polls=1)
    reference = cli(*run_args(tmp_path / "cache-ref", tmp_path / "out-ref", "late", "--batch"))
    assert reference.exit_code == 0, reference.stderr
    assert body(out / "late.md") == body(tmp_path / "out-ref" / "late.md")


def test_requests_an_expired_batch_never_ran_go_again_in_a_new_batch(tmp_path, vendors):
    openai = vendors.fakes["openai"]
    openai.plan(expire=True, answered=2)  # the summaries batch: two of its five answered in time
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "rough", "--batch",
                           models=["openai:gpt-4o-mini"]))
    assert result.exit_code == 0, result.stderr
    jobs = list(openai.jobs.values())
    assert [len(j.lines) for j in jobs[:2]] == [5, 3]  # only the three unanswered went again
    assert set(jobs[1].keys()) == set(jobs[0].keys()[2:])
    assert vendors.sync_answered() == 0
    assert max(vendors.paid_lines().values()) == 1, "an answered request was paid for twice"
    report = (tmp_path / "out" / "rough.md").read_text()
    assert "The summaries batch at openai:gpt-4o-mini ended before all its requests ran (3 expired); those were " \
           "sent again." in report


def test_failed_batch_lines_retryable_go_one_by_one_others_fail_their_step(tmp_path, vendors):
    openai = vendors.fakes["openai"]

    def five_hundred(model, request):
        return openai.error(500, "the line could not be served")

    # The summaries' custom ids are known once submitted: the first batch's first two lines fail.
    original = openai.new_job

    def scripted_job(prefix, lines, **info):
        job = original(prefix, lines, **info)
        if len(openai.jobs) == 1:
            job.plan = Plan(polls=1, lines={lines[0].key: five_hundred}, failed=[lines[1].key])
        return job

    openai.new_job = scripted_job
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "lines", "--batch", models=["openai:gpt-4o-mini"]))
    assert result.exit_code == 3, result.stderr  # a report, with one failed source
    assert len(openai.answered) == 1, "the line that failed with a 500 is asked again on its own"
    shown = totals(tmp_path / "cache", "lines")
    assert shown["totals"]["failed"] == 1
    report = (tmp_path / "out" / "lines.md").read_text()
    assert "2 requests of the summaries batch at openai:gpt-4o-mini failed in the batch" in report


def test_a_provider_without_a_batch_api_is_said_once_and_runs_as_usual(tmp_path, vendors):
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "mixed", "--batch",
                           models=["openai:gpt-4o-mini", "local:extractive"]))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("no batch API at local:extractive") == 1
    report = (tmp_path / "out" / "mixed.md").read_text()
    assert "No batch API at local:extractive: its requests were asked one by one at the usual price." in report
    assert vendors.sync_answered() == 0 and vendors.batches() == 3


def test_batch_min_leaves_small_stages_to_single_calls(tmp_path, vendors):
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "small", "--batch", "--batch-min", "2"))
    assert result.exit_code == 0, result.stderr
    assert vendors.batches() == 1  # the five summaries; each stage of one request went alone
    assert vendors.sync_answered() == len(MODELS) + 1


def test_a_poll_that_is_rate_limited_is_polled_again(tmp_path, vendors):
    openai = vendors.fakes["openai"]
    openai.script_batch(openai.error(429, "slow down", headers={"retry-after": "0"}), on="poll")
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "limited", "--batch", models=["openai:gpt-4o-mini"]))
    assert result.exit_code == 0, result.stderr
    assert vendors.batches() == 3 and max(vendors.lines().values()) == 1


def test_no_wait_needs_batch(tmp_path):
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "x", "--no-wait", models=["local:extractive"]))
    assert result.exit_code == 2
    assert "--no-wait is for batched runs" in result.stderr
    assert not (tmp_path / "cache").exists()


def journal_batches(cache: Path) -> list[dict]:
    conn = sqlite3.connect(cache / "journal.sqlite3")
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM batches ORDER BY created_at")]
    finally:
        conn.close()


def test_report_due_takes_a_batched_nightly_report_from_handing_over_to_the_report(tmp_path, vendors):
    """A cron line running 'report due' every few minutes: each call collects what is ready and hands
    over the next stage, never waiting and never submitting anything twice."""
    for fake in vendors.fakes.values():
        fake.default_plan = Plan(polls=10_000)
    Path("research.toml").write_text(
        "[reports.nightly]\n"
        f'question = "{QUESTION}"\nfiles = ["{CORPUS}"]\nschedule = "0 6 * * *"\n'
        'models = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]\nbatch = true\n', encoding="utf-8")
    run_id = "nightly@2026-11-20T06:00Z"
    first = cli("report", "due", "--now", "2026-11-20T06:05Z")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith(f"{run_id}: waiting: run {run_id} waits for its batches (summaries: batch 0/5")
    assert vendors.batches() == 1

    still = cli("report", "due", "--now", "2026-11-20T06:10Z")
    assert still.exit_code == 0 and "waits for its batches" in still.stdout
    assert vendors.batches() == 1  # looked at, not sent again

    calls = 0
    while not Path("reports/nightly/2026-11-20.md").exists():
        calls += 1
        assert calls <= 4, "the slot never finished"
        vendors.end_all()
        step = cli("report", "due", "--now", "2026-11-20T06:15Z")
        assert step.exit_code == 0, step.stderr
    assert step.stdout.startswith(f"{run_id}: completed")
    assert calls == 3
    lines = vendors.lines()
    assert sum(lines.values()) == SOURCES + 2 + 1 and max(lines.values()) == 1
    assert vendors.sync_answered() == 0
    done = cli("report", "due", "--now", "2026-11-20T06:20Z")
    assert done.stdout.strip() == f"{run_id}: up to date (completed)"


def test_a_notebook_hands_batches_over_and_collects_them_with_the_same_call(tmp_path, vendors):
    from agent import Research

    for fake in vendors.fakes.values():
        fake.default_plan = Plan(polls=10_000)
    research = Research(tmp_path / "cache", models=["openai:gpt-4o-mini"], out_dir=tmp_path / "out", batch=True)
    waiting = research.run(QUESTION, files=[CORPUS], run_id="nb", wait=False)
    assert waiting.status == "waiting" and "waits for its batches" in waiting.markdown
    assert vendors.batches() == 1
    for fake in vendors.fakes.values():
        fake.default_plan = Plan(polls=1)
    vendors.end_all()
    report = research.run(QUESTION, files=[CORPUS], run_id="nb")
    assert report.status == "completed" and report.totals["batched"] == SOURCES + 2
    assert vendors.batches() == 3 and max(vendors.lines().values()) == 1


@pytest.mark.parametrize("vendor", ["openai", "anthropic", "gemini"])
def test_a_create_whose_answer_was_lost_is_looked_up_not_sent_again(tmp_path, vendors, vendor):
    """The vendor made the batch but its answer never arrived (the SDK would retry it blindly): the run
    finds the batch, by its tag or by its time and count, and adopts it."""
    fake = vendors.fakes[vendor]
    fake.lose_answers("create")
    model = next(m for m in MODELS if m.startswith(vendor))
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "lost", "--batch", models=[model]))
    assert result.exit_code == 0, result.stderr
    assert fake.received["create"] == 3  # summaries (lost, then found), analysis, synthesis
    assert len(fake.jobs) == 3 and sum(len(job.lines) for job in fake.jobs.values()) == SOURCES + 2
    assert max(vendors.paid_lines().values()) == 1
    assert fake.received["list"] >= 1


def test_a_batch_adopted_by_count_that_is_not_the_runs_is_dropped_and_its_requests_sent(tmp_path, vendors):
    """Anthropic's batches carry no tag: after a create that got no answer, the run adopts a batch made
    after its intent with as many requests. When that batch's results name requests it never sent, it
    was another's: the run sends its own requests after all, and pays for nobody else's answers."""
    import json as _json
    import time as _time

    from tests.servers import Reply, Request
    from tests.servers.openai_batch import Line

    fake = vendors.fakes["anthropic"]
    other = [Line(f"theirs-{i}", "claude-haiku-4-5", Request("POST", "/v1/messages", {}, _json.dumps(
        {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": f"q{i}"}]}).encode()))
        for i in range(SOURCES)]
    theirs = fake.new_job("msgbatch_", other)
    theirs.created = _time.time() + 30  # made "after" the run's intent, with the same count
    fake.script_batch(Reply(drop=True), on="create")  # the run's first create: no answer, nothing made
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "adopt", "--batch", models=[MODELS[1]]))
    assert result.exit_code == 0, result.stderr
    ours = [job for job in fake.jobs.values() if job is not theirs]
    assert [len(job.lines) for job in ours] == [SOURCES, 1, 1]
    shown = cli("show", "adopt", "--cache-dir", str(tmp_path / "cache")).stdout
    assert "abandoned" in shown
    assert vendors.sync_answered() == 0


def test_the_web_view_says_a_run_waits_for_its_batches_and_how_to_collect_them(tmp_path, vendors):
    from agent.runs import Workspace
    from agent.ui import views

    for fake in vendors.fakes.values():
        fake.default_plan = Plan(polls=10_000)
    handed = cli(*run_args(tmp_path / "cache", tmp_path / "out", "ui-wait", "--batch", "--no-wait",
                           models=[MODELS[0]]))
    assert handed.exit_code == 0, handed.stderr
    workspace = Workspace.for_reading(str(tmp_path / "cache"))
    try:
        detail = views.run_detail(workspace, "ui-wait")
    finally:
        workspace.close()
    assert detail["status"] == views.BATCHES
    assert "batch APIs to answer" in detail["explain"] and "approval" not in detail["explain"]
    assert [c["command"] for c in detail["commands"]] == ["research resume ui-wait --no-wait",
                                                          "research resume ui-wait"]


def test_more_sources_than_are_read_ahead_go_in_one_summaries_batch(tmp_path, vendors):
    """A run reads a few waves of sources ahead of their summaries; a batched one, whose summaries wait for
    every source, must not wait on itself."""
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(20):
        (notes / f"note-{i:02d}.md").write_text(f"# Note {i}\n\nHeat pump note {i}: a running cost of {i + 40} "
                                                f"euros a month in trial {i}.\n", encoding="utf-8")
    args = ["run", QUESTION, "--file", str(notes), "--run-id", "many", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out"), "--model", MODELS[0], "--batch", "--concurrency", "2"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    jobs = list(vendors.fakes["openai"].jobs.values())
    assert [len(job.lines) for job in jobs] == [20, 1, 1]


def test_requests_a_cancelled_batch_never_ran_go_again(tmp_path, vendors):
    openai = vendors.fakes["openai"]
    original = openai.new_job

    def cancelled_at_once(prefix, lines, **info):  # someone cancels the first batch at the vendor's console
        job = original(prefix, lines, **info)
        if len(openai.jobs) == 1:
            job.plan = Plan(polls=1, answered=1)
            openai.cancel(job)
        return job

    openai.new_job = cancelled_at_once
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "cancelled", "--batch", models=[MODELS[0]]))
    assert result.exit_code == 0, result.stderr
    jobs = list(openai.jobs.values())
    assert jobs[0].end == "cancelled" and [len(j.lines) for j in jobs] == [SOURCES, SOURCES - 1, 1, 1]
    assert max(vendors.paid_lines().values()) == 1 and vendors.sync_answered() == 0
    assert f"ended before all its requests ran ({SOURCES - 1} cancelled)" in (tmp_path / "out" / "cancelled.md").read_text()


def test_a_batch_that_fails_whole_or_is_refused_is_asked_one_by_one_and_the_report_says_so(tmp_path, vendors):
    openai = vendors.fakes["openai"]
    openai.plan(fail="this model is not available in the Batch API")  # the summaries batch fails validation
    openai.script_batch(None, openai.error(400, "batches are not enabled for this project"), on="create")
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "refused", "--batch", models=[MODELS[0]]))
    assert result.exit_code == 0, result.stderr
    assert len(openai.answered) == SOURCES + 1  # the summaries and the analysis, one by one
    assert len(openai.jobs) == 2  # the failed summaries batch and the synthesis batch
    report = (tmp_path / "out" / "refused.md").read_text()
    assert "The summaries batch at openai:gpt-4o-mini failed (this model is not available in the Batch API); " \
           "its requests were asked one by one at the usual price." in report
    assert "The batch API of openai:gpt-4o-mini refused the analysis batch" in report
    shown = totals(tmp_path / "cache", "refused")["totals"]
    assert shown["batched"] == 1 and shown["paid"] == SOURCES * 2 + 2  # reads, then every model call once


def test_a_rejected_key_on_a_batch_stops_the_run_in_one_line(tmp_path, vendors):
    openai = vendors.fakes["openai"]
    openai.script_batch(openai.error(401, "Incorrect API key provided: sk-wrong"), on="upload")
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "badkey", "--batch", models=[MODELS[0]]))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 1 and "OPENAI_API_KEY" in lines[-1] and "Traceback" not in result.stderr
    assert len(openai.jobs) == 0 and vendors.sync_answered() == 0


def test_a_stage_larger_than_a_vendor_takes_at_once_goes_in_several_batches(tmp_path, vendors, monkeypatch):
    monkeypatch.setenv("RESEARCH_BATCH_MAX", "2")  # as if the vendor took two requests a batch
    result = cli(*run_args(tmp_path / "cache", tmp_path / "out", "split", "--batch", models=[MODELS[0]]))
    assert result.exit_code == 0, result.stderr
    sizes = [len(job.lines) for job in vendors.fakes["openai"].jobs.values()]
    assert sizes == [2, 2, 1, 1, 1] and max(vendors.lines().values()) == 1
    assert vendors.sync_answered() == 0


def test_a_full_disk_while_collecting_stops_in_one_line_and_the_batch_is_collected_again_not_resent(tmp_path, vendors):
    """The cache's files may not grow past a limit (RLIMIT_FSIZE, as on a full disk) while a resumed run
    collects a finished batch: it stops with one line naming the cache. With room again, the next resume
    downloads the same batch's answers again (free) instead of paying for its requests a second time."""
    import resource
    import shutil
    import subprocess
    import sys

    for fake in vendors.fakes.values():
        fake.default_plan = Plan(polls=10_000)
    warm, out = tmp_path / "warm", tmp_path / "out"
    handed = cli(*run_args(warm, out, "disk", "--batch", "--no-wait", models=["openai:gpt-4o-mini"]))
    assert handed.exit_code == 0, handed.stderr
    vendors.end_all()  # the summaries batch is done at the vendor; nothing of it is stored yet
    base = max([p.stat().st_size for p in warm.iterdir() if p.is_file()] + [32768])

    def resume(cache, limit=None):
        def small_disk():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        return subprocess.run([sys.executable, "-m", "agent", "resume", "disk", "--cache-dir", str(cache), "--quiet"],
                              env=vendors.env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              preexec_fn=small_disk if limit else None)

    openai = vendors.servers["openai"]
    tried = []
    for step in range(1, 60):  # from tight to roomy: the first limit under which the run collects, then fails
        cache = tmp_path / f"cache-{step}"
        shutil.copytree(warm, cache)
        openai.clear()
        full = resume(cache, base + step * 4096)
        collected = any(r.path.endswith("/content") for r in list(openai.requests))
        if full.returncode == 1 and collected:
            break
        tried.append((step, full.returncode, collected))
        shutil.rmtree(cache)
    else:
        pytest.fail(f"no file-size limit made the run fail after it downloaded the answers: {tried}")
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cache) in lines[0] and "Traceback" not in full.stderr, full.stderr
    assert "stopped before paying for more" in lines[0] or "cannot write to the cache" in lines[0], lines[0]

    submitted = sum(vendors.lines().values())
    for fake in vendors.fakes.values():
        fake.default_plan = Plan(polls=1)  # the batches of the stages still to come end soon
    done = resume(cache)
    assert done.returncode == 0, done.stderr
    assert (out / "disk.md").exists()
    lines = vendors.lines()
    assert max(lines.values()) == 1, "a request was submitted twice"
    assert sum(lines.values()) - submitted == 2  # only the analysis and the synthesis, each in its own batch
    assert vendors.sync_answered() == 0
    shown = totals(cache, "disk")
    assert shown["status"] == "completed" and shown["totals"]["failed"] == 0
    # Answers stored before the journal could say so replay: the step list still holds every summary.
    assert sum(1 for s in shown["steps"] if s["name"].startswith("summarize")) == SOURCES


@pytest.mark.parametrize("no_wait", [False, True], ids=["waiting", "no-wait"])
def test_two_runs_that_need_the_same_answers_at_once_send_each_request_once(tmp_path, vendors, no_wait):
    """Two runs (two ids: a teammate's and a scheduler's) over the same sources and model start together
    on one cache. Whichever claims a step first hands it to a batch; the other waits for that step or
    finds its batch, and every request reaches the vendor once, in a batch."""
    from tests.helpers import research_proc

    cache = tmp_path / "cache"
    extra = ["--batch", "--no-wait"] if no_wait else ["--batch"]
    procs = [research_proc(*run_args(cache, tmp_path / f"out-{name}", name, *extra, models=["openai:gpt-4o-mini"]),
                           env=vendors.env, cwd=tmp_path) for name in ("mine", "theirs")]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    rounds = 0
    while no_wait and not all((tmp_path / f"out-{name}" / f"{name}.md").exists() for name in ("mine", "theirs")):
        rounds += 1
        assert rounds <= 6, "the runs never finished"
        for name in ("mine", "theirs"):
            if not (tmp_path / f"out-{name}" / f"{name}.md").exists():
                step = cli("resume", name, "--cache-dir", str(cache), "--no-wait")
                assert step.exit_code == 0, step.stderr
    lines = vendors.lines()
    assert max(lines.values()) == 1, "a request was submitted twice"
    assert sum(lines.values()) == SOURCES + 2  # the summaries, one analysis, the synthesis
    assert vendors.sync_answered() == 0
    assert body(tmp_path / "out-mine" / "mine.md") == body(tmp_path / "out-theirs" / "theirs.md")
