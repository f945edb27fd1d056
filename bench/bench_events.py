"""Writing a replay's step events into a journal that already holds many runs, by index.

    python bench/bench_events.py [--old 280000] [--new 10000] [--repeat 3]

Builds a journal (this checkout's ``Journal``) holding OLD events of earlier runs (10,000 steps a run,
keys spread like step keys), then copies it twice: as it is (events indexed by run and write order,
``events_run_order``) and with the index the journal had before (by run and step key, ``events_run``).
In each copy, taking turns REPEAT times, a new run journals NEW replayed steps the way a replay does
(``Journal.record(..., defer=True)``, 256 to a transaction), then the run's steps are read back as
``research show`` reads them (``Journal.iter_steps``). Prints the best of each, per event and in all.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.journal import EVENT_FIELDS, Journal  # noqa: E402


def event(i: int, run: str) -> dict:
    key = "v1:llm:" + hashlib.sha256(f"{run}/{i}".encode()).hexdigest()
    return {"key": key, "kind": "llm", "name": f"summarize source {i}", "provider": "local", "model": "extractive",
            "status": "completed", "replayed": 1, "digest": "d" * 64, "input_tokens": 2000, "output_tokens": 60,
            "cost_usd": 0.0, "saved_usd": 0.0, "duration_s": 0.00004, "error": None, "detail": None}


def build(directory: Path, old: int) -> None:
    Journal(directory).close()  # the current schema
    conn = sqlite3.connect(directory / "journal.sqlite3")
    columns = ", ".join(["run_id", "attempt", *EVENT_FIELDS, "at"])
    sql = f"INSERT INTO events ({columns}) VALUES ({', '.join('?' * (len(EVENT_FIELDS) + 3))})"
    with conn:
        for start in range(0, old, 10_000):
            run = f"night-{start // 10_000}"
            conn.executemany(sql, [(run, 1, *map(event(i, run).get, EVENT_FIELDS), time.time())
                                   for i in range(start, min(old, start + 10_000))])
    conn.close()


def replay(directory: Path, run: str, new: int) -> tuple[float, float]:
    journal = Journal(directory)
    try:
        events = [event(i, "today") for i in range(new)]
        started = time.perf_counter()
        for item in events:
            journal.record(run, 1, item, defer=True)
        journal.flush()
        written = time.perf_counter() - started
        started = time.perf_counter()
        steps = sum(1 for _ in journal.iter_steps(run))
        read = time.perf_counter() - started
        assert steps == new, steps
        return written, read
    finally:
        journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=int, default=280_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        build(base, args.old)
        variants = {"by run, in order (events_run_order)": None,
                    "by run and key (events_run, before)": ("DROP INDEX events_run_order",
                                                            "CREATE INDEX events_run ON events (run_id, key)")}
        best: dict[str, tuple[float, float]] = {}
        for round_ in range(args.repeat):
            for number, (label, change) in enumerate(variants.items()):
                copy = Path(tmp) / f"copy-{round_}-{number}"
                shutil.copytree(base, copy)
                if change:
                    conn = sqlite3.connect(copy / "journal.sqlite3")
                    for statement in change:
                        conn.execute(statement)
                    conn.commit()
                    conn.close()
                written, read = replay(copy, f"today-{round_}", args.new)
                previous = best.get(label, (float("inf"), float("inf")))
                best[label] = (min(previous[0], written), min(previous[1], read))
                shutil.rmtree(copy)
    print(f"{args.new} replayed events journaled beside {args.old} earlier ones, best of {args.repeat}")
    print(f"{'index':<40} {'us/event':>9} {'written':>9} {'steps read':>11}")
    for label, (written, read) in best.items():
        print(f"{label:<40} {written / args.new * 1e6:>9.1f} {written:>8.2f}s {read:>10.3f}s")


if __name__ == "__main__":
    main()
