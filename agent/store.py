"""The content-addressed result store: diskcache holding JSON bytes, and nothing else.

diskcache pickles and unpickles by default; a pickle planted in a shared cache directory would then run
code on read. :class:`JSONBytesDisk` closes that door: it writes only ``bytes`` under ``str`` keys and refuses,
on read, any row or file diskcache marked as pickled. Such a row, or one that is not valid JSON, is a miss.

Each entry is a *record*: the step's result ``value`` with what it cost when it was paid for (usage,
cost, duration) and when it was stored. A record whose result is replaced (a page fetched again after it
went stale) is kept under ``KEY@DIGEST`` so a resumed run can still replay exactly what it saw.

What a record is (:func:`new_record`, :func:`decode_record`, freshness, what an import may do) is
written here once for every backend; :class:`Store` is the local (diskcache) backend, and
``agent.backends.postgres`` the shared one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import diskcache
from diskcache.core import MODE_PICKLE, MODE_RAW, UNKNOWN

from agent import jsontext
from agent.errors import StoreError
from agent.keys import content_hash


class UnsafeRow(Exception):
    """A stored row that would need unpickling to read; treated as a miss."""


class JSONBytesDisk(diskcache.Disk):
    """A diskcache ``Disk`` that stores raw bytes under string keys and never unpickles."""

    def put(self, key):
        if type(key) is not str:
            raise TypeError("store keys are strings")
        return key, True  # what diskcache makes of a str key, without the call (every read comes here)

    def get(self, key, raw):
        if not raw:
            raise UnsafeRow("pickled key")
        return super().get(key, raw)

    def store(self, value, read, key=UNKNOWN):
        if type(value) is not bytes:
            raise TypeError("store values are JSON bytes")
        size, mode, filename, db_value = super().store(value, read, key)
        if filename:  # large values live in files of their own: user-only, like the database
            os.chmod(os.path.join(self._directory, filename), 0o600)
        return size, mode, filename, db_value

    def fetch(self, mode, filename, value, read):
        if mode == MODE_RAW:  # a record held in the database row, as most are: diskcache's own reading of it
            return bytes(value) if type(value) is sqlite3.Binary else value
        if mode == MODE_PICKLE:
            raise UnsafeRow("pickled value")
        return super().fetch(mode, filename, value, False)


def _now() -> float:
    return time.time()


# -- records, for every backend ------------------------------------------------------------------
def new_record(value: Any, *, kind: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record a successful result is stored as: ``meta``, its kind, value, digest and time."""
    record = dict(meta or {})
    record["kind"] = kind
    record["value"] = value
    record["digest"] = content_hash(value)
    record["stored_at"] = _now()
    return record


def encode_record(record: dict[str, Any]) -> bytes:
    """A record as JSON bytes (never NaN: it would not read back as JSON elsewhere)."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _loads(raw: bytes | str) -> Any:
    if type(raw) is bytes:
        try:
            # What the stores write is UTF-8: read as such (orjson where it reads what json reads).
            return jsontext.loads(raw)
        except ValueError:
            pass  # json.loads reads UTF-16 and UTF-32 bytes, and a BOM, too: let it judge
    return json.loads(raw)


def decode_record(raw: bytes | str | None) -> dict[str, Any] | None:
    """The record in ``raw``; ``None`` for anything that is not a JSON object with a ``value``."""
    if raw is None:
        return None
    try:
        record = _loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(record, dict) or "value" not in record:
        return None
    return record


def is_stale(record: dict[str, Any], max_age: float | None) -> bool:
    return max_age is not None and _now() - record.get("stored_at", 0) > max_age


def check_import(key: Any, record: Any) -> str | None:
    """What is wrong with an exported ``(key, record)`` line, or ``None``: a record must carry a value
    whose digest it states truly, and a pinned version (``KEY@DIGEST``) must be the one its key names."""
    if not isinstance(key, str) or not key:
        return "no key"
    if not isinstance(record, dict) or "value" not in record:
        return "no record with a value"
    if not isinstance(record.get("kind"), str):
        return "no kind"
    try:
        digest = content_hash(record["value"])
    except (TypeError, ValueError):
        return "a value that is not JSON"
    if record.get("digest") != digest:
        return "a digest that is not its value's"
    base, at, pinned = key.rpartition("@")
    if at and base and len(pinned) == len(digest) and pinned != digest:
        return "a pinned version whose digest is not its key's"
    return None


def import_outcome(previous: dict[str, Any] | None, record: dict[str, Any], overwrite: bool) -> str:
    """What importing ``record`` over ``previous`` does: ``added``, ``same`` (already there),
    ``conflict`` (a different value is there and stays) or ``replaced`` (``overwrite``)."""
    if previous is None:
        return "added"
    if previous.get("digest") == record.get("digest"):
        return "same"
    return "replaced" if overwrite else "conflict"


#: Files the cache directory holds; created user-only (0600) in a user-only (0700) directory.
DB_FILES = ("cache.db", "cache.db-wal", "cache.db-shm", "journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm")


def make_private(directory: Path) -> None:
    """Create ``directory`` user-only if it does not exist, and make its database files user-only.

    Step results hold source texts and model answers a user may not want others on the machine to read.
    """
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in DB_FILES:
        path = directory / name
        try:
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except OSError:
            pass  # a read-only cache: nothing to tighten, and nothing new will be written there


def damaged(path: Path, exc: BaseException) -> StoreError:
    """The error for a cache file SQLite cannot read as a database: name the file and the way out."""
    return StoreError(
        f"the cache file {path} is damaged ({exc})",
        hint=f"move it aside (mv {path} {path}.broken) and run again: the journal keeps the run history, "
             "and steps whose results it held are paid for again",
    )


def _identity(path: Path) -> tuple[int, int] | None:
    """The file at ``path`` as (device, inode), or ``None`` when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _is_damage(exc: BaseException) -> bool:
    return "malformed" in str(exc) or "not a database" in str(exc)


class Store:
    """Step results on disk, keyed by step key, as JSON records."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            make_private(self.directory)
            from agent.journal import _retry_locked

            self._cache = _retry_locked(lambda: diskcache.Cache(
                str(self.directory),
                disk=JSONBytesDisk,
                eviction_policy="none",
                size_limit=2**62,
                statistics=False,
                tag_index=True,
                # Read without a memory map and with a small page cache: a replay reads each record
                # once, and a cache of thousands of sources would otherwise be mapped into the process.
                sqlite_mmap_size=0,
                sqlite_cache_size=1024,
            ))
        except (OSError, sqlite3.Error) as exc:
            if _is_damage(exc):
                raise damaged(self.directory / "cache.db", exc) from exc
            raise StoreError(
                f"cannot open the cache at {self.directory}: {exc}",
                hint="pass --cache-dir (or RESEARCH_CACHE_DIR) to use another directory, or move this one aside",
            ) from exc
        make_private(self.directory)
        self._identity = _identity(self.directory / "cache.db")

    def _still_there(self) -> None:
        """Raise once the cache file this store writes is no longer the one at its path (the directory
        was removed, or replaced, while the run used it): what it writes from then on is lost with it,
        so the run stops before paying for more, as on a full disk."""
        if _identity(self.directory / "cache.db") != self._identity:
            raise StoreError(
                f"the cache at {self.directory} was removed or replaced while this run used it; the results "
                "it stored are gone with it",
                hint="run again to store them anew (they are paid for again), and keep the cache directory "
                     "in place while a run uses it",
            )

    # -- reading -----------------------------------------------------------------------------
    def get(self, key: str, *, max_age: float | None = None) -> dict[str, Any] | None:
        """The record for ``key``, or ``None`` when it is absent, unreadable or older than ``max_age``."""
        record = self._read(key)
        if max_age is not None and record is not None and is_stale(record, max_age):
            return None
        return record

    def get_pinned(self, key: str, digest: str) -> dict[str, Any] | None:
        """The record for ``key`` whose value has ``digest``: what a run saw, whatever its age."""
        record = self._read(key)
        if record is not None and record.get("digest") == digest:
            return record
        return self._read(f"{key}@{digest}")

    #: A key's row, selected as diskcache's own read selects it (a str key is stored raw).
    _SELECT = ("SELECT mode, filename, value FROM Cache"
               " WHERE key = ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)")

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The records of those of ``keys`` that have a readable one, read together (whatever their age)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):  # within SQLite's limit on a statement's parameters
            chunk = keys[start:start + 500]
            if any(type(key) is not str for key in chunk):
                raise TypeError("store keys are strings")
            sql = (f"SELECT key, mode, filename, value FROM Cache WHERE key IN ({','.join('?' * len(chunk))})"
                   " AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)")
            try:
                rows = self._cache._sql(sql, (*chunk, time.time())).fetchall()
            except (OSError, sqlite3.Error) as exc:
                raise self._unreadable(exc) from exc
            for key, mode, filename, value in rows:
                record = self._record(mode, filename, value)
                if record is not None:
                    found[key] = record
        return found

    def _read(self, key: str) -> dict[str, Any] | None:
        # diskcache's get, less the steps that never apply to this store (pickled keys, statistics,
        # eviction), since every replay comes here; the row still goes through JSONBytesDisk.fetch.
        if type(key) is not str:
            raise TypeError("store keys are strings")
        try:
            rows = self._cache._sql(self._SELECT, (key, time.time())).fetchall()
        except (OSError, sqlite3.Error) as exc:
            raise self._unreadable(exc) from exc
        if not rows:
            return None
        ((mode, filename, value),) = rows
        return self._record(mode, filename, value)

    def _record(self, mode: int, filename: str | None, value: Any) -> dict[str, Any] | None:
        try:
            raw = self._cache._disk.fetch(mode, filename, value, False)
        except UnsafeRow:
            return None
        except OSError:
            return None  # its file went with a clear in another process: diskcache's get misses too
        return decode_record(raw)

    def _unreadable(self, exc: BaseException) -> StoreError:
        if _is_damage(exc):
            return damaged(self.directory / "cache.db", exc)
        return StoreError(f"cannot read the cache at {self.directory}: {exc}",
                          hint="pass --cache-dir to use another directory, or move this one aside")

    # -- writing -----------------------------------------------------------------------------
    def put(self, key: str, value: Any, *, kind: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store a successful result and return its record (with its digest)."""
        record = new_record(value, kind=kind, meta=meta)
        data = encode_record(record)
        try:
            with self._cache.transact():
                previous = self._read(key)
                if previous is not None and previous.get("digest") != record["digest"]:
                    old = json.dumps(previous, ensure_ascii=False).encode("utf-8")
                    self._cache.set(f"{key}@{previous['digest']}", old, tag=kind)
                self._cache.set(key, data, tag=kind)
        except (OSError, sqlite3.Error) as exc:
            if _is_damage(exc):
                raise damaged(self.directory / "cache.db", exc) from exc
            raise StoreError(
                f"cannot write to the cache at {self.directory}: {exc}",
                hint="check free disk space and permissions, or pass --cache-dir; the run stopped before paying for more",
            ) from exc
        self._still_there()
        return record

    # -- moving results between stores ---------------------------------------------------------
    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every readable ``(key, record)``, pinned old versions (``KEY@DIGEST``) included, oldest first.

        Pickled keys and rows, and rows that are not records, are skipped, as a read skips them."""
        try:
            keys = [key for (key,) in self._cache._sql("SELECT key FROM Cache WHERE raw = 1 ORDER BY rowid").fetchall()]
        except (OSError, sqlite3.Error) as exc:
            raise self._unreadable(exc) from exc
        for key in keys:
            if not isinstance(key, str):
                continue
            record = self._read(key)
            if record is not None:
                yield key, record

    def put_record(self, key: str, record: dict[str, Any], *, overwrite: bool = False) -> str:
        """Store a record exported from another store as it is (its digest, time and costs kept).

        Returns :func:`import_outcome`'s word. A different value already here stays unless
        ``overwrite``, and then it is still kept under ``KEY@DIGEST``, as :meth:`put` keeps it."""
        data = encode_record(record)
        try:
            with self._cache.transact():
                previous = self._read(key)
                outcome = import_outcome(previous, record, overwrite)
                if outcome == "replaced":
                    old = json.dumps(previous, ensure_ascii=False).encode("utf-8")
                    self._cache.set(f"{key}@{previous['digest']}", old, tag=previous.get("kind") or record["kind"])
                if outcome in ("added", "replaced"):
                    self._cache.set(key, data, tag=record["kind"])
        except (OSError, sqlite3.Error) as exc:
            if _is_damage(exc):
                raise damaged(self.directory / "cache.db", exc) from exc
            raise StoreError(f"cannot write to the cache at {self.directory}: {exc}",
                             hint="check free disk space and permissions, or pass --cache-dir") from exc
        self._still_there()
        return outcome

    # -- housekeeping ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self.read_stats(self.directory)

    @staticmethod
    def read_stats(directory: str | Path) -> dict[str, Any]:
        """Entries and bytes per kind, read from diskcache's own table without opening it for writing,
        so it works on a full, read-only or half-broken cache directory."""
        directory = Path(directory)
        kinds: dict[str, dict[str, int]] = {}
        db = directory / "cache.db"
        rows: list[tuple] = []
        if db.exists():
            try:
                from agent.journal import _open_read_only

                conn = _open_read_only(db)
                try:
                    rows = conn.execute(
                        "SELECT tag, COUNT(*), SUM(CASE WHEN filename IS NULL THEN length(value) ELSE size END)"
                        " FROM Cache GROUP BY tag"
                    ).fetchall()
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                if _is_damage(exc):
                    raise damaged(db, exc) from exc
                raise StoreError(f"cannot read the cache at {directory}: {exc}",
                                 hint="check the directory's permissions, or pass --cache-dir") from exc
        for tag, count, size in rows:
            kinds[str(tag or "other")] = {"entries": int(count), "bytes": int(size or 0)}
        return {
            "directory": str(directory),
            "entries": sum(k["entries"] for k in kinds.values()),
            "bytes": sum(k["bytes"] for k in kinds.values()),
            "kinds": kinds,
        }

    def clear(self, kind: str | None = None) -> int:
        """Remove every entry, or those of one kind; returns how many were removed."""
        if kind is None:
            return self._cache.clear()
        return self._cache.evict(kind)

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
