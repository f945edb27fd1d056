"""Shared helpers for tests: running the CLI in-process and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from agent.cli import app

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "corpus"
QUESTION = "Do heat pumps work well in cold climates, and what do they cost to run?"


def cli(*args: str):
    """Invoke ``research`` in-process; returns click's Result (stdout and stderr apart)."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def cli_json(*args: str):
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def research_proc(*args: str, env: dict[str, str], cwd: str | Path, **kw) -> subprocess.Popen:
    """Start ``python -m agent ARGS`` as a real process."""
    return subprocess.Popen([sys.executable, "-m", "agent", *map(str, args)], env=env, cwd=str(cwd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def research_run(*args: str, env: dict[str, str], cwd: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *map(str, args)], env=env, cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout)


def completed_events(cache: Path, kind: str | None = None) -> int:
    """Completed step events in a cache's journal, read while another process may be writing it."""
    import sqlite3

    db = Path(cache) / "journal.sqlite3"
    if not db.exists():
        return 0
    query = "SELECT COUNT(*) FROM events WHERE status = 'completed'" + (" AND kind = ?" if kind else "")
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(query, (kind,) if kind else ()).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def run_script(script: str, env: dict[str, str], *args: str) -> dict:
    """Run ``script`` in a fresh interpreter with ``args`` as ``sys.argv[1:]``; the JSON object it printed
    last (a script that drives the CLI in-process and reports what it imported, say)."""
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def sigkill_when(proc: subprocess.Popen, reached, *, seconds: float = 60.0, poll: float = 0.005) -> None:
    """SIGKILL ``proc`` as soon as ``reached()`` is true; fails the test if the process ended first."""
    import signal
    import time

    deadline = time.monotonic() + seconds
    while not reached() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(poll)
    assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()[1]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
