"""Stopping a run from a signal without tearing its event loop apart.

A Python signal handler runs between two bytecodes of the main thread, wherever it is: inside one of
the run's tasks, inside a callback of the loop, or between the loop taking a task's next step off its
queue and running it. An exception raised there lands in that task alone; every task awaiting it
raises it again out of the loop, and the loop is closed with the run's other tasks still pending
("Task was destroyed but it is pending!", coroutines never awaited, their ``finally`` run in another
context). So a signal during a run only asks the loop to cancel the run's main task
(:func:`cancel_running`); the run then unwinds through its own handlers (journaled as interrupted,
nothing half-done left running) and :func:`run` ends with ``CancelledError``.
"""

from __future__ import annotations

from typing import Any, Coroutine

#: (loop, main task) of each run in progress in this process, innermost last.
_active: list[tuple[Any, Any]] = []


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run(coro)``, which :func:`cancel_running` can stop from a signal handler."""
    import asyncio

    async def main() -> Any:
        _active.append((asyncio.get_running_loop(), asyncio.current_task()))
        try:
            return await coro
        finally:
            _active.pop()

    return asyncio.run(main())


def cancel_running() -> bool:
    """Ask the loop of the run in progress to cancel its main task; False when no run is in progress.

    Safe from a signal handler: the cancellation is queued with ``call_soon_threadsafe`` and carried
    out by the loop itself, between two of its callbacks."""
    if not _active:
        return False
    loop, task = _active[-1]
    if loop.is_closed() or task.done():
        return False
    loop.call_soon_threadsafe(task.cancel)
    return True
