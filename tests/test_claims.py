"""One payer per step across processes: two runs that need the same step at once pay for it once, and a
claimant that dies hands the step to the one waiting."""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter

from tests.conftest import subprocess_env
from tests.helpers import research_proc
from tests.test_crash import QUESTION, make_corpus
from tests.test_signals import _wait_for_events


def _paid_per_key(cache) -> Counter:
    conn = sqlite3.connect(cache / "journal.sqlite3")
    try:
        rows = conn.execute("SELECT key FROM events WHERE status = 'completed' AND replayed = 0").fetchall()
    finally:
        conn.close()
    return Counter(key for (key,) in rows)


def _args(corpus, cache, run_id):
    return ["run", QUESTION, "--file", corpus, "--run-id", run_id, "--cache-dir", cache, "--concurrency", "2", "--quiet"]


def test_two_runs_needing_the_same_steps_at_once_pay_once(tmp_path):
    corpus, cache = make_corpus(tmp_path), tmp_path / "cache"
    env = subprocess_env(RESEARCH_LOCAL_LATENCY="0.15")
    procs = [research_proc(*_args(corpus, cache, run_id), env=env, cwd=tmp_path) for run_id in ("a", "b")]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    paid = _paid_per_key(cache)
    assert paid and max(paid.values()) == 1, [k for k, n in paid.items() if n > 1]
    # Both runs have every step: what one paid for, the other replayed.
    conn = sqlite3.connect(cache / "journal.sqlite3")
    per_run = dict(conn.execute("SELECT run_id, COUNT(DISTINCT key) FROM events WHERE status = 'completed'"
                                " GROUP BY run_id").fetchall())
    conn.close()
    assert per_run["a"] == per_run["b"] == len(paid)


def test_a_claimant_that_dies_hands_its_steps_to_the_waiting_run(tmp_path):
    corpus, cache = make_corpus(tmp_path), tmp_path / "cache"
    slow = subprocess_env(RESEARCH_LOCAL_LATENCY="0.4")
    first = research_proc(*_args(corpus, cache, "first"), env=slow, cwd=tmp_path)
    _wait_for_events(cache, 12, first)  # reads done; the first summaries are claimed and being paid for
    second = research_proc(*_args(corpus, cache, "second"), env=subprocess_env(RESEARCH_LOCAL_LATENCY="0.05"),
                           cwd=tmp_path)
    _wait_for_events(cache, 14, first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    paid = _paid_per_key(cache)
    assert max(paid.values()) == 1  # what the killed run completed was replayed, never paid again
