"""The run journal: what each run asked for, and what each of its steps did.

One SQLite file beside the store (``journal.sqlite3``). A run row holds its inputs, config and status;
an event row is written for every step outcome (paid, replayed or failed) the moment it happens, so a
run killed at any instant leaves a journal that says exactly which steps completed. On resume those
completed steps are *pinned*: they replay the very result the run saw, by digest, whatever its age.

Writes use WAL with ``synchronous=NORMAL``: a commit survives the process being killed (it is in the OS
page cache at once), which is the failure this journal exists for, without an fsync per step.

:class:`JournalBase` holds what a journal decides (leases, claims, waits, effects, the events'
arithmetic) over a few primitives; :class:`Journal` is the local (SQLite) backend, and
``agent.backends.postgres`` the shared one. ``agent.storage.open_storage`` picks between them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

from agent.errors import StoreError, UsageError

#: The tables as the first release made them. Later changes are migrations, never edits here, so a
#: journal written by any release opens in every later one.
_SCHEMA_1 = """
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

_SCHEMA_2 = """
ALTER TABLE runs ADD COLUMN pipeline TEXT NOT NULL DEFAULT 'research';
ALTER TABLE runs ADD COLUMN pipeline_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN outcome TEXT;
ALTER TABLE runs ADD COLUMN holder TEXT;
ALTER TABLE runs ADD COLUMN lease_expires REAL;
ALTER TABLE runs ADD COLUMN report TEXT;
ALTER TABLE runs ADD COLUMN slot REAL;
ALTER TABLE events ADD COLUMN detail TEXT;
CREATE INDEX IF NOT EXISTS runs_report ON runs (report, slot);
CREATE TABLE IF NOT EXISTS waits (
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    status TEXT NOT NULL,
    note TEXT,
    since REAL NOT NULL,
    until REAL,
    decided_at REAL,
    PRIMARY KEY (run_id, stage)
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    run_id TEXT,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS effects (
    run_id TEXT NOT NULL,
    effect TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, effect)
);
"""

#: Batches handed to a vendor's batch API: written as an intent before the request, given the vendor's id
#: after it, so a process killed in between never makes a second batch of the same steps.
_SCHEMA_3 = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    count INTEGER NOT NULL,
    keys TEXT NOT NULL,
    status TEXT NOT NULL,
    vendor_id TEXT,
    created_at REAL NOT NULL,
    submitted_at REAL,
    updated_at REAL NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS batches_run ON batches (run_id);
CREATE INDEX IF NOT EXISTS batches_vendor ON batches (endpoint, vendor_id);
CREATE TABLE IF NOT EXISTS batch_keys (
    key TEXT NOT NULL,
    batch TEXT NOT NULL,
    PRIMARY KEY (key, batch)
)
"""

#: Each step of a run once: its first paid event if it was ever paid (later replays do not undo that),
#: else its latest event; with how many times it was paid and what that cost. In the order steps first ran.
_STEPS = """
SELECT e.kind, e.name, e.provider, e.model, e.key, e.status, e.replayed, e.input_tokens, e.output_tokens,
       e.cost_usd, e.saved_usd, e.duration_s, e.error, e.detail,
       g.paid_times, g.paid_total, g.paid_unknown
FROM (SELECT key, MIN(id) AS first_id, MAX(id) AS last_id,
             MIN(CASE WHEN status = 'completed' AND replayed = 0 THEN id END) AS paid_id,
             SUM(CASE WHEN status = 'completed' AND replayed = 0 THEN 1 ELSE 0 END) AS paid_times,
             SUM(CASE WHEN status = 'completed' AND replayed = 0 THEN cost_usd END) AS paid_total,
             SUM(CASE WHEN status = 'completed' AND replayed = 0 AND cost_usd IS NULL THEN 1 ELSE 0 END) AS paid_unknown
      FROM events WHERE run_id = ? GROUP BY key) g
JOIN events e ON e.id = COALESCE(g.paid_id, g.last_id)
ORDER BY g.first_id
"""

#: A run's events indexed in the order they were written, not by step key: each new event lands at the
#: end of its run's entries instead of at a random place among every key the journal ever saw
#: (``bench/bench_events.py``: about half the time an event beside 280,000 earlier ones).
_SCHEMA_4 = """
DROP INDEX IF EXISTS events_run;
CREATE INDEX IF NOT EXISTS events_run_order ON events (run_id, id)
"""

#: Migration ``n`` (1-based) takes a journal from schema ``n - 1`` to ``n``; ``PRAGMA user_version``
#: holds the schema a file is at. The first release wrote version 0 with the tables of ``_SCHEMA_1``.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_1, _SCHEMA_2, _SCHEMA_3, _SCHEMA_4)
SCHEMA_VERSION = len(MIGRATIONS)

#: How long a side effect being sent is left to the process sending it (a webhook's retries fit in it).
EFFECT_SECONDS = 300.0

#: How long a run's lease lasts without a heartbeat; a holder renews it every third of that.
LEASE_SECONDS = 15.0

EVENT_FIELDS = (
    "key", "kind", "name", "provider", "model", "status", "replayed", "digest",
    "input_tokens", "output_tokens", "cost_usd", "saved_usd", "duration_s", "error", "detail",
)


class RunBusy(UsageError):
    """Another live process holds the run: one run id has one payer at a time."""

    def __init__(self, run_id: str, holder: str, since: float) -> None:
        when = _dt.datetime.fromtimestamp(since, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(f"run {run_id} is already running in {holder} (since {when})",
                         hint="wait for it to finish, or check it with 'research runs'")
        self.run_id, self.holder, self.since = run_id, holder, since


def _live(run: dict[str, Any], now: float) -> bool:
    """Whether a running run's holder is still at it: its lease is current and, on this host, its process lives."""
    if run["status"] != "running":
        return False
    if run.get("host") == socket.gethostname() and not _pid_alive(run.get("pid")):
        return False  # a holder on this machine that died frees the run at once, not when its lease runs out
    if run.get("lease_expires") is None:
        # A run started by the first release, which kept no lease: only its pid on this host says anything
        # (and a dead one was ruled out above).
        return run.get("host") == socket.gethostname()
    return run["lease_expires"] > now


def _holder_alive(holder: str) -> bool:
    """Whether a ``host:pid:...`` holder may still be alive: on another host, only its lease can tell."""
    host, _, rest = holder.partition(":")
    if host != socket.gethostname():
        return True
    pid = rest.split(":", 1)[0]
    return pid.isdigit() and _pid_alive(int(pid))


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


def _retry_locked(open_: Callable[[], T], seconds: float = 30.0) -> T:
    """``open_()``, again while SQLite says the file is locked: two processes creating a cache at the same
    moment both switch it to WAL, which SQLite's busy timeout does not cover."""
    deadline = time.monotonic() + seconds
    delay = 0.01
    while True:
        try:
            return open_()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection; on a read-only file system, where SQLite cannot make the WAL index, the
    file is read as immutable (what the last writer checkpointed at close)."""
    for query in ("mode=ro", "mode=ro&immutable=1"):
        conn = sqlite3.connect(f"file:{path}?{query}", uri=True, timeout=60, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA user_version").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if query.endswith("immutable=1"):
                raise
    raise AssertionError("unreachable")


def holder_id() -> str:
    """Who holds a lease: host and process, readable by a person and by another machine."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JournalBase:
    """What a journal decides, written once for every backend.

    A backend brings a connection: :meth:`_exec` runs one statement (``?`` placeholders) and returns
    a cursor-like object (``fetchone``, ``fetchall``, ``description``, ``rowcount``);
    :meth:`_transaction` yields one on which read-then-write decisions cannot race (the SQLite backend
    takes the database's write lock, PostgreSQL a lock on the names passed); :meth:`flush` writes
    deferred events. Everything else (leases, claims, waits, effects, the events' arithmetic) is here.
    """

    #: The option that says where a journal is, for the hints of messages.
    _OPTION = "--cache-dir"
    _lock: threading.Lock
    _pending: list[tuple]

    @property
    def where(self) -> Any:
        """Where this journal is, as messages name it (never with a password)."""
        raise NotImplementedError

    def _exec(self, sql: str, params: tuple | dict = ()) -> Any:
        raise NotImplementedError

    def _transaction(self, *lock: str) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- runs --------------------------------------------------------------------------------
    def start_run(
        self,
        run_id: str,
        *,
        question: str,
        inputs: dict[str, Any],
        config: dict[str, Any],
        fingerprint: str,
        pipeline: str = "research",
        pipeline_version: int = 1,
        report: str | None = None,
        slot: float | None = None,
        holder: str | None = None,
    ) -> int:
        """Open a run, or reopen one with the same inputs, and take its lease; returns the attempt (1 for new).

        Raises :class:`RunBusy` while another live process holds the run: one run id is one payer.
        """
        now = time.time()
        holder = holder or holder_id()
        host, pid = socket.gethostname(), os.getpid()
        with self._transaction("run", run_id) as db:
            cur = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
            row = cur.fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO runs (run_id, status, question, fingerprint, inputs, config, started_at,"
                    " updated_at, attempts, pid, host, pipeline, pipeline_version, holder, lease_expires, report, slot)"
                    " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, question, fingerprint, json.dumps(inputs), json.dumps(config), now, now,
                     pid, host, pipeline, pipeline_version, holder, now + LEASE_SECONDS, report, slot),
                )
                return 1
            run = dict(zip([c[0] for c in cur.description], row))
            if run["fingerprint"] != fingerprint or run["pipeline"] != pipeline:
                raise UsageError(
                    f"run {run_id} already exists with different inputs",
                    hint=f"use 'research resume {run_id}' to continue it, or pick another --run-id",
                )
            if _live(run, now) and run["holder"] != holder:
                raise RunBusy(run_id, run["holder"] or f"{run['host']}:{run['pid']}", run["updated_at"])
            attempt = int(run["attempts"]) + 1
            db.execute(
                "UPDATE runs SET status = 'running', attempts = ?, updated_at = ?, config = ?, finished_at = NULL,"
                " error = NULL, pid = ?, host = ?, holder = ?, lease_expires = ?, pipeline_version = ?"
                " WHERE run_id = ?",
                (attempt, now, json.dumps(config), pid, host, holder, now + LEASE_SECONDS, pipeline_version, run_id),
            )
            return attempt

    def renew(self, run_id: str, holder: str) -> bool:
        """Extend ``holder``'s lease on a running run; False if it no longer holds it."""
        cur = self._exec(
            "UPDATE runs SET lease_expires = ? WHERE run_id = ? AND holder = ? AND status = 'running'",
            (time.time() + LEASE_SECONDS, run_id, holder),
        )
        return cur.rowcount == 1

    def finish_run(self, run_id: str, status: str, *, report_path: str | None = None, error: str | None = None,
                   outcome: dict[str, Any] | None = None, holder: str | None = None) -> None:
        """Record how a run ended. With ``holder``, only while that holder still has the run: a process
        that stalled past its lease and was taken over must not end the run of the one that took it."""
        now = time.time()
        mine = " AND holder = ?" if holder is not None else ""
        self._exec(
            "UPDATE runs SET status = ?, updated_at = ?, finished_at = ?, report_path = COALESCE(?, report_path),"
            f" error = ?, outcome = COALESCE(?, outcome), lease_expires = NULL WHERE run_id = ?{mine}",
            (status, now, now, report_path, error, json.dumps(outcome) if outcome is not None else None, run_id,
             *((holder,) if holder is not None else ())),
        )

    def _run_dict(self, cur: Any, row: tuple) -> dict[str, Any]:
        run = dict(zip([c[0] for c in cur.description], row))
        run["inputs"] = json.loads(run["inputs"])
        run["config"] = json.loads(run["config"])
        run["outcome"] = json.loads(run["outcome"]) if run.get("outcome") else None
        if run["status"] == "running" and not _live(run, time.time()):
            run["status"] = "interrupted"
        if run["status"] == "waiting":
            wait = self.open_wait(run["run_id"])
            if wait is None:
                open_ = [b for b in self.batches(run["run_id"]) if b["status"] in self.OPEN_BATCH]
                if open_:
                    run["waiting"] = {"stage": "batch", "since": min(b["created_at"] for b in open_), "until": None,
                                      "batches": len(open_), "continue": f"research resume {run['run_id']}"}
            if wait is not None:
                run["status"] = "expired" if wait["status"] == "expired" else "waiting"
                run["waiting"] = {"stage": wait["stage"], "since": wait["since"], "until": wait["until"],
                                  "continue": f"research approve {run['run_id']}"}
        return run

    def get_run(self, run_id: str) -> dict[str, Any]:
        cur = self._exec("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise UsageError(f"no run with id {run_id!r} in {self.where}",
                             hint=f"list runs with 'research runs', or pass the {self._OPTION} it used")
        return self._run_dict(cur, row)

    def find_run(self, run_id: str) -> dict[str, Any] | None:
        cur = self._exec("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        return None if row is None else self._run_dict(cur, row)

    def list_runs(self) -> list[dict[str, Any]]:
        cur = self._exec("SELECT * FROM runs ORDER BY started_at DESC")
        return [self._run_dict(cur, row) for row in cur.fetchall()]

    def asked_before(self, question: str, run_id: str) -> bool:
        """Whether a run other than ``run_id`` asked ``question`` (its model steps may all be stored)."""
        return self._exec("SELECT 1 FROM runs WHERE question = ? AND run_id <> ? LIMIT 1",
                          (question, run_id)).fetchone() is not None

    def report_runs(self, report: str) -> list[dict[str, Any]]:
        """Runs of a scheduled report, latest slot first."""
        cur = self._exec("SELECT * FROM runs WHERE report = ? ORDER BY slot DESC NULLS LAST, started_at DESC", (report,))
        return [self._run_dict(cur, row) for row in cur.fetchall()]

    # -- waits for people ---------------------------------------------------------------------
    def wait_for(self, run_id: str, stage: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """The run's wait before ``stage``: made now (``waiting``) if it did not exist, else as decided."""
        now = time.time()
        with self._transaction("run", run_id) as db:
            db.execute("INSERT INTO waits (run_id, stage, status, since, until) VALUES (?, ?, 'waiting', ?, ?)"
                       " ON CONFLICT (run_id, stage) DO NOTHING",
                       (run_id, stage, now, now + timeout_s if timeout_s is not None else None))
        return self._wait_row(run_id, stage)

    def _wait_row(self, run_id: str, stage: str) -> dict[str, Any]:
        cur = self._exec("SELECT * FROM waits WHERE run_id = ? AND stage = ?", (run_id, stage))
        row = dict(zip([c[0] for c in cur.description], cur.fetchone()))
        if row["status"] == "waiting" and row["until"] is not None and row["until"] <= time.time():
            row["status"] = "expired"
        return row

    def open_wait(self, run_id: str) -> dict[str, Any] | None:
        cur = self._exec("SELECT stage FROM waits WHERE run_id = ? AND status = 'waiting' ORDER BY since DESC",
                         (run_id,))
        row = cur.fetchone()
        return self._wait_row(run_id, row[0]) if row else None

    def decide(self, run_id: str, decision: str, note: str | None = None) -> dict[str, Any]:
        """Approve or reject the wait a run is stopped at; one clear error if it is not waiting."""
        now = time.time()
        with self._transaction("run", run_id) as db:
            run = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if run is None:
                raise UsageError(f"no run with id {run_id!r} in {self.where}",
                                 hint=f"list runs with 'research runs', or pass the {self._OPTION} it used")
            row = db.execute("SELECT stage, until FROM waits WHERE run_id = ? AND status = 'waiting'",
                             (run_id,)).fetchone()
            if row is None or run[0] != "waiting":
                raise UsageError(f"run {run_id} is not waiting for approval (it is {run[0]})",
                                 hint="only a run stopped by --approve STAGE can be approved or rejected")
            stage, until = row
            if until is not None and until <= now:
                # Nothing to write: an expired wait is read as expired from its ``until`` (``_wait_row``).
                raise UsageError(f"run {run_id} waited too long: its approval expired "
                                 f"{_dt.datetime.fromtimestamp(until, tz=_dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
                                 hint="start a new run")
            db.execute("UPDATE waits SET status = ?, note = ?, decided_at = ? WHERE run_id = ? AND stage = ?",
                       (decision, note, now, run_id, stage))
            if decision == "rejected":
                db.execute("UPDATE runs SET status = 'rejected', updated_at = ?, finished_at = ? WHERE run_id = ?",
                           (now, now, run_id))
        return self._wait_row(run_id, stage)

    # -- step claims -------------------------------------------------------------------------
    def claim(self, key: str, holder: str, run_id: str | None = None) -> str | None:
        """Claim step ``key`` for ``holder`` before paying for it; None if claimed, else who holds it.

        One payer per step across processes sharing this journal: a second run needing the same step
        waits for the first one's stored result instead of paying again. A claim whose holder died (its
        process gone on this host, or its lease not renewed) is taken over.
        """
        now = time.time()
        with self._transaction("claim", key) as db:
            row = db.execute("SELECT holder, expires FROM claims WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] != holder and row[1] > now and _holder_alive(row[0]):
                return row[0]
            db.execute("INSERT INTO claims (key, holder, run_id, expires) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, run_id = excluded.run_id,"
                       " expires = excluded.expires", (key, holder, run_id, now + LEASE_SECONDS))
        return None

    def claim_holder(self, key: str) -> str | None:
        """Who holds a live claim on ``key``, if anyone."""
        row = self._exec("SELECT holder, expires FROM claims WHERE key = ?", (key,)).fetchone()
        if row is None or row[1] <= time.time() or not _holder_alive(row[0]):
            return None
        return row[0]

    def release_claim(self, key: str, holder: str) -> None:
        self._exec("DELETE FROM claims WHERE key = ? AND holder = ?", (key, holder))

    def renew_claims(self, holder: str) -> None:
        self._exec("UPDATE claims SET expires = ? WHERE holder = ?", (time.time() + LEASE_SECONDS, holder))

    # -- side effects ------------------------------------------------------------------------
    def begin_effect(self, run_id: str, effect: str) -> bool:
        """Record that ``effect`` (a webhook, a notification) is about to fire; False if it already fired.

        The record is written before the effect fires, so a replayed or resumed run never fires it
        again, and a second process finishing the same run meanwhile leaves it to the first. An effect
        whose process died mid-send is tried again once :data:`EFFECT_SECONDS` have passed (its
        receiver gets the same event id and can drop the duplicate).
        """
        now = time.time()
        with self._transaction("effect", run_id, effect) as db:
            row = db.execute("SELECT status, at FROM effects WHERE run_id = ? AND effect = ?", (run_id, effect)).fetchone()
            if row is not None and row[0] == "sent":
                return False
            if row is not None and row[0] == "sending" and row[1] > now - EFFECT_SECONDS:
                return False  # another process is sending it right now
            db.execute(
                "INSERT INTO effects (run_id, effect, status, attempts, at) VALUES (?, ?, 'sending', 1, ?)"
                " ON CONFLICT (run_id, effect) DO UPDATE SET status = 'sending', attempts = effects.attempts + 1, at = ?",
                (run_id, effect, now, now),
            )
        return True

    def end_effect(self, run_id: str, effect: str, status: str, detail: dict[str, Any] | None = None) -> None:
        self._exec("UPDATE effects SET status = ?, detail = ?, at = ? WHERE run_id = ? AND effect = ?",
                   (status, json.dumps(detail) if detail is not None else None, time.time(), run_id, effect))

    def effects(self, run_id: str) -> list[dict[str, Any]]:
        cur = self._exec("SELECT effect, status, attempts, detail, at FROM effects WHERE run_id = ? ORDER BY at",
                         (run_id,))
        return [{"effect": e, "status": s, "attempts": a, "detail": json.loads(d) if d else None, "at": at}
                for e, s, a, d, at in cur.fetchall()]

    # -- batches -----------------------------------------------------------------------------
    #: A batch's states: ``intent`` (journaled, maybe not yet accepted), ``submitted`` (the vendor's id
    #: known), then ``collected`` (its answers read), ``failed`` (the vendor refused it whole) or
    #: ``abandoned`` (an intent no vendor ever accepted).
    OPEN_BATCH = ("intent", "submitted")

    def batch_intent(self, batch_id: str, *, run_id: str, stage: str, provider: str, endpoint: str,
                     keys: list[str]) -> dict[str, Any]:
        """Journal that the steps ``keys`` are about to go to ``provider``'s batch API as one batch."""
        now = time.time()
        with self._transaction("batch", batch_id) as db:
            db.execute("INSERT INTO batches (id, run_id, stage, provider, endpoint, count, keys, status, created_at,"
                       " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?)",
                       (batch_id, run_id, stage, provider, endpoint, len(keys), json.dumps(keys), now, now))
            for key in keys:
                db.execute("INSERT INTO batch_keys (key, batch) VALUES (?, ?) ON CONFLICT (key, batch) DO NOTHING",
                           (key, batch_id))
        return self.batch(batch_id)

    def batch_update(self, batch_id: str, status: str, *, vendor_id: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        """Move a batch on: its vendor id once accepted, its state and what is known of its progress."""
        now = time.time()
        sets, params = ["status = ?", "updated_at = ?"], [status, now]
        if vendor_id is not None:
            sets += ["vendor_id = ?", "submitted_at = COALESCE(submitted_at, ?)"]
            params += [vendor_id, now]
        if detail is not None:
            sets.append("detail = ?")
            params.append(json.dumps(detail))
        self._exec(f"UPDATE batches SET {', '.join(sets)} WHERE id = ?", (*params, batch_id))

    def _batch_dict(self, cur: Any, row: tuple) -> dict[str, Any]:
        batch = dict(zip([c[0] for c in cur.description], row))
        batch["keys"] = json.loads(batch["keys"])
        batch["detail"] = json.loads(batch["detail"]) if batch.get("detail") else {}
        return batch

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        cur = self._exec("SELECT * FROM batches WHERE id = ?", (batch_id,))
        row = cur.fetchone()
        return None if row is None else self._batch_dict(cur, row)

    #: Step keys asked about in one statement (well under every backend's limit on parameters).
    KEYS_AT_ONCE = 500

    def open_batches_of(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """For each of ``keys`` carried by a batch not yet collected (any run's), the oldest such batch;
        each batch read once, however many of the keys it carries."""
        ids: dict[str, str] = {}
        for start in range(0, len(keys), self.KEYS_AT_ONCE):
            chunk = tuple(keys[start:start + self.KEYS_AT_ONCE])
            rows = self._exec("SELECT k.key, k.batch FROM batch_keys k JOIN batches b ON b.id = k.batch"
                              f" WHERE k.key IN ({', '.join('?' * len(chunk))}) AND b.status IN ('intent', 'submitted')"
                              " ORDER BY b.created_at", chunk).fetchall()
            for key, batch_id in rows:
                ids.setdefault(key, batch_id)
        batches = {batch_id: self.batch(batch_id) for batch_id in set(ids.values())}
        return {key: batches[batch_id] for key, batch_id in ids.items()}

    def batches(self, run_id: str) -> list[dict[str, Any]]:
        """The run's batches, oldest first."""
        cur = self._exec("SELECT * FROM batches WHERE run_id = ? ORDER BY created_at, id", (run_id,))
        return [self._batch_dict(cur, row) for row in cur.fetchall()]

    def adopted(self, endpoint: str) -> frozenset[str]:
        """Vendor ids of the batches already journaled for ``endpoint`` (never adopted twice)."""
        rows = self._exec("SELECT vendor_id FROM batches WHERE endpoint = ? AND vendor_id IS NOT NULL",
                          (endpoint,)).fetchall()
        return frozenset(row[0] for row in rows)

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
        self.record_values(run_id, attempt, tuple(map(event.get, EVENT_FIELDS)), defer=defer)

    def record_many(self, run_id: str, attempt: int, events: list[tuple], *, defer: bool = False) -> None:
        """:meth:`record_values` for several events at once."""
        now = time.time()
        with self._lock:
            self._pending.extend((run_id, attempt, *values, now) for values in events)
            if defer and len(self._pending) < self.DEFER_LIMIT:
                return
        self.flush()

    def record_values(self, run_id: str, attempt: int, values: tuple, *, defer: bool = False) -> None:
        """:meth:`record` with the event's values in the order of :data:`EVENT_FIELDS` (every replayed
        step comes here: no dictionary to build and read back)."""
        row = (run_id, attempt, *values, time.time())
        with self._lock:
            self._pending.append(row)
            if defer and len(self._pending) < self.DEFER_LIMIT:
                return
        self.flush()

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
        """:meth:`iter_steps` as a list."""
        return list(self.iter_steps(run_id))

    #: Step rows fetched at a time by :meth:`iter_steps`.
    PAGE = 500

    def iter_steps(self, run_id: str) -> Iterator[dict[str, Any]]:
        """One entry per step of the run, across its attempts, in the order the steps first ran; read
        from the journal a page at a time, so a run of many thousands of steps is never all in memory.

        A step this run paid for counts as paid (with its cost) even if a later attempt replayed it;
        a step only ever replayed counts as replayed, its original cost as saved. A step paid more than
        once (its stored result was lost between attempts) says so in ``paid_times``, and its cost is
        what every payment cost: the totals are what was really spent.
        """
        cur = self._exec(_STEPS, (run_id,))
        names = [c[0] for c in cur.description]
        while True:
            rows = cur.fetchmany(self.PAGE)
            if not rows:
                return
            for row in rows:
                ev = dict(zip(names, row))
                paid_times = ev["paid_times"] or 0
                cost = ev["cost_usd"]
                if paid_times > 1:
                    cost = None if ev["paid_unknown"] else ev["paid_total"]
                step = {
                    "kind": ev["kind"], "name": ev["name"], "provider": ev["provider"], "model": ev["model"],
                    "key": ev["key"], "status": ev["status"], "replayed": bool(ev["replayed"]),
                    "input_tokens": ev["input_tokens"], "output_tokens": ev["output_tokens"],
                    "cost_usd": cost, "saved_usd": ev["saved_usd"], "duration_s": ev["duration_s"],
                    "paid_times": paid_times,
                }
                if ev.get("detail"):
                    step["detail"] = json.loads(ev["detail"])
                    step["truncated"] = step["detail"].get("finish_reason") == "length"
                if ev["status"] == "failed":
                    step["error"] = ev["error"]
                yield step

    def attempt_counts(self, run_id: str, attempt: int) -> dict[str, int]:
        """What one attempt of a run did: steps paid, replayed and failed by that attempt alone."""
        rows = self._exec(
            "SELECT status, replayed, COUNT(*) FROM events WHERE run_id = ? AND attempt = ? GROUP BY status, replayed",
            (run_id, attempt)).fetchall()
        counts = {"attempt": attempt, "paid": 0, "replayed": 0, "failed": 0}
        for status, replayed, n in rows:
            key = "failed" if status == "failed" else ("replayed" if replayed else "paid")
            counts[key] += n
        return counts


class Journal(JournalBase):
    """Runs and their step events, in SQLite: the local backend."""

    def __init__(self, directory: str | Path, *, read_only: bool = False) -> None:
        """Open (or create) the journal; ``read_only`` opens an existing one without writing anything,
        for listings on a full or read-only cache."""
        from agent.store import _is_damage, damaged, make_private

        self.path = Path(directory) / "journal.sqlite3"
        self.read_only = read_only
        self._lock = threading.Lock()
        self._pending: list[tuple] = []
        try:
            if read_only:
                if not self.path.exists():
                    raise UsageError(f"no run journal in {self.path.parent}",
                                     hint="pass the --cache-dir the runs used")
                self._db = _open_read_only(self.path)
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version != SCHEMA_VERSION:
                    raise StoreError(f"the run journal at {self.path} is at schema {version} and cannot be "
                                     f"upgraded to {SCHEMA_VERSION} without writing to it",
                                     hint="open it once where the cache directory is writable")
                return
            make_private(self.path.parent)
            self._db = _retry_locked(self._connect)
            make_private(self.path.parent)
        except (OSError, sqlite3.Error) as exc:
            if _is_damage(exc):
                raise damaged(self.path, exc) from exc
            raise StoreError(
                f"cannot open the run journal at {self.path}: {exc}",
                hint="pass --cache-dir to use another directory, or move this one aside",
            ) from exc

    @classmethod
    def for_reading(cls, directory: str | Path) -> "Journal":
        """The journal for listings (``runs``, ``show``): opened normally, or read-only when the cache
        directory cannot be written (a full disk, a read-only mount)."""
        try:
            return cls(directory)
        except StoreError as exc:
            if not Path(directory, "journal.sqlite3").exists():
                raise
            try:
                return cls(directory, read_only=True)
            except (StoreError, sqlite3.Error):
                raise exc from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._db = db
            self._migrate()
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self) -> None:
        """Bring the file to :data:`SCHEMA_VERSION`, one numbered migration at a time.

        Each runs in an immediate transaction that re-reads the version first, so two processes
        opening an old journal at once migrate it once.
        """
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"the run journal at {self.path} was written by a newer release (schema {version}, this one "
                f"knows {SCHEMA_VERSION})", hint="upgrade durable-research, or pass --cache-dir for another directory")
        while version < SCHEMA_VERSION:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version < SCHEMA_VERSION:
                    for statement in filter(str.strip, MIGRATIONS[version].split(";")):
                        self._db.execute(statement)
                    version += 1
                    self._db.execute(f"PRAGMA user_version = {version}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return self._exec("PRAGMA user_version").fetchone()[0]

    def _exec(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        if self._pending:
            self.flush()
        try:
            with self._lock:
                return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        from agent.store import _is_damage, damaged

        if _is_damage(exc):
            return damaged(self.path, exc)
        return StoreError(f"cannot use the run journal at {self.path}: {exc}",
                          hint="check free disk space and permissions, or pass --cache-dir; the run stopped before paying for more")

    @property
    def where(self) -> Path:
        return self.path.parent

    @contextlib.contextmanager
    def _transaction(self, *lock: str) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction: read-then-write decisions other processes cannot race.

        It locks the whole database, so the names of what is decided (``lock``) are not needed."""
        if self._pending:
            self.flush()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc


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
                raise self._error(exc) from exc

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()


class Totals:
    """Counts and money over a run's steps, added one step at a time (so a listing that streams the steps
    can total them in the same pass)."""

    def __init__(self) -> None:
        self.calls = self.paid = self.replayed = self.failed = self.batched = 0
        self.cost = self.saved = self.sync = 0  # as sum() gives it: an int until a float is added
        self.unknown = self.saved_unknown = False

    def add(self, s: dict[str, Any]) -> None:
        self.calls += 1
        if s["status"] == "failed":
            self.failed += 1
        if s["replayed"]:
            self.replayed += 1
            self.saved += s["saved_usd"] or 0.0
            self.saved_unknown = self.saved_unknown or s["saved_usd"] is None
        elif s["status"] == "completed":
            self.paid += s.get("paid_times", 1)  # every payment, in every attempt: a step paid twice counts twice
            self.cost += s["cost_usd"] or 0.0
            self.unknown = self.unknown or s["cost_usd"] is None
            detail = s.get("detail")
            if detail and "sync_cost_usd" in detail:  # answered through a batch API, at its price
                self.batched += 1
                self.sync += detail["sync_cost_usd"] or 0.0
            else:
                self.sync += s["cost_usd"] or 0.0

    def result(self) -> dict[str, Any]:
        unknown, cost, saved = self.unknown, self.cost, self.saved
        extra: dict[str, Any] = {}
        if self.batched:  # what the same steps would have cost asked one by one
            extra = {"batched": self.batched, "sync_cost_usd": None if unknown and not self.sync else round(self.sync, 6)}
        return {
            "calls": self.calls,
            "paid": self.paid,
            "replayed": self.replayed,
            "failed": self.failed,
            # An unpriced model's calls make a sum unknown: None when nothing of it is known, else the known
            # part, with ``cost_complete``/``saved_complete`` false so nobody reads it as the whole.
            "cost_usd": None if unknown and not cost else round(cost, 6),
            "saved_usd": None if self.saved_unknown and not saved else round(saved, 6),
            "cost_complete": not unknown,
            "saved_complete": not self.saved_unknown,
            **extra,
        }


def totals(steps: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts and money over a run's steps (one pass: ``steps`` may be :meth:`JournalBase.iter_steps`)."""
    counted = Totals()
    for step in steps:
        counted.add(step)
    return counted.result()
