"""The run journal: what each run asked for, and what each of its steps did.

One SQLite file beside the store (``journal.sqlite3``). A run row holds its inputs, config and status;
an event row is written for every step outcome (paid, replayed or failed) the moment it happens, so a
run killed at any instant leaves a journal that says exactly which steps completed. On resume those
completed steps are *pinned*: they replay the very result the run saw, by digest, whatever its age.

Writes use WAL with ``synchronous=NORMAL``: a commit survives the process being killed (it is in the OS
page cache at once), which is the failure this journal exists for, without an fsync per step.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from agent.errors import StoreError, UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    question TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    inputs TEXT NOT NULL,
    config TEXT NOT NULL,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    report_path TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    pid INTEGER,
    host TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    status TEXT NOT NULL,
    replayed INTEGER NOT NULL,
    digest TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    saved_usd REAL,
    duration_s REAL,
    error TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, key);
"""

EVENT_FIELDS = (
    "key", "kind", "name", "provider", "model", "status", "replayed", "digest",
    "input_tokens", "output_tokens", "cost_usd", "saved_usd", "duration_s", "error",
)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Journal:
    """Runs and their step events, in SQLite."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / "journal.sqlite3"
        self._lock = threading.Lock()
        self._pending: list[tuple] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the run journal at {self.path}: {exc}",
                hint="pass --cache-dir to use another directory, or move this one aside",
            ) from exc

    def _exec(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        if self._pending:
            self.flush()
        try:
            with self._lock:
                return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the run journal at {self.path}: {exc}") from exc

    # -- runs --------------------------------------------------------------------------------
    def start_run(
        self,
        run_id: str,
        *,
        question: str,
        inputs: dict[str, Any],
        config: dict[str, Any],
        fingerprint: str,
    ) -> int:
        """Open a run, or reopen one with the same inputs; returns the attempt number (1 for new)."""
        now = time.time()
        row = self._exec("SELECT fingerprint, attempts FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            self._exec(
                "INSERT INTO runs (run_id, status, question, fingerprint, inputs, config, started_at,"
                " updated_at, attempts, pid, host) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (run_id, question, fingerprint, json.dumps(inputs), json.dumps(config), now, now,
                 os.getpid(), socket.gethostname()),
            )
            return 1
        if row[0] != fingerprint:
            raise UsageError(
                f"run {run_id} already exists with different inputs",
                hint=f"use 'research resume {run_id}' to continue it, or pick another --run-id",
            )
        attempt = int(row[1]) + 1
        self._exec(
            "UPDATE runs SET status = 'running', attempts = ?, updated_at = ?, config = ?, finished_at = NULL,"
            " error = NULL, pid = ?, host = ? WHERE run_id = ?",
            (attempt, now, json.dumps(config), os.getpid(), socket.gethostname(), run_id),
        )
        return attempt

    def finish_run(self, run_id: str, status: str, *, report_path: str | None = None, error: str | None = None) -> None:
        now = time.time()
        self._exec(
            "UPDATE runs SET status = ?, updated_at = ?, finished_at = ?, report_path = COALESCE(?, report_path),"
            " error = ? WHERE run_id = ?",
            (status, now, now, report_path, error, run_id),
        )

    def get_run(self, run_id: str) -> dict[str, Any]:
        cur = self._exec("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise UsageError(f"no run with id {run_id!r} in {self.path.parent}",
                             hint="list runs with 'research runs', or pass the --cache-dir it used")
        run = dict(zip([c[0] for c in cur.description], row))
        run["inputs"] = json.loads(run["inputs"])
        run["config"] = json.loads(run["config"])
        if run["status"] == "running" and run["host"] == socket.gethostname() and not _pid_alive(run["pid"]):
            run["status"] = "interrupted"
        return run

    def list_runs(self) -> list[dict[str, Any]]:
        ids = [r[0] for r in self._exec("SELECT run_id FROM runs ORDER BY started_at DESC").fetchall()]
        return [self.get_run(run_id) for run_id in ids]

    # -- events ------------------------------------------------------------------------------
    _INSERT = (f"INSERT INTO events (run_id, attempt, {', '.join(EVENT_FIELDS)}, at)"
               f" VALUES (?, ?, {', '.join('?' * len(EVENT_FIELDS))}, ?)")
    #: Replay events waiting to be written together (see :meth:`record`).
    DEFER_LIMIT = 256

    def record(self, run_id: str, attempt: int, event: dict[str, Any], *, defer: bool = False) -> None:
        """Append a step event.

        Paid and failed events are committed at once: they are what a resume relies on. Replay
        events may be ``defer``-red and written in batches (one transaction per batch keeps a replay
        in microseconds); losing them to a kill costs nothing, since a resume replays those steps again.
        """
        row = (run_id, attempt, *[event.get(f) for f in EVENT_FIELDS], time.time())
        with self._lock:
            self._pending.append(row)
            if defer and len(self._pending) < self.DEFER_LIMIT:
                return
        self.flush()

    def flush(self) -> None:
        """Write deferred events."""
        with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.executemany(self._INSERT, rows)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write the run journal at {self.path}: {exc}") from exc

    def pins(self, run_id: str) -> dict[str, str]:
        """Key -> digest of every step this run completed, in any attempt."""
        rows = self._exec(
            "SELECT key, digest FROM events WHERE run_id = ? AND status = 'completed' ORDER BY id", (run_id,)
        ).fetchall()
        return {key: digest for key, digest in rows}

    def events(self, run_id: str) -> list[dict[str, Any]]:
        cur = self._exec("SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,))
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """One entry per step of the run, across its attempts.

        A step this run paid for counts as paid (with its cost) even if a later attempt replayed it;
        a step only ever replayed counts as replayed, its original cost as saved.
        """
        by_key: dict[str, dict[str, Any]] = {}
        for ev in self.events(run_id):
            cur = by_key.get(ev["key"])
            paid_before = cur is not None and cur["status"] == "completed" and not cur["replayed"]
            if cur is None or not paid_before:
                by_key[ev["key"]] = ev
        steps = []
        for ev in by_key.values():
            step = {
                "kind": ev["kind"], "name": ev["name"], "provider": ev["provider"], "model": ev["model"],
                "key": ev["key"], "status": ev["status"], "replayed": bool(ev["replayed"]),
                "input_tokens": ev["input_tokens"], "output_tokens": ev["output_tokens"],
                "cost_usd": ev["cost_usd"], "saved_usd": ev["saved_usd"], "duration_s": ev["duration_s"],
            }
            if ev["status"] == "failed":
                step["error"] = ev["error"]
            steps.append(step)
        return steps

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()


def totals(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and money over a run's steps."""
    cost = sum(s["cost_usd"] or 0.0 for s in steps if s["status"] == "completed" and not s["replayed"])
    saved = sum(s["saved_usd"] or 0.0 for s in steps if s["replayed"])
    unknown = any(s["cost_usd"] is None for s in steps if s["status"] == "completed" and not s["replayed"])
    return {
        "calls": len(steps),
        "paid": sum(1 for s in steps if s["status"] == "completed" and not s["replayed"]),
        "replayed": sum(1 for s in steps if s["replayed"]),
        "failed": sum(1 for s in steps if s["status"] == "failed"),
        "cost_usd": round(cost, 6),
        "saved_usd": round(saved, 6),
        "cost_complete": not unknown,
    }
