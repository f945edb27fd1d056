"""Opening, resuming and closing runs: the glue between a workflow, the store and the journal (whichever
backend ``agent.storage`` opened)."""

from __future__ import annotations

import datetime as _dt
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from agent.errors import UsageError
from agent.journal import LEASE_SECONDS, holder_id, totals
from agent.keys import content_hash
from agent.steps import Runtime, StepSpec
from agent.storage import Location, ResultStore, RunJournal, locate, open_storage

# '@' and ':' let a scheduled report's run id name its slot: ``nightly@2026-11-23T06:00Z``.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,95}$")


def new_run_id() -> str:
    """A sortable, readable id such as ``20261122-094500-3fa2``."""
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise UsageError(f"run id {run_id!r} is not valid",
                         hint="use up to 96 letters, digits, '.', '_', '-', '@', ':' or '+', starting with a letter or digit")
    return run_id


@dataclass
class Workspace:
    """A store and a journal side by side: a cache directory, or a shared database."""

    location: Location
    store: ResultStore
    journal: RunJournal
    leases: dict[str, "Lease"] = field(default_factory=dict)

    @classmethod
    def open(cls, location: str | Path | Location | None = None) -> "Workspace":
        """The store and journal ``location`` names (a directory or a ``postgresql://`` URL; by default
        ``RESEARCH_STORE``, else the cache directory), made by :func:`agent.storage.open_storage`."""
        where = locate(location)
        store, journal = open_storage(where)
        return cls(where, store, journal)  # type: ignore[arg-type]

    @classmethod
    def for_reading(cls, location: str | Path | Location | None = None) -> "Workspace":
        """The journal alone, opened read-only if need be: what ``runs``, ``show`` and ``report list``
        need, and all that works on a full or read-only cache directory."""
        where = locate(location)
        _, journal = open_storage(where, reading=True)
        return cls(where, None, journal)  # type: ignore[arg-type]

    def start(
        self,
        run_id: str,
        *,
        question: str,
        inputs: dict[str, Any],
        config: dict[str, Any],
        gate: Callable[[StepSpec], Awaitable[None]] | None = None,
        pipeline: str = "research",
        pipeline_version: int = 1,
        report: str | None = None,
        slot: float | None = None,
    ) -> Runtime:
        """Open (or reopen) run ``run_id``, take its lease, and return a runtime pinned to what it completed.

        The lease (in :attr:`leases`) is renewed by a heartbeat until it is released or the workspace
        closes; a second process asking for the same run meanwhile gets :class:`~agent.journal.RunBusy`.
        """
        check_run_id(run_id)
        holder = f"{holder_id()}:{secrets.token_hex(3)}"
        attempt = self.journal.start_run(run_id, question=question, inputs=inputs, config=config,
                                         fingerprint=content_hash(inputs), pipeline=pipeline,
                                         pipeline_version=pipeline_version, report=report, slot=slot, holder=holder)
        self.leases[run_id] = Lease(self.journal, run_id, holder)
        pins = self.journal.pins(run_id) if attempt > 1 else {}
        return Runtime(self.store, self.journal, run_id=run_id, attempt=attempt, pins=pins, gate=gate, holder=holder)

    def summary(self, run_id: str, *, with_steps: bool = True) -> dict[str, Any]:
        """What ``research show`` prints: the run, its steps and totals. ``with_steps=False`` leaves
        ``steps`` and ``totals`` None, for a caller that streams the steps from ``journal.iter_steps`` (a
        run of thousands) and totals them as it goes (:class:`agent.journal.Totals`)."""
        run = self.journal.get_run(run_id)
        steps = self.journal.steps(run_id) if with_steps else None
        return {
            "run_id": run_id,
            "status": run["status"],
            "question": run["question"],
            "report_path": run["report_path"],
            "started_at": _iso(run["started_at"]),
            "finished_at": _iso(run["finished_at"]),
            "attempts": run["attempts"],
            "error": run["error"],
            "pipeline": run["pipeline"],
            "pipeline_version": run["pipeline_version"],
            "report": run["report"],
            "models": run["inputs"].get("models", []),
            "steps": steps,
            "totals": totals(steps) if steps is not None else None,
            "waiting": run.get("waiting"),
            "effects": [{k: v for k, v in e.items()} for e in self.journal.effects(run_id)],
            "batches": [{k: b[k] for k in ("id", "stage", "provider", "count", "status", "vendor_id", "detail")}
                        for b in self.journal.batches(run_id)],
        }

    def close(self) -> None:
        for lease in self.leases.values():
            lease.release()
        self.leases.clear()
        if self.store is not None:
            self.store.close()
        self.journal.close()


class Lease:
    """A run's lease, renewed from a daemon thread every third of :data:`~agent.journal.LEASE_SECONDS`.

    Liveness is this row, not a pid: any process on any machine sharing the journal can tell whether
    the run is still held. If a renewal finds the lease taken over (this process stalled past its
    expiry and another resumed the run), :attr:`lost` is set and the run stops paying.
    """

    def __init__(self, journal: RunJournal, run_id: str, holder: str) -> None:
        self.journal, self.run_id, self.holder = journal, run_id, holder
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease {run_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            try:
                if not self.journal.renew(self.run_id, self.holder):
                    self.lost = True
                    return
                self.journal.renew_claims(self.holder)
            except Exception:  # a journal that cannot be written: the next step's write says so
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).isoformat(timespec="seconds")
