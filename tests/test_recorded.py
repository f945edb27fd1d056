"""A source's summary replays as the steps it took, without splitting its text or rendering its prompts.

A summary's steps (its parts and their combination) are recorded with its result the first time; a later
run replays them straight from that record when every one of them would replay the very result recorded.
These tests hold that path to the one it stands in for: the same journal events and the same reports, a
fall back to the full path (and to paying) when a step's result is gone or changed, when the template
changes, and when the code that makes the steps changes.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import sys
from pathlib import Path

import pytest

from agent.runs import Workspace
from agent.steps import Paid, Recorder, Runtime, StepSpec, recording, stop_recording
from pipelines.base import code_fingerprint
from tests.helpers import cli, cli_json
from tests.test_mapreduce import long_document

Q = "Do heat pumps keep their efficiency in cold winters?"
EVENT = ("key", "kind", "name", "provider", "model", "status", "replayed", "digest", "input_tokens",
         "output_tokens", "cost_usd", "saved_usd", "error", "detail")


def write_docs(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    (docs / "long.md").write_text(long_document(300), encoding="utf-8")  # in parts, then combined
    (docs / "short.md").write_text("# Short note\n\nHeat pumps work in cold climates when they are sized well. "
                                   "A unit kept a COP of 2.4 at minus 15 degrees.\n", encoding="utf-8")
    return docs


def events(cache: Path, run_id: str) -> collections.Counter:
    ws = Workspace.open(cache)
    try:
        return collections.Counter(tuple(e[f] for f in EVENT) for e in ws.journal.events(run_id))
    finally:
        ws.close()


def memos(cache: Path) -> dict[str, dict]:
    ws = Workspace.open(cache)
    try:
        return {key: record for key, record in ws.store.records() if record["kind"] == "memo"}
    finally:
        ws.close()


def report(out: dict, fmt: str) -> str:
    return Path(out["report_paths"][fmt]).read_text(encoding="utf-8").replace(f"`{out['run_id']}`", "RUN").replace(
        f'"{out["run_id"]}"', "RUN")


def run(docs: Path, run_id: str, *extra: str) -> dict:
    return cli_json("run", Q, "--file", docs, "--run-id", run_id, "--format", "md,json", *extra)


def test_a_recorded_replay_journals_and_reports_what_the_full_replay_does(tmp_path):
    docs = write_docs(tmp_path)
    cache = tmp_path / "cache"
    cold = run(docs, "cold")
    kept = memos(cache)
    assert len(kept) == 2  # one per source's summary, written as it was paid for
    steps = {len(record["value"]["steps"]) for record in kept.values()}
    assert 1 in steps and max(steps) >= 5  # the short source in one step, the long one in parts and a combine

    recorded = run(docs, "recorded")  # every summary from its record
    assert recorded["totals"]["paid"] == 0
    assert cli("cache", "clear", "--kind", "memo", "--yes").exit_code == 0
    assert memos(cache) == {}
    full = run(docs, "full")  # every prompt rendered and keyed again
    assert full["totals"]["paid"] == 0
    assert len(memos(cache)) == 2  # and recorded again

    assert events(cache, "recorded") == events(cache, "full")
    assert sum(events(cache, "recorded").values()) == cold["totals"]["calls"]
    for fmt in ("md", "json"):
        assert report(recorded, fmt) == report(full, fmt)


def test_the_record_is_what_a_replay_answers_from(tmp_path):
    docs = write_docs(tmp_path)
    cache = tmp_path / "cache"
    run(docs, "cold")
    ws = Workspace.open(cache)
    try:
        for key, record in memos(cache).items():
            value = dict(record["value"], result=record["value"]["result"] + " Marked by the record.")
            ws.store.put(key, value, kind="memo")
    finally:
        ws.close()
    again = run(docs, "again")
    # The summaries came from their records (none was asked again); the analysis and the report read them.
    paid = [s["name"] for s in cli_json("show", "again")["steps"] if not s["replayed"]]
    assert paid and all(n.startswith(("analyze ", "report ")) for n in paid), paid
    assert "Marked by the record." in report(again, "json")


@pytest.mark.parametrize("damage", [
    lambda v: "not a record",
    lambda v: dict(v, steps="many"),
    lambda v: dict(v, steps=[]),
    lambda v: dict(v, steps=[s[:6] for s in v["steps"]]),
    lambda v: dict(v, steps=[[s[0], {"name": s[1]}, *s[2:]] for s in v["steps"]]),
    lambda v: dict(v, steps=[[*s[:6], "an hour"] for s in v["steps"]]),
    lambda v: dict(v, result=["not", "a", "summary"]),
    lambda v: dict(v, notes=[1, 2]),
    lambda v: {k: x for k, x in v.items() if k != "result"},
], ids=["not a dict", "steps not a list", "no steps", "short steps", "a name not text", "an age not a number",
        "result not text", "notes not text", "no result"])
def test_a_damaged_record_is_worked_out_again_and_replaced(tmp_path, damage):
    docs = write_docs(tmp_path)
    cache = tmp_path / "cache"
    cold = run(docs, "cold")
    ws = Workspace.open(cache)
    try:
        for key, record in memos(cache).items():
            ws.store.put(key, damage(record["value"]), kind="memo")
    finally:
        ws.close()
    again = run(docs, "again")
    assert again["totals"]["paid"] == 0 and again["totals"]["replayed"] == cold["totals"]["calls"]
    assert report(again, "md") == report(run(docs, "third"), "md")
    current = [r["value"] for key, r in memos(cache).items() if "@" not in key]  # not the versions it replaced
    assert len(current) == 2 and all(isinstance(v["result"], str) and v["steps"] for v in current)


def test_a_step_whose_result_is_gone_is_paid_for_again(tmp_path):
    docs = write_docs(tmp_path)
    cache = tmp_path / "cache"
    cold = run(docs, "cold")
    assert cli("cache", "clear", "--kind", "llm", "--yes").exit_code == 0
    again = run(docs, "again")
    assert again["totals"]["paid"] == cold["totals"]["paid"] - 2  # all but the two reads
    assert report(again, "md") == report(cold, "md")


def test_a_step_whose_stored_result_changed_is_not_replayed_from_the_record(tmp_path):
    docs = write_docs(tmp_path)
    cache = tmp_path / "cache"
    run(docs, "cold")
    (memo,) = [r for r in memos(cache).values() if len(r["value"]["steps"]) > 1]
    part_key = memo["value"]["steps"][0][4]
    ws = Workspace.open(cache)
    try:
        record = ws.store.get(part_key)
        changed = dict(record["value"], text="A changed partial summary: the seasonal efficiency was 9.9.")
        new_digest = ws.store.put(part_key, changed, kind="llm")["digest"]
    finally:
        ws.close()
    again = run(docs, "again")
    # The part replays its new result; the combination of the parts is a new request, paid for (and so
    # are the analysis and the report that read the summary it makes).
    paid = [s["name"] for s in cli_json("show", "again")["steps"] if not s["replayed"]]
    assert any(n.startswith("combine ") and n.endswith("long.md") for n in paid), paid
    assert not any(" part " in n or n.endswith("short.md") for n in paid), paid
    assert [e[7] for e in events(cache, "again") if e[0] == part_key] == [new_digest]  # the new result


def test_an_edited_summarize_template_pays_for_the_summaries_again(tmp_path):
    docs = write_docs(tmp_path)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    packaged = Path(__file__).resolve().parent.parent / "prompts" / "summarize.j2"
    (prompts / "summarize.j2").write_text(packaged.read_text(encoding="utf-8"), encoding="utf-8")
    cold = run(docs, "cold", "--prompts", prompts)
    same = run(docs, "same", "--prompts", prompts)
    assert same["totals"]["paid"] == 0
    text = packaged.read_text(encoding="utf-8").replace("{% block user -%}", "{% block user -%}\nRead closely.", 1)
    assert "Read closely." in text
    (prompts / "summarize.j2").write_text(text, encoding="utf-8")
    edited = run(docs, "edited", "--prompts", prompts)
    summaries = sum(1 for s in cli_json("show", "cold")["steps"] if s["name"].startswith(("summarize ", "combine ")))
    assert edited["totals"]["paid"] >= summaries > 2
    assert cold["totals"]["paid"] > edited["totals"]["paid"]  # the reads replayed


def test_the_code_fingerprint_follows_the_code_of_the_pipeline_it_is_asked_for(tmp_path, monkeypatch):
    module = tmp_path / "my_pipeline_mod.py"
    module.write_text("from pipelines.base import Stages\n\nclass Mine(Stages):\n    X = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = importlib.import_module("my_pipeline_mod")
    before = code_fingerprint(first.Mine)
    assert before == code_fingerprint(first.Mine)
    module.write_text("from pipelines.base import Stages\n\nclass Mine(Stages):\n    X = 2\n", encoding="utf-8")
    del sys.modules["my_pipeline_mod"]
    second = importlib.import_module("my_pipeline_mod")
    after = code_fingerprint(second.Mine)
    assert after != before
    from pipelines.base import Stages
    assert code_fingerprint(Stages) not in (before, after)


# -- the recorder and its replay, on the runtime alone ----------------------------------------------
def _spec(i: int) -> StepSpec:
    return StepSpec(kind="llm", name=f"step {i}", provider="p", model="m", request={"i": i})


def test_a_recorder_hears_paid_replayed_and_joined_steps_and_replays_them_as_recorded(tmp_path):
    ws = Workspace.open(tmp_path / "cache")
    calls = []

    def work_for(i: int):
        async def work() -> Paid:
            calls.append(i)
            await asyncio.sleep(0.01)
            return Paid({"answer": i}, input_tokens=3, output_tokens=4, cost_usd=0.25)
        return work

    async def first(runtime: Runtime) -> Recorder:
        await runtime.step(_spec(0), work_for(0))  # stored before the recording starts
        recorder = Recorder()
        token = recording(recorder)
        try:
            # step 0 replays, step 1 is paid, and its twin joins the call in flight
            await asyncio.gather(runtime.step(_spec(0), work_for(0)), runtime.step(_spec(1), work_for(1)),
                                 runtime.step(_spec(1), work_for(1)))
        finally:
            stop_recording(token)
        await runtime.step(_spec(2), work_for(2))  # after it: not heard
        return recorder

    recorder = asyncio.run(first(ws.start("one", question="q", inputs={"n": 1}, config={})))
    assert calls == [0, 1, 2]
    assert not recorder.failed
    assert sorted(s[1] for s in recorder.steps) == ["step 0", "step 1", "step 1"]
    assert all(s[4] == _spec(int(s[1][-1])).key and len(s[5]) == 64 for s in recorder.steps)

    runtime = ws.start("two", question="q", inputs={"n": 2}, config={})
    heard = []
    runtime.listeners.append(lambda event, spec, result, exc: heard.append((event, spec.key, result.value)))
    assert runtime.replay_recorded(recorder.steps)
    assert heard == [("replayed", s[4], {"answer": int(s[1][-1])}) for s in recorder.steps]
    ws.journal.flush()
    journaled = ws.journal.events("two")
    assert [(e["key"], e["name"], e["replayed"], e["digest"], e["cost_usd"], e["saved_usd"], e["input_tokens"])
            for e in journaled] == [(s[4], s[1], 1, s[5], 0.0, 0.25, 3) for s in recorder.steps]
    # As a step replayed one by one journals itself.
    one = ws.start("three", question="q", inputs={"n": 3}, config={})
    asyncio.run(one.step(_spec(1), work_for(1)))
    ws.journal.flush()
    (alone,) = ws.journal.events("three")
    (same,) = [e for e in journaled if e["name"] == "step 1"][:1]
    assert {k: v for k, v in alone.items() if k not in ("id", "run_id", "at", "duration_s")} == \
        {k: v for k, v in same.items() if k not in ("id", "run_id", "at", "duration_s")}
    ws.close()


def test_replay_recorded_replays_nothing_unless_every_step_is_as_recorded(tmp_path):
    ws = Workspace.open(tmp_path / "cache")

    async def pay(runtime: Runtime, i: int, answer: int) -> None:
        async def work() -> Paid:
            return Paid({"answer": answer})
        await runtime.step(_spec(i), work)

    runtime = ws.start("one", question="q", inputs={"n": 1}, config={})
    recorder = Recorder()
    token = recording(recorder)
    for i in range(3):
        asyncio.run(pay(runtime, i, i))
    stop_recording(token)
    assert len(recorder.steps) == 3

    ws.store.put(_spec(1).key, {"answer": "changed"}, kind="llm")  # another result under step 1's key
    other = ws.start("two", question="q", inputs={"n": 2}, config={})
    assert not other.replay_recorded(recorder.steps)
    missing = [list(s) for s in recorder.steps[:1]] + [["llm", "gone", "p", "m", "v1:llm:" + "0" * 64, "d" * 64, None]]
    assert not other.replay_recorded(missing)
    ws.journal.flush()
    assert ws.journal.events("two") == []  # nothing journaled by a replay that did not happen
    # The run that saw the first result pinned it: it still replays what it saw.
    heard = []
    runtime.listeners.append(lambda event, spec, result, exc: heard.append(result.value))
    assert runtime.replay_recorded(recorder.steps)
    assert heard == [{"answer": i} for i in range(3)]
    ws.close()


def test_a_failed_or_held_step_spoils_the_recording(tmp_path):
    ws = Workspace.open(tmp_path / "cache")
    runtime = ws.start("one", question="q", inputs={"n": 1}, config={})

    async def fails() -> Paid:
        raise RuntimeError("the model failed")

    async def go() -> Recorder:
        recorder = Recorder()
        token = recording(recorder)
        try:
            with pytest.raises(RuntimeError):
                await runtime.step(_spec(5), fails)
        finally:
            stop_recording(token)
        return recorder

    assert asyncio.run(go()).failed

    def fails_too() -> Paid:
        raise RuntimeError("the function failed")

    recorder = Recorder()
    token = recording(recorder)
    try:
        with pytest.raises(RuntimeError):
            runtime.step_sync(_spec(6), fails_too)  # a plain function's step, as @durable runs it
    finally:
        stop_recording(token)
    assert recorder.failed
    ws.close()


# -- a recorded replay killed part-way ---------------------------------------------------------------
def test_a_recorded_replay_killed_part_way_resumes_paying_nothing_and_reports_alike(tmp_path):
    from tests.conftest import subprocess_env
    from tests.helpers import completed_events, research_proc, research_run, sigkill_when

    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(200):  # each in parts and a combine: about 1,000 recorded steps to replay
        (docs / f"study-{i:03d}.md").write_text(f"# Field study {i}\n\n" + long_document(150 + i % 7), encoding="utf-8")
    cache = tmp_path / "cache"
    env = subprocess_env(RESEARCH_CACHE_DIR=str(cache))

    def args(run_id: str) -> list:
        return ["run", Q, "--file", docs, "--run-id", run_id, "--out", tmp_path / run_id, "--json", "--quiet"]

    cold = research_run(*args("cold"), env=env, cwd=tmp_path, timeout=300)
    assert cold.returncode == 0, cold.stderr
    whole = research_run(*args("whole"), env=env, cwd=tmp_path, timeout=300)  # a replay never killed
    assert whole.returncode == 0, whole.stderr
    steps = completed_events(cache) // 2
    assert steps > 900, steps

    proc = research_proc(*args("killed"), env=env, cwd=tmp_path)
    # Replay events are written 256 at a time: kill once the first of them are in the journal.
    sigkill_when(proc, lambda: completed_events(cache) >= 2 * steps + 256)
    assert cli_json("show", "killed")["status"] == "interrupted"
    assert 256 <= completed_events(cache) - 2 * steps < steps  # some of its replay was journaled, not all
    resumed = research_run("resume", "killed", "--json", "--quiet", env=env, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    shown = cli_json("show", "killed")
    assert shown["totals"]["paid"] == 0 and shown["attempts"] == 2
    assert (tmp_path / "killed" / "killed.md").read_text(encoding="utf-8").replace("`killed`", "RUN") == \
        (tmp_path / "whole" / "whole.md").read_text(encoding="utf-8").replace("`whole`", "RUN")
