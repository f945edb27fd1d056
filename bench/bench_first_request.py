"""How soon a cold run's first model request leaves, after its first source is ready.

    python bench/bench_first_request.py [--files 40] [--latency 0.5] [--concurrency 20] [--repeat 3]
                                        [--web SECONDS] [--root OTHER_CHECKOUT ...]

Each round runs ``research run`` in a fresh process, as a user would, over FILES local Markdown files
with one ``openai:`` model pointed at the test suite's loopback OpenAI fake (LATENCY seconds an answer),
a new question each time (so paying is certain) and an empty cache. With ``--web SECONDS`` the same
texts are web pages on a loopback site instead, each answering after SECONDS (as real pages take their
time). It reports, from process start:

- ``first source``: when the first source's read step was journaled (the first text ready to summarize);
- ``first request``: when the fake received the first chat completion;
- ``gap``: the two apart (the target is 0.5 s or less);
- ``total``: the whole run, next to the ideal (the waves of summaries, one analysis, one report).

``--root`` runs the same rounds from other checkouts of the project too (an older commit, say), side
by side in one session, so the figures compare on one machine under one load.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the loopback fake lives with the tests

from tests.servers import serve  # noqa: E402
from tests.servers.openai_api import OpenAIAPI  # noqa: E402
from tests.servers.website import Site, html, page  # noqa: E402

PARAGRAPH = ("The harbour authority reported that container traffic rose {n} percent in the quarter, "
             "while the average wait for a berth fell to {d} hours after the new cranes entered service. ")


class Timed:
    """The fake, noting when each request arrived."""

    def __init__(self, latency: float) -> None:
        self.api = OpenAIAPI(latency=latency)
        self.arrivals: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, request):  # noqa: ANN001 - the server's request type
        with self.lock:
            self.arrivals.append(time.time())
        return self.api(request)


def write_sources(directory: Path, count: int) -> None:
    directory.mkdir(parents=True)
    for i in range(count):
        text = "".join(PARAGRAPH.format(n=i + k, d=(i * 7 + k) % 40) for k in range(12))
        (directory / f"source-{i:03d}.md").write_text(f"# Harbour note {i}\n\n{text}\n", encoding="utf-8")


def one_round(root: Path, sources: Path, latency: float, concurrency: int, tag: str,
              site_url: str | None = None) -> dict[str, float]:
    timed = Timed(latency)
    if site_url is None:
        given = ["--file", str(sources)]
    else:
        given = [a for p in sorted(sources.iterdir()) for a in ("--url", f"{site_url}/{p.stem}")]
    with serve(timed) as server, tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update(OPENAI_API_KEY="bench-key", OPENAI_BASE_URL=f"{server.url}/v1", RESEARCH_CACHE_DIR=str(cache),
                   PYTHONPATH=str(root))
        question = f"How did the harbour's traffic change? ({tag})"
        started = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "agent", "run", question, *given, "--model", "openai:gpt-4o-mini",
             "--concurrency", str(concurrency), "--out", str(Path(tmp) / "out"), "--quiet", "--no-check-claims"],
            env=env, cwd=str(root), capture_output=True, text=True, timeout=600)
        ended = time.time()
        if done.returncode != 0:
            raise SystemExit(f"{root}: the run failed: {done.stderr.strip()[-400:]}")
        with sqlite3.connect(cache / "journal.sqlite3") as db:
            (first_read,) = db.execute("SELECT MIN(at) FROM events WHERE kind = 'scrape'").fetchone()
    first_request = min(timed.arrivals)
    return {"first source": first_read - started, "first request": first_request - started,
            "gap": first_request - first_read, "total": ended - started, "requests": len(timed.arrivals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--web", type=float, default=None, metavar="SECONDS",
                        help="serve the sources as web pages that each answer after SECONDS")
    parser.add_argument("--root", type=Path, action="append", default=[],
                        help="another checkout of the project to run side by side with this one")
    args = parser.parse_args()

    roots = [ROOT, *(r.resolve() for r in args.root)]
    ideal = (math.ceil(args.files / args.concurrency) + 2) * args.latency
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        sources = Path(tmp) / "sources"
        write_sources(sources, args.files)
        site_url = None
        if args.web is not None:
            site = Site({f"/{p.stem}": html(page(p.stem, *p.read_text(encoding="utf-8").split("\n\n")[1:]),
                                            delay=args.web) for p in sources.iterdir()})
            site_url = stack.enter_context(serve(site)).url
        figures: dict[Path, list[dict[str, float]]] = {root: [] for root in roots}
        for i in range(args.repeat):
            for root in roots:  # interleaved, so a change in the machine's load falls on every checkout alike
                figures[root].append(one_round(root, sources, args.latency, args.concurrency, f"{i}-{root.name}",
                                               site_url))
    print(f"{args.files} {'web pages, ' + str(args.web) + ' s each' if args.web is not None else 'files'}, latency {args.latency} s, concurrency {args.concurrency}, "
          f"{args.repeat} rounds (median, min-max); ideal model time {ideal:.2f} s")
    print(f"{'checkout':<28} {'first source':>14} {'first request':>14} {'gap':>20} {'total':>20}")
    for root, rounds in figures.items():
        def cell(name: str) -> str:
            values = [r[name] for r in rounds]
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
        print(f"{str(root)[-28:]:<28} {cell('first source'):>14} {cell('first request'):>14} {cell('gap'):>20} "
              f"{cell('total'):>20}")


if __name__ == "__main__":
    main()
