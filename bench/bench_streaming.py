"""One page that hangs must delay only itself: a research run over 50 loopback pages, one of which never
answers, against the ideal.

    python bench/bench_streaming.py [--pages 50] [--page-latency 0.1] [--model-latency 0.05] [--timeout 2]

The loopback site answers each good page after PAGE_LATENCY seconds; one page never answers, so the
built-in fetcher gives up on it after two attempts of TIMEOUT seconds. The offline model waits
MODEL_LATENCY per call. Summaries start as each page is read, so a run with the hung page should take
no longer than the slower of: the same run without it, and the hung page's own time (the analysis
waits for every read to end). The script runs both as real processes and prints the ratio of the run
with the hung page to that floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the loopback site lives with the tests

from tests.servers import Reply, serve  # noqa: E402
from tests.servers.website import Site, html  # noqa: E402


def page(i: int) -> Reply:
    body = (f"<html><head><title>Field report {i}</title></head><body><article><h1>Field report {i}</h1>"
            f"<p>Heat pump {i} kept a seasonal efficiency of {2 + i % 10 / 10:.1f} through a cold winter in "
            f"region {i % 7}; careful commissioning mattered more than the outdoor temperature.</p>"
            f"<p>The installers of unit {i} recorded running costs below those of the oil boiler it replaced.</p>"
            "</article></body></html>")
    return html(body)


def research(urls: list[str], tmp: Path, args: argparse.Namespace, tag: str) -> tuple[float, dict]:
    """Wall seconds of a real ``research run`` over ``urls``, and its steps as ``show --json`` lists them."""
    listing = tmp / f"{tag}.txt"
    listing.write_text("\n".join(urls) + "\n")
    env = {**os.environ, "RESEARCH_LOCAL_LATENCY": str(args.model_latency),
           "RESEARCH_FETCH_TIMEOUT": str(args.timeout), "RESEARCH_CACHE_DIR": str(tmp / f"cache-{tag}")}
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "agent", "run", "Do heat pumps work in cold climates?",
                          "--urls-file", str(listing), "--out", str(tmp / "reports"), "--run-id", tag,
                          "--concurrency", "8", "--quiet"], env=env, cwd=tmp, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if run.returncode not in (0, 3):
        raise SystemExit(f"the run failed: {run.stderr}")
    shown = subprocess.run([sys.executable, "-m", "agent", "show", tag, "--json"], env=env, cwd=tmp,
                           capture_output=True, text=True, check=True)
    return wall, json.loads(shown.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--page-latency", type=float, default=0.1)
    parser.add_argument("--model-latency", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()

    pages = {}
    for i in range(1, args.pages):
        reply = page(i)
        reply.delay = args.page_latency
        pages[f"/p{i}"] = reply
    pages["/hung"] = Reply(200, "never", delay=3600.0)
    with serve(Site(pages)) as server, tempfile.TemporaryDirectory() as tmp:
        good = [f"{server.url}/p{i}" for i in range(1, args.pages)]
        calm, _ = research(good, Path(tmp), args, "calm")
        # The hung page comes first: the worst place for a run that waited for every read before summarizing.
        hung, shown = research([f"{server.url}/hung"] + good, Path(tmp), args, "hung")
    own = next(s["duration_s"] for s in shown["steps"] if s["name"].endswith("/hung"))
    floor = max(calm, own)
    print(f"{args.pages - 1} good pages in {calm:.2f} s (process start included)")
    print(f"with one page that hangs: {hung:.2f} s; the hung page alone took {own:.2f} s "
          f"(two attempts of {args.timeout:g} s and a backoff)")
    print(f"floor max({calm:.2f}, {own:.2f}) = {floor:.2f} s; ratio {hung / floor:.2f}; "
          f"{shown['totals']['paid']} steps paid, {shown['totals']['failed']} failed")


if __name__ == "__main__":
    main()
