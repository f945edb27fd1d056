"""A batched run SIGKILLed at each moment of a batch's life, then resumed: every request paid once.

The moments are the ones where a process can lose track of a batch: after the intent is journaled but
before the vendor got the request; after the vendor accepted it but before its id was journaled (the
answer to the create never arrives); while waiting for it; while reading its results. The killed runs
are real processes (``python -m agent run --batch``); the fakes' gates hold the request of that moment
so the kill lands exactly there. After ``research resume``, no request was submitted twice, none was
answered twice, nothing went one by one, and the report equals an uninterrupted batched run's.

OpenAI is found again by the tag in its batch's metadata; Anthropic, which keeps no tag, by the time
and count of requests of the journaled intent.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.helpers import cli, research_proc, sigkill_when
from tests.test_batch_runs import REQUESTS, SOURCES, body, run_args, vendors  # noqa: F401  (a fixture)
from tests.servers.openai_batch import Plan

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

MODELS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}
#: One model: a summaries batch (the one killed), then an analysis and a synthesis batch.
ONE_MODEL = SOURCES + 2


def batch_status(cache: Path) -> list[str]:
    db = cache / "journal.sqlite3"
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return [row[0] for row in conn.execute("SELECT status FROM batches ORDER BY created_at")]
        finally:
            conn.close()
    except sqlite3.Error:
        return []


#: moment -> (the request kind held at the vendor, whether the vendor acts on it once released)
MOMENTS = {
    "before the request": {"openai": ("upload", False), "anthropic": ("create", False)},
    "accepted, id not journaled": {"openai": ("create", True), "anthropic": ("create", True)},
    "while collecting": {"openai": ("download", True), "anthropic": ("results", True)},
}


def reset(fake) -> None:
    fake.jobs.clear()
    fake.batch_answered.clear()
    fake.answered.clear()
    for kind in fake.received:
        fake.received[kind] = 0


@pytest.mark.parametrize("vendor", sorted(MODELS))
@pytest.mark.parametrize("moment", [*MOMENTS, "while waiting"])
def test_sigkill_at_each_moment_of_a_batch_then_resume_pays_each_request_once(tmp_path, vendors, vendor, moment):
    fake = vendors.fakes[vendor]
    models = [MODELS[vendor]]
    reference = cli(*run_args(tmp_path / "ref-cache", tmp_path / "ref-out", "killed", "--batch", models=models))
    assert reference.exit_code == 0, reference.stderr
    expected = body(tmp_path / "ref-out" / "killed.md")
    reset(fake)

    cache, out = tmp_path / "cache", tmp_path / "out"
    if moment == "while waiting":
        fake.default_plan = Plan(polls=10_000)
        kind, act = "poll", True

        def reached() -> bool:
            return batch_status(cache)[:1] == ["submitted"] and fake.received["poll"] >= 1
    else:
        kind, act = MOMENTS[moment][vendor]
        fake.gate(kind)

        def reached() -> bool:
            return fake.received[kind] >= 1

    proc = research_proc(*run_args(cache, out, "killed", "--batch", models=models), env=vendors.env, cwd=tmp_path)
    sigkill_when(proc, reached, poll=0.01)
    assert batch_status(cache)[:1] == (["intent"] if moment in ("before the request", "accepted, id not journaled")
                                        else ["submitted"])
    if moment != "while waiting":
        fake.ungate(kind, act=act)
    fake.default_plan = Plan(polls=1)
    vendors.end_all()

    resumed = cli("resume", "killed", "--cache-dir", str(cache))
    assert resumed.exit_code == 0, resumed.stderr
    assert body(out / "killed.md") == expected
    lines = vendors.lines()
    assert sum(lines.values()) == ONE_MODEL and max(lines.values()) == 1, "a request was submitted twice"
    assert len(fake.jobs) == 3, "a second batch was made for the same steps"
    assert max(vendors.paid_lines().values()) == 1 and len(fake.batch_answered) == ONE_MODEL
    assert vendors.sync_answered() == 0
    assert batch_status(cache).count("collected") == 3


def test_a_create_still_in_flight_when_its_process_died_is_waited_for_not_sent_again(tmp_path, vendors, monkeypatch):
    """Killed with its create on the wire, a run resumed at once may look for the batch before the vendor
    has made it. It looks again after a grace, and adopts it."""
    import threading

    monkeypatch.setenv("RESEARCH_BATCH_GRACE", "2")
    fake = vendors.fakes["openai"]
    fake.default_plan = Plan(polls=1)
    fake.gate("create")
    cache, out = tmp_path / "cache", tmp_path / "out"
    proc = research_proc(*run_args(cache, out, "inflight", "--batch", models=[MODELS["openai"]]), env=vendors.env,
                         cwd=tmp_path)
    sigkill_when(proc, lambda: fake.received["create"] >= 1, poll=0.01)

    def vendor_gets_to_it() -> None:  # the create is made only after the resumed run first looked
        deadline = time.monotonic() + 30
        while fake.received["list"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        fake.ungate("create")

    late = threading.Thread(target=vendor_gets_to_it, daemon=True)
    late.start()
    resumed = cli("resume", "inflight", "--cache-dir", str(cache))
    late.join(timeout=30)
    assert resumed.exit_code == 0, resumed.stderr
    assert fake.received["list"] >= 2, "the batch was not looked for again after the grace"
    assert len(fake.jobs) == 3 and sum(len(job.lines) for job in fake.jobs.values()) == ONE_MODEL
    assert max(vendors.paid_lines().values()) == 1 and vendors.sync_answered() == 0
