"""The terminal progress display: one bar per stage, shown only on a terminal (stderr)."""

from __future__ import annotations

from typing import Any


class RichProgress:
    """Stages and counts with rich; a context manager the pipeline reports to."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._failed: dict[str, int] = {}
        self._counts = {"paid": 0, "replayed": 0, "failed": 0}
        self._steps = self._progress.add_task("steps", total=None, failed="")

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def stage(self, name: str, total: int) -> None:
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=total, failed="")
        else:
            self._progress.update(self._tasks[name], total=total)

    def on_step(self, event: str, spec: Any, result: Any, exc: Any) -> None:
        """A runtime listener: running counts of paid, replayed and failed steps."""
        self._counts[event] = self._counts.get(event, 0) + 1
        c = self._counts
        self._progress.update(self._steps, failed=f"{c['paid']} paid, {c['replayed']} replayed, {c['failed']} failed")

    def advance(self, name: str, outcome: str) -> None:
        if outcome == "failed":
            self._failed[name] = self._failed.get(name, 0) + 1
            self._progress.update(self._tasks[name], failed=f"{self._failed[name]} failed")
        self._progress.advance(self._tasks[name])
