"""How close concurrent model calls come to the ideal, through the real SDK and the durable runtime.

    python bench/bench_concurrency.py [--calls 40] [--latency 0.2] [--concurrency 4 8]

A loopback OpenAI-style server (the test suite's fake) answers every chat completion after LATENCY
seconds. CALLS independent requests go through ``openai:`` (the official async SDK), the shared retry
and concurrency policy and :class:`agent.steps.Runtime` over a fresh temporary store, CONCURRENCY at a
time. With perfect overlap that takes ``ceil(CALLS / CONCURRENCY) * LATENCY``; the script prints the
measured time, that ideal, and their ratio (the target is 1.3 or less), then replays the same calls
from the store to show they cost no requests.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the loopback fake lives with the tests

from agent.config import Limits  # noqa: E402
from agent.llm import CompletionRequest, complete  # noqa: E402
from agent.providers import get_provider  # noqa: E402
from agent.steps import Runtime  # noqa: E402
from agent.store import Store  # noqa: E402
from tests.servers import serve  # noqa: E402
from tests.servers.openai_api import OpenAIAPI  # noqa: E402


async def one_round(store: Store, calls: int, concurrency: int, tag: str) -> tuple[float, int]:
    """Seconds for ``calls`` durable calls at ``concurrency``, and how many of them were replayed."""
    provider = get_provider("openai:gpt-4o-mini", limits=Limits(concurrency=concurrency, timeout_s=30))
    runtime = Runtime(store)
    try:
        # One call first, outside the timing: the SDK's client setup is paid once per process, not per call.
        await provider.call(CompletionRequest(prompt=f"warm up {tag}"))
        requests = [CompletionRequest(prompt=f"[{tag}] question {i}: what do the sources say?") for i in range(calls)]
        started = time.perf_counter()
        results = await asyncio.gather(*(complete(runtime, provider, r, name=f"q{i}") for i, r in enumerate(requests)))
        elapsed = time.perf_counter() - started
    finally:
        await provider.aclose()
    return elapsed, sum(1 for _, result in results if result.replayed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8])
    args = parser.parse_args()

    fake = OpenAIAPI(latency=args.latency)
    with serve(fake) as server, tempfile.TemporaryDirectory() as tmp:
        os.environ["OPENAI_API_KEY"] = "bench-key-not-secret"
        os.environ["OPENAI_BASE_URL"] = f"{server.url}/v1"
        print(f"{args.calls} calls, server latency {args.latency:g}s, openai SDK -> policy -> durable step")
        for concurrency in args.concurrency:
            with Store(Path(tmp) / f"c{concurrency}") as store:
                ideal = math.ceil(args.calls / concurrency) * args.latency
                sent = len(server.requests)
                elapsed, replayed = asyncio.run(one_round(store, args.calls, concurrency, f"c{concurrency}"))
                paid = len(server.requests) - sent - 1
                print(f"concurrency {concurrency:>2}: {elapsed:6.3f}s  ideal {ideal:6.3f}s  ratio {elapsed / ideal:5.2f}"
                      f"  ({paid} requests, {replayed} replayed)")
                sent = len(server.requests)
                again, replayed = asyncio.run(one_round(store, args.calls, concurrency, f"c{concurrency}"))
                paid = len(server.requests) - sent - 1
                print(f"  replayed from the store: {again:6.3f}s  ({paid} requests, {replayed} replayed)")


if __name__ == "__main__":
    main()
