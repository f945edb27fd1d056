"""Stopping a run from outside: SIGTERM and Ctrl-C say which run to resume, and a second process on a
live run steps aside without paying."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import subprocess_env
from tests.helpers import completed_events, research_proc, research_run
from tests.test_crash import QUESTION, make_corpus


def _wait_for_events(cache, n, proc, deadline=60.0):
    end = time.monotonic() + deadline
    while completed_events(cache) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the run made no progress"
        time.sleep(0.05)


def _args(corpus, cache, run_id):
    return ["run", QUESTION, "--file", corpus, "--run-id", run_id, "--cache-dir", cache, "--concurrency", "1"]


def test_sigterm_says_which_run_to_resume_and_the_run_resumes(tmp_path):
    corpus, cache = make_corpus(tmp_path), tmp_path / "cache"
    env = subprocess_env(RESEARCH_LOCAL_LATENCY="0.1")
    proc = research_proc(*_args(corpus, cache, "t1"), env=env, cwd=tmp_path)
    _wait_for_events(cache, 12, proc)  # reads done, summaries under way
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "research resume t1" in lines[0] and "SIGTERM" in lines[0], err
    shown = json.loads(research_run("show", "t1", "--json", "--cache-dir", cache, env=env, cwd=tmp_path).stdout)
    assert shown["status"] == "interrupted"
    paid_before = shown["totals"]["paid"]
    resumed = research_run("resume", "t1", "--json", "--cache-dir", cache, env=subprocess_env(), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    attempt = json.loads(resumed.stdout)["totals"]["this_attempt"]
    assert attempt["replayed"] >= paid_before  # nothing completed before the signal was paid again


# A signal handler runs in whatever the main thread is doing: here, inside one of the run's own tasks
# (os.kill delivers the signal to this process before it returns), the moment that once tore the loop
# down with the run's other tasks pending.
SIGNAL_IN_A_TASK = """
import asyncio, os, signal, sys
from agent import interrupts
from agent.cli import Interrupted, _interruptible

async def child(i):
    if i == 3:
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        sum(range(1000))  # still this task's step when the handler runs
    await asyncio.sleep(30)

async def main():
    tasks = [asyncio.ensure_future(child(i)) for i in range(8)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        print("unwound", file=sys.stderr)

try:
    with _interruptible("r1"):
        interrupts.run(main())
except Interrupted as exc:
    print(exc.what, exc.run_id, exc.exit_code)
"""


@pytest.mark.parametrize("name, what, code", [("SIGTERM", "terminated (SIGTERM)", 143), ("SIGINT", "interrupted", 130)])
def test_a_signal_inside_a_task_unwinds_the_whole_run_once(name, what, code):
    done = subprocess.run([sys.executable, "-c", SIGNAL_IN_A_TASK, name], capture_output=True, text=True,
                          timeout=60, env=subprocess_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == f"{what} r1 {code}"
    assert done.stderr == "unwound\n"  # once, and nothing destroyed pending, nothing never awaited


def test_a_second_process_on_a_live_run_refuses_and_pays_nothing(tmp_path):
    corpus, cache = make_corpus(tmp_path), tmp_path / "cache"
    # Slow enough (about 20 s of calls) that the holder is surely alive while the others knock.
    first = research_proc(*_args(corpus, cache, "same"), env=subprocess_env(RESEARCH_LOCAL_LATENCY="1.0"),
                          cwd=tmp_path)
    try:
        _wait_for_events(cache, 3, first)
        env = subprocess_env()
        second = research_run(*_args(corpus, cache, "same"), env=env, cwd=tmp_path)
        resume = research_run("resume", "same", "--cache-dir", cache, env=env, cwd=tmp_path)
        assert first.poll() is None, "the holder finished before the others asked: nothing was tested"
        for other in (second, resume):
            assert other.returncode == 2, other.stderr
            assert "already running in" in other.stderr and len(other.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    shown = json.loads(research_run("show", "same", "--json", "--cache-dir", cache, env=env, cwd=tmp_path).stdout)
    assert shown["attempts"] == 1 and shown["status"] == "interrupted"
    keys = [s["key"] for s in shown["steps"] if not s["replayed"]]
    assert len(keys) == len(set(keys)) == shown["totals"]["paid"]


def test_wait_lets_a_second_process_continue_after_the_holder(tmp_path):
    corpus, cache = make_corpus(tmp_path), tmp_path / "cache"
    env = subprocess_env(RESEARCH_LOCAL_LATENCY="0.05")
    first = research_proc(*_args(corpus, cache, "w"), env=env, cwd=tmp_path)
    _wait_for_events(cache, 3, first)
    second = research_run(*_args(corpus, cache, "w"), "--wait", "--json", env=env, cwd=tmp_path)
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    # It ran after the holder finished: the second attempt replayed everything and paid nothing.
    assert out["totals"]["this_attempt"]["attempt"] == 2 and out["totals"]["this_attempt"]["paid"] == 0
