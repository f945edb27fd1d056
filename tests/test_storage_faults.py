"""A cache directory that is full, read-only, emptied or damaged: paying stops at once, listings still
work, and every message names the file and the way out."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import sqlite3
import stat
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env
from tests.helpers import CORPUS, QUESTION, cli, cli_json, completed_events, research_proc, research_run
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI

KEY = "sk-faults"


def _hosted_env(server, **extra):
    return subprocess_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=f"{server.url}/v1", RESEARCH_MAX_RETRIES="0", **extra)


def _journaled_llm(cache) -> int:
    conn = sqlite3.connect(cache / "journal.sqlite3")
    try:
        return conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'llm' AND status = 'completed'"
                            " AND replayed = 0").fetchone()[0]
    finally:
        conn.close()


def _run_on_small_disk(cache, limit, env, cwd):
    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = [sys.executable, "-m", "agent", "run", QUESTION, "--file", str(CORPUS), "--model", "openai:gpt-4o-mini",
            "--run-id", "full", "--cache-dir", str(cache), "--out", str(cwd / "reports"), "--concurrency", "1",
            "--quiet"]
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, preexec_fn=small_disk)


def test_a_full_disk_stops_paying_at_the_first_failed_write(tmp_path):
    """The cache's files may not grow past a limit (RLIMIT_FSIZE: the kernel refuses the write, as on a
    full disk). Limits are tried from roomy to tight until a run fails part-way: it stops with one line,
    having paid for at most the one call whose result it could not write."""
    warm = tmp_path / "warm"
    fake = OpenAIAPI(key=KEY)
    with serve(fake) as server:
        env = _hosted_env(server)
        first = research_run("run", "Heat pumps: what do installers say?", "--file", CORPUS, "--model",
                             "openai:gpt-4o-mini", "--cache-dir", warm, "--quiet", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        base = max([p.stat().st_size for p in warm.iterdir() if p.is_file()] + [32768])
        for step in range(40, 0, -1):
            cache = tmp_path / f"cache-{step}"
            shutil.copytree(warm, cache)
            before = len(fake.answered)
            journaled_before = _journaled_llm(cache)
            full = _run_on_small_disk(cache, base + step * 4096, env, tmp_path)
            paid_now = len(fake.answered) - before
            if full.returncode == 1 and paid_now >= 2:
                break
        else:
            pytest.fail("no file-size limit made the run fail part-way")
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and str(cache) in lines[0], full.stderr
        assert "stopped before paying for more" in lines[0]
        journaled = _journaled_llm(cache) - journaled_before
        assert 0 <= paid_now - journaled <= 1, (paid_now, journaled)  # nothing paid after the failed write
        # What was stored stays readable, and with room again the run resumes without re-paying it.
        assert cli_json("cache", "stats", "--cache-dir", cache)["entries"] > 0
        answered = len(fake.answered)
        resumed = research_run("resume", "full", "--json", "--cache-dir", cache, env=env, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["totals"]["this_attempt"]["replayed"] >= journaled
        assert len(fake.answered) - answered <= 12 - journaled  # only what was never journaled is paid again


def test_a_cache_directory_moved_away_during_a_run_stops_it_in_one_line(tmp_path):
    """Someone moves the cache directory aside (or removes it) while a run writes to it: what the run
    stores from then on would go to files nobody can find again, so it stops, saying so, as on a full
    disk; a run afterwards builds a new cache in its place."""
    import time

    cache = tmp_path / "cache"
    args = ["run", QUESTION, "--file", CORPUS, "--cache-dir", cache, "--concurrency", "1", "--json"]
    proc = research_proc(*args, env=subprocess_env(RESEARCH_LOCAL_LATENCY="0.3"), cwd=tmp_path)
    deadline = time.monotonic() + 60
    while completed_events(cache) < 6:  # the reads and a first summary paid
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.rename(cache, tmp_path / "moved")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"the cache at {cache} was removed or replaced" in lines[0], err
    assert not cache.exists()  # nothing recreated where the cache was
    again = research_run(*args, env=subprocess_env(), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["totals"]["paid"] == 12


@contextlib.contextmanager
def read_only(cache):
    """``cache`` as a read-only file system (a bind mount remounted ro) when we are root, whom file modes
    do not stop; as read-only modes otherwise. Yields the directory to use."""
    if os.geteuid() != 0:
        for path in [cache, *cache.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        yield cache
        return
    view = cache.parent / "ro-view"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(cache), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True)


def test_a_read_only_cache_still_lists_shows_and_counts(tmp_path):
    cache = tmp_path / "cache"
    assert cli("run", QUESTION, "--file", CORPUS, "--run-id", "r1", "--cache-dir", cache, "--quiet").exit_code == 0
    env = subprocess_env()
    with read_only(cache) as ro:
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")
        for args in (["runs", "--json"], ["show", "r1", "--json"], ["cache", "stats", "--json"]):
            result = research_run(*args, "--cache-dir", ro, env=env, cwd=tmp_path)
            assert result.returncode == 0, (args, result.stderr)
            assert json.loads(result.stdout)
        # A run on it fails in one line naming the directory, before paying for anything.
        result = research_run("run", QUESTION, "--file", CORPUS, "--cache-dir", ro, env=env, cwd=tmp_path)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and str(ro) in result.stderr


def test_a_lost_cache_file_is_said_and_budgeted_before_paying_again(tmp_path):
    cache = tmp_path / "cache"
    fake = OpenAIAPI(key=KEY)
    with serve(fake) as server:
        env = _hosted_env(server)
        first = research_run("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--run-id", "lost",
                             "--cache-dir", cache, "--quiet", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        paid = len(fake.answered)
        (cache / "cache.db").unlink()
        stopped = research_run("resume", "lost", "--max-cost", "0.000001", "--cache-dir", cache, env=env, cwd=tmp_path)
        assert stopped.returncode == 4, stopped.stderr
        assert "lost their stored results" in stopped.stderr and len(fake.answered) == paid
        resumed = research_run("resume", "lost", "--max-cost", "1", "--cache-dir", cache, "--quiet", env=env,
                               cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stderr.startswith("warning: 12 completed steps of run lost lost their stored results")
        assert len(fake.answered) == 2 * paid


def test_a_damaged_cache_file_is_named_with_its_recovery(tmp_path):
    cache = tmp_path / "cache"
    assert cli("run", QUESTION, "--file", CORPUS, "--cache-dir", cache, "--quiet").exit_code == 0
    (cache / "cache.db").write_bytes(os.urandom(8192))
    for args in (["cache", "stats"], ["run", QUESTION, "--file", CORPUS, "--quiet"]):
        result = cli(*args, "--cache-dir", cache)
        assert result.exit_code == 1, (args, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and f"{cache / 'cache.db'} is damaged" in line and "move it aside" in line, line
        assert "none of the sources" not in line


def test_the_cache_directory_is_user_only(tmp_path):
    cache = tmp_path / "new" / "cache"
    assert cli("run", QUESTION, "--file", CORPUS, "--cache-dir", cache, "--quiet").exit_code == 0
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    for name in ("cache.db", "journal.sqlite3"):
        assert stat.S_IMODE((cache / name).stat().st_mode) == 0o600, name
