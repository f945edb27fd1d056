"""A ``@durable`` cache hit next to the floor: a raw diskcache get and ``json.loads`` of the same bytes.

    python bench/bench_durable.py [--calls 1000] [--repeat 60]

Works in a temp dir, decorates ``classify(title, labels)`` (its result about 2 KB of JSON), pays for
CALLS distinct calls once, then times, in the same process and rounds:

- ``@durable hit``: calling ``classify`` again with each of those arguments (every call replays), on
  the default store (``./cache``, no variable set), and again with ``RESEARCH_CACHE_DIR`` naming the
  same directory (an absolute path: the working directory need not be read);
- ``floor``: ``diskcache.Cache.get`` plus ``json.loads`` of the same stored bytes from a stock cache;
- its parts: resolving the default runtime (``default_runtime()``), the arguments' key
  (``classify.step_key``), and the store's read of the record (``store.get``).

The rounds take turns, REPEAT times; it prints the best round of each, per call, and its ratio to the
floor (the target is a hit at most 2x the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import diskcache


def best_per_call(rounds: dict[str, Callable[[], None]], repeat: int, calls: int) -> dict[str, float]:
    """Best seconds per call of each round over ``repeat`` passes; each pass runs every round once, in
    turn, so a burst of load elsewhere on the machine falls on all of them alike."""
    best = {label: float("inf") for label in rounds}
    for _ in range(repeat):
        for label, round_ in rounds.items():
            start = time.perf_counter()
            round_()
            best[label] = min(best[label], time.perf_counter() - start)
    return {label: seconds / calls for label, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("RESEARCH_STORE", None)
        os.environ.pop("RESEARCH_CACHE_DIR", None)
        os.chdir(tmp)
        from agent import durable
        from agent.durable_steps import default_runtime

        @durable(name="bench.classify")
        def classify(title: str, labels: list[str]) -> dict[str, Any]:
            return {"title": title, "label": labels[0], "why": "A reason of moderate length. " * 65}

        labels = ["economy", "science", "politics", "sport"]
        titles = [f"Harbour traffic rose in quarter {i}" for i in range(args.calls)]
        for title in titles:
            classify(title, labels)
        keys = [classify.step_key(title, labels) for title in titles]
        store = default_runtime().store
        raw = diskcache.Cache(str(Path(tmp) / "raw"))
        for key in keys:
            raw.set(key, store._cache.get(key))
        size = len(raw.get(keys[0]))

        def hits() -> None:
            os.environ.pop("RESEARCH_CACHE_DIR", None)
            for title in titles:
                classify(title, labels)

        def hits_variable() -> None:
            os.environ["RESEARCH_CACHE_DIR"] = str(Path(tmp, "cache").resolve())
            for title in titles:
                classify(title, labels)
            os.environ.pop("RESEARCH_CACHE_DIR")

        def floor() -> None:
            for key in keys:
                json.loads(raw.get(key))

        def runtimes() -> None:
            for _ in titles:
                default_runtime()

        def step_keys() -> None:
            for title in titles:
                classify.step_key(title, labels)

        def reads() -> None:
            for key in keys:
                store.get(key)

        rounds = {
            "@durable hit (./cache)": hits,
            "@durable hit (RESEARCH_CACHE_DIR)": hits_variable,
            "floor: diskcache get + json.loads": floor,
            "  default_runtime()": runtimes,
            "  step_key (arguments to key)": step_keys,
            "  store.get (read and decode)": reads,
        }
        figures = best_per_call(rounds, args.repeat, args.calls)
        raw.close()
        os.chdir(cwd)

    base = figures["floor: diskcache get + json.loads"]
    print(f"calls: {args.calls}, best of {args.repeat} rounds, stored record {size} bytes")
    print(f"{'':<36} {'us/call':>8} {'x floor':>8}")
    for label, seconds in figures.items():
        print(f"{label:<36} {seconds * 1e6:8.1f} {seconds / base:7.2f}x")
    print("target: @durable hit at most 2.00x the floor")


if __name__ == "__main__":
    main()
