"""The step runtime: replay, pay once, never store failures, single-flight, pins."""

import asyncio
import threading
import time

import pytest

from agent.errors import ProviderError, UsageError
from agent.journal import Journal, RunBusy, totals
from agent.runs import Workspace
from agent.steps import Paid, Runtime, StepSpec
from agent.store import Store


def spec(n=1, **kw):
    return StepSpec(kind="llm", name=f"step {n}", provider="p", model="m", request={"n": n}, **kw)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c")
    yield s
    s.close()


def test_pays_once_then_replays(store):
    calls = []

    async def work():
        calls.append(1)
        return Paid({"answer": 42}, input_tokens=3, output_tokens=4, cost_usd=0.25)

    async def main():
        rt = Runtime(store)
        first = await rt.step(spec(), work)
        second = await rt.step(spec(), work)
        third = await Runtime(store).step(spec(), work)  # another runtime, same store
        return first, second, third

    first, second, third = asyncio.run(main())
    assert len(calls) == 1
    assert (first.replayed, second.replayed, third.replayed) == (False, True, True)
    assert third.value == {"answer": 42} and third.cost_usd == 0.25 and third.input_tokens == 3


def test_failures_are_never_stored(store):
    attempts = []

    async def failing():
        attempts.append(1)
        raise ProviderError("boom", provider="p", status=500)

    async def ok():
        attempts.append(2)
        return Paid("fine")

    async def main():
        rt = Runtime(store)
        with pytest.raises(ProviderError):
            await rt.step(spec(), failing)
        assert store.get(spec().key) is None
        return await rt.step(spec(), ok)

    result = asyncio.run(main())
    assert attempts == [1, 2] and result.value == "fine" and not result.replayed


def test_identical_concurrent_calls_execute_once(store):
    started = []

    async def slow():
        started.append(1)
        await asyncio.sleep(0.05)
        return Paid({"v": 1})

    async def main():
        rt = Runtime(store)
        return await asyncio.gather(*(rt.step(spec(), slow) for _ in range(10)),
                                    *(rt.step(spec(2), slow) for _ in range(5)))

    results = asyncio.run(main())
    assert len(started) == 2
    assert all(r.value == {"v": 1} for r in results)


def test_concurrent_failure_reaches_every_waiter_and_is_not_stored(store):
    started = []

    async def failing():
        started.append(1)
        await asyncio.sleep(0.02)
        raise ProviderError("nope", provider="p")

    async def main():
        rt = Runtime(store)
        return await asyncio.gather(*(rt.step(spec(), failing) for _ in range(4)), return_exceptions=True)

    results = asyncio.run(main())
    assert len(started) == 1
    assert all(isinstance(r, ProviderError) for r in results)
    assert store.get(spec().key) is None


def test_sync_single_flight_across_threads(store):
    started = []
    lock = threading.Lock()

    def slow():
        with lock:
            started.append(1)
        time.sleep(0.05)
        return Paid(7)

    rt = Runtime(store)
    out = []
    threads = [threading.Thread(target=lambda: out.append(rt.step_sync(spec(), slow).value)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert started == [1] and out == [7] * 8


def test_journal_records_paid_replayed_and_failed(tmp_path):
    ws = Workspace.open(tmp_path / "c")

    async def work():
        return Paid("v", cost_usd=0.1, input_tokens=1, output_tokens=2)

    async def bad():
        raise ProviderError("rate limited", provider="p", status=429, retryable=True)

    async def main():
        rt = ws.start("r1", question="q", inputs={"q": 1}, config={})
        await rt.step(spec(1), work)
        await rt.step(spec(1), work)
        with pytest.raises(ProviderError):
            await rt.step(spec(2), bad)

    asyncio.run(main())
    steps = ws.journal.steps("r1")
    assert [(s["status"], s["replayed"]) for s in steps] == [("completed", False), ("failed", False)]
    assert "rate limited" in steps[1]["error"]
    t = totals(steps)
    assert t == {"calls": 2, "paid": 1, "replayed": 0, "failed": 1, "cost_usd": 0.1, "saved_usd": 0.0,
                 "cost_complete": True, "saved_complete": True}
    ws.close()


def test_another_run_replays_and_counts_savings(tmp_path):
    ws = Workspace.open(tmp_path / "c")

    async def work():
        return Paid("v", cost_usd=0.3)

    async def main():
        await ws.start("r1", question="q", inputs={"a": 1}, config={}).step(spec(), work)
        await ws.start("r2", question="q", inputs={"a": 2}, config={}).step(spec(), work)

    asyncio.run(main())
    t = totals(ws.journal.steps("r2"))
    assert (t["paid"], t["replayed"], t["cost_usd"], t["saved_usd"]) == (0, 1, 0.0, 0.3)
    ws.close()


def test_reusing_run_id_with_other_inputs_is_refused(tmp_path):
    ws = Workspace.open(tmp_path / "c")
    ws.start("r1", question="q", inputs={"a": 1}, config={})
    with pytest.raises(UsageError) as info:
        ws.start("r1", question="q", inputs={"a": 2}, config={})
    assert "research resume r1" in info.value.one_line()
    # Same inputs while the first holder is live: one payer per run id.
    with pytest.raises(RunBusy) as busy:
        ws.start("r1", question="q", inputs={"a": 1}, config={})
    assert "already running" in busy.value.one_line() and busy.value.exit_code == 2
    ws.leases.pop("r1").release()
    ws.journal.finish_run("r1", "interrupted")
    assert ws.start("r1", question="q", inputs={"a": 1}, config={}).attempt == 2
    ws.close()


def test_resumed_run_replays_pinned_result_even_when_stale(tmp_path, monkeypatch):
    """A resumed run sees what it saw before, even after the entry went stale and was refetched."""
    ws = Workspace.open(tmp_path / "c")
    page = StepSpec(kind="scrape", name="page", request={"url": "u"}, max_age=60)

    def fetcher(text):
        async def work():
            return Paid({"text": text})
        return work

    async def main():
        first = await ws.start("r1", question="q", inputs={}, config={}).step(page, fetcher("old"))
        later = time.time() + 3600
        monkeypatch.setattr("agent.store._now", lambda: later)
        other = await ws.start("r2", question="q", inputs={"x": 1}, config={}).step(page, fetcher("new"))
        ws.leases.pop("r1").release()
        ws.journal.finish_run("r1", "interrupted")
        resumed = await ws.start("r1", question="q", inputs={}, config={}).step(page, fetcher("newest"))
        return first, other, resumed

    first, other, resumed = asyncio.run(main())
    assert first.value == {"text": "old"}
    assert other.value == {"text": "new"} and not other.replayed
    assert resumed.value == {"text": "old"} and resumed.replayed
    ws.close()


def test_journal_survives_reopen_and_lists_runs(tmp_path):
    j = Journal(tmp_path / "c")
    j.start_run("r1", question="q1", inputs={}, config={}, fingerprint="f")
    j.finish_run("r1", "completed", report_path="reports/r1.md")
    j.close()
    j = Journal(tmp_path / "c")
    (run,) = j.list_runs()
    assert run["status"] == "completed" and run["report_path"] == "reports/r1.md"
    with pytest.raises(UsageError):
        j.get_run("nope")
    j.close()


def test_dead_running_run_shows_as_interrupted(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from agent.journal import Journal\n"
            "Journal(sys.argv[1]).start_run('r1', question='q', inputs={}, config={}, fingerprint='f')")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], check=True)
    j = Journal(tmp_path / "c")
    assert j.get_run("r1")["status"] == "interrupted"
    j.close()


def test_totals_count_every_payment_of_every_attempt(tmp_path):
    """A step whose stored result was lost between attempts is paid again: show and the budget see both."""
    ws = Workspace.open(tmp_path / "c")

    async def work():
        return Paid("v", cost_usd=0.25)

    asyncio.run(ws.start("r1", question="q", inputs={}, config={}).step(spec(), work))
    ws.leases.pop("r1").release()
    ws.journal.finish_run("r1", "interrupted")
    ws.store.clear()
    asyncio.run(ws.start("r1", question="q", inputs={}, config={}).step(spec(), work))
    (step,) = ws.journal.steps("r1")
    assert step["paid_times"] == 2
    t = totals(ws.journal.steps("r1"))
    assert (t["calls"], t["paid"], t["cost_usd"]) == (1, 2, 0.5)
    ws.close()


def test_plain_function_steps_go_through_the_gate(tmp_path):
    """A sync ``@durable`` function inside a run is held back by the budget like any model call."""
    from agent.errors import BudgetExceeded

    ws = Workspace.open(tmp_path / "c")
    calls = []

    def gate(spec):
        raise BudgetExceeded("over budget")

    runtime = ws.start("g", question="q", inputs={}, config={}, gate=gate)
    with pytest.raises(BudgetExceeded):
        runtime.step_sync(spec(), lambda: calls.append(1) or Paid("v"))
    assert calls == [] and ws.journal.steps("g") == []  # never started, so not a failure either
    ws.close()


def test_a_holder_taken_over_cannot_end_the_run_of_the_one_that_took_it(tmp_path):
    """A process that stalled past its lease finishes late: the run stays with the process now holding it."""
    j = Journal(tmp_path / "c")
    j.start_run("r", question="q", inputs={}, config={}, fingerprint="f", holder="otherhost:1:a")
    j._exec("UPDATE runs SET host = 'otherhost', lease_expires = ? WHERE run_id = 'r'", (time.time() - 1,))
    assert j.start_run("r", question="q", inputs={}, config={}, fingerprint="f", holder="otherhost:2:b") == 2
    j.finish_run("r", "failed", error="late", holder="otherhost:1:a")  # the stale holder
    assert j.get_run("r")["status"] == "running" and j.renew("r", "otherhost:2:b")
    j.finish_run("r", "completed", holder="otherhost:2:b")
    assert j.get_run("r")["status"] == "completed"
    j.close()
