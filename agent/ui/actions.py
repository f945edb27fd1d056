"""What the web view's buttons do: approve or reject a wait, and continue an approved run elsewhere.

A decision is recorded exactly as ``research approve``/``reject`` record it (``agent.cli._decide``, the
journal's ``decide()``), which refuses a run that is not waiting: a double click or a second tab gets
that refusal, never a second continuation. An approved run is continued by ``python -m agent resume``
in a detached process of its own, so this server never holds the run (its lease belongs to that
process, which the lease also keeps from being doubled), and stopping the server does not stop it.
"""

from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.secrets import redact

#: The longest note kept with a decision (it reaches the next stage's prompt).
MAX_NOTE = 4000


def decide(run_id: str, decision: str, note: str | None, store: str | None) -> None:
    """Record ``decision`` (approved, rejected) as the CLI does; :class:`UsageError` if the run is not waiting."""
    from agent.cli import _decide

    _decide(run_id, decision, note, store)


def store_flags(store: str | None, *, shown: bool = False) -> list[str]:
    """The flags that name ``store`` to another ``research`` command: none for the default store,
    ``--cache-dir DIR`` or ``--store URL`` (``shown``: the URL without its password, for a page)."""
    if not store:
        return []
    from agent.storage import locate

    where = locate(store)
    if where.backend == "local":
        return ["--cache-dir", store]
    return ["--store", str(where) if shown else store]


@dataclass
class Continuation:
    """One background ``research resume`` this server started."""

    run_id: str
    pid: int
    log: Path
    started: float
    returncode: int | None = None

    def said(self) -> str:
        """The last line the process wrote, secrets taken out (its errors are one line)."""
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return redact(lines[-1][:500]) if lines else ""


class Continuations:
    """The continuations this server started, by run, with where each one's output goes."""

    def __init__(self, *, store: str | None, config: str | None) -> None:
        self.store, self.config = store, config
        self._dir = Path(tempfile.mkdtemp(prefix="research-ui-"))
        atexit.register(shutil.rmtree, self._dir, True)
        self._lock = threading.Lock()
        self._by_run: dict[str, Continuation] = {}

    def command(self, run_id: str) -> list[str]:
        command = [sys.executable, "-m", "agent", "resume", run_id, "--quiet", *store_flags(self.store)]
        if self.config:
            command += ["--config", self.config]
        return command

    def start(self, run_id: str) -> Continuation:
        """Start ``research resume RUN_ID`` detached (its own session, no terminal, output to a file)."""
        log = self._dir / f"{re.sub(r'[^A-Za-z0-9._-]', '_', run_id)}-{time.time_ns()}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(self.command(run_id), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        continuation = Continuation(run_id, proc.pid, log, time.time())
        with self._lock:
            self._by_run[run_id] = continuation
        # Reaped here so it leaves no zombie (a zombie's pid still looks alive to the run's lease check).
        threading.Thread(target=self._reap, args=(proc, continuation), name=f"reap {proc.pid}", daemon=True).start()
        return continuation

    @staticmethod
    def _reap(proc: subprocess.Popen, continuation: Continuation) -> None:
        continuation.returncode = proc.wait()

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            continuation = self._by_run.get(run_id)
        if continuation is None:
            return None
        return {"pid": continuation.pid, "running": continuation.returncode is None,
                "returncode": continuation.returncode, "said": continuation.said(),
                "started": continuation.started}
