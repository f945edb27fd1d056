"""Opening, resuming and closing runs: the glue between a workflow, the store and the journal."""

from __future__ import annotations

import datetime as _dt
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from agent.errors import UsageError
from agent.journal import Journal, totals
from agent.keys import content_hash
from agent.steps import Runtime, StepSpec
from agent.store import Store

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_run_id() -> str:
    """A sortable, readable id such as ``20261122-094500-3fa2``."""
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise UsageError(f"run id {run_id!r} is not valid",
                         hint="use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return run_id


@dataclass
class Workspace:
    """The cache directory: a store and a journal side by side."""

    directory: Path
    store: Store
    journal: Journal

    @classmethod
    def open(cls, directory: str | Path) -> "Workspace":
        directory = Path(directory)
        return cls(directory, Store(directory), Journal(directory))

    def start(
        self,
        run_id: str,
        *,
        question: str,
        inputs: dict[str, Any],
        config: dict[str, Any],
        gate: Callable[[StepSpec], Awaitable[None]] | None = None,
    ) -> Runtime:
        """Open (or reopen) run ``run_id`` and return a runtime pinned to what it already completed."""
        check_run_id(run_id)
        attempt = self.journal.start_run(run_id, question=question, inputs=inputs, config=config,
                                         fingerprint=content_hash(inputs))
        pins = self.journal.pins(run_id) if attempt > 1 else {}
        return Runtime(self.store, self.journal, run_id=run_id, attempt=attempt, pins=pins, gate=gate)

    def summary(self, run_id: str) -> dict[str, Any]:
        """What ``research show`` prints: the run, its steps and totals."""
        run = self.journal.get_run(run_id)
        steps = self.journal.steps(run_id)
        return {
            "run_id": run_id,
            "status": run["status"],
            "question": run["question"],
            "report_path": run["report_path"],
            "started_at": _iso(run["started_at"]),
            "finished_at": _iso(run["finished_at"]),
            "attempts": run["attempts"],
            "error": run["error"],
            "models": run["inputs"].get("models", []),
            "steps": steps,
            "totals": totals(steps),
        }

    def close(self) -> None:
        self.store.close()
        self.journal.close()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).isoformat(timespec="seconds")
