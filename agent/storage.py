"""The storage seam: where step results and the run journal live, chosen by one location.

A location is a directory (the local backend: diskcache beside a SQLite journal, ``./cache`` by
default) or a ``postgresql://user@host/db`` URL (the shared backend, for a team, CI jobs and containers
without a disk of their own). :func:`open_storage` is the one factory: every other module asks it for
"the store" and "the journal" and gets the backend the location names; none constructs one itself.

What the rest of the project uses of a backend is the two protocols below; the local classes
(``agent.store.Store``, ``agent.journal.Journal``) and ``agent.backends.postgres`` implement them, and
share what they decide (``agent.journal.JournalBase``, the record functions of ``agent.store``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

from agent.errors import UsageError

#: URL schemes of the shared backend.
POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


class ResultStore(Protocol):
    """Step results by key, as JSON records (what the runtime, the scrape steps and ``cache`` use)."""

    def get(self, key: str, *, max_age: float | None = None) -> dict[str, Any] | None: ...
    def get_pinned(self, key: str, digest: str) -> dict[str, Any] | None: ...
    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]: ...
    def put(self, key: str, value: Any, *, kind: str, meta: dict[str, Any] | None = None) -> dict[str, Any]: ...
    def records(self) -> Iterator[tuple[str, dict[str, Any]]]: ...
    def put_record(self, key: str, record: dict[str, Any], *, overwrite: bool = False) -> str: ...
    def stats(self) -> dict[str, Any]: ...
    def clear(self, kind: str | None = None) -> int: ...
    def close(self) -> None: ...


class RunJournal(Protocol):
    """Runs, their step events, leases, step claims, waits and side effects (see ``JournalBase``)."""

    def start_run(self, run_id: str, *, question: str, inputs: dict[str, Any], config: dict[str, Any],
                  fingerprint: str, pipeline: str = ..., pipeline_version: int = ..., report: str | None = ...,
                  slot: float | None = ..., holder: str | None = ...) -> int: ...
    def renew(self, run_id: str, holder: str) -> bool: ...
    def finish_run(self, run_id: str, status: str, *, report_path: str | None = ..., error: str | None = ...,
                   outcome: dict[str, Any] | None = ..., holder: str | None = ...) -> None: ...
    def get_run(self, run_id: str) -> dict[str, Any]: ...
    def find_run(self, run_id: str) -> dict[str, Any] | None: ...
    def list_runs(self) -> list[dict[str, Any]]: ...
    def report_runs(self, report: str) -> list[dict[str, Any]]: ...
    def asked_before(self, question: str, run_id: str) -> bool: ...
    def wait_for(self, run_id: str, stage: str, *, timeout_s: float | None = ...) -> dict[str, Any]: ...
    def decide(self, run_id: str, decision: str, note: str | None = ...) -> dict[str, Any]: ...
    def claim(self, key: str, holder: str, run_id: str | None = ...) -> str | None: ...
    def claim_holder(self, key: str) -> str | None: ...
    def release_claim(self, key: str, holder: str) -> None: ...
    def renew_claims(self, holder: str) -> None: ...
    def begin_effect(self, run_id: str, effect: str) -> bool: ...
    def end_effect(self, run_id: str, effect: str, status: str, detail: dict[str, Any] | None = ...) -> None: ...
    def effects(self, run_id: str) -> list[dict[str, Any]]: ...
    def record(self, run_id: str, attempt: int, event: dict[str, Any], *, defer: bool = ...) -> None: ...
    def flush(self) -> None: ...
    def pins(self, run_id: str) -> dict[str, str]: ...
    def steps(self, run_id: str) -> list[dict[str, Any]]: ...
    def attempt_counts(self, run_id: str, attempt: int) -> dict[str, int]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Location:
    """Which backend, and where. ``target`` is the directory or the URL as given (a URL may carry a
    password: print the location itself, never its target)."""

    backend: str  # "local" or "postgresql"
    target: str

    @property
    def directory(self) -> Path:
        if self.backend != "local":
            raise AttributeError(f"a {self.backend} store has no directory")
        return Path(self.target)

    def __str__(self) -> str:
        if self.backend == "local":
            return self.target
        from agent.backends.postgres import describe

        return describe(self.target)["display"]


def locate(location: "str | os.PathLike[str] | Location | None" = None) -> Location:
    """The location meant by ``location`` (``--store``/``--cache-dir``), else by ``RESEARCH_STORE``, else
    the cache directory (``RESEARCH_CACHE_DIR`` or ``./cache``)."""
    if isinstance(location, Location):
        return location
    from agent.config import resolve_store

    target = resolve_store(location)
    match = _SCHEME.match(target)
    if match is None:
        return Location("local", str(Path(target)))
    scheme = match.group(1).lower()
    if scheme in POSTGRES_SCHEMES:
        return Location("postgresql", target)
    raise UsageError(f"a store URL must be postgresql://..., not {scheme}://",
                     hint="pass --store postgresql://user@host/db, or --cache-dir DIR for a local cache")


def open_storage(location: "str | os.PathLike[str] | Location | None" = None, *, reading: bool = False,
                 journal: bool = True) -> tuple[ResultStore | None, RunJournal | None]:
    """``(store, journal)`` of the backend ``location`` names; the one place a backend is made.

    ``reading``: the journal alone, for listings (``runs``, ``show``), opened read-only if a local cache
    directory cannot be written; the store is then ``None``. ``journal=False``: the store alone (the
    ``cache`` commands, ``@durable`` outside a run); the journal is then ``None``.
    """
    where = locate(location)
    if where.backend == "postgresql":
        from agent.backends.postgres import open_postgres

        return open_postgres(where.target, store=not reading, journal=journal or reading)
    from agent.journal import Journal
    from agent.store import Store

    directory = where.directory
    if reading:
        return None, Journal.for_reading(directory)
    if not journal:
        return Store(directory), None
    opened = Journal(directory)
    try:
        return Store(directory), opened
    except BaseException:
        opened.close()
        raise


def store_stats(location: "str | os.PathLike[str] | Location | None" = None) -> dict[str, Any]:
    """Entries and bytes per kind. A local cache is read without being opened for writing, so this
    works on a full, read-only or half-broken directory."""
    where = locate(location)
    if where.backend == "local":
        from agent.store import Store

        return Store.read_stats(where.directory)
    store, _ = open_storage(where, journal=False)
    try:
        return store.stats()
    finally:
        store.close()
