"""Replay cost per step and paid-step overhead, local directory against PostgreSQL, on one 2,000-step run.

    python bench/bench_storage.py [--steps 2000] [--repeat 5] [--store postgresql://...]

For each backend, a journaled run pays for STEPS model steps whose work returns at once (about 1 KB of
JSON each, like a summary), so what is timed is the storage around a paid step: the lookup that
misses, the step's claim, the stored result, the journal event that commits at once and the claim's
release. Then new runs replay all of them through the durable runtime (key hash, lookup, JSON decode,
deferred journal event), best of REPEAT rounds. Without ``--store`` a PostgreSQL server is started in a
temp dir with its default durability (fsync on, synchronous commit) and reached over loopback TCP, as
the test suite does (``tests/test_postgres.py``), and over its unix socket for comparison; the
target is replay within 1 ms per step over loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.llm import CompletionRequest, llm_spec  # noqa: E402
from agent.providers import get_provider  # noqa: E402
from agent.runs import Workspace  # noqa: E402
from agent.steps import Paid, StepSpec  # noqa: E402

VALUE = {"text": "A summary sentence of moderate length. " * 25, "usage": {"input_tokens": 900, "output_tokens": 180},
         "model": "m", "finish_reason": "stop"}


def measure(location: str, specs: list[StepSpec], repeat: int) -> tuple[float, float]:
    """Seconds per paid step and per replayed step (best round) on the store at ``location``."""
    ws = Workspace.open(location)
    try:
        async def work() -> Paid:
            return Paid(VALUE, input_tokens=900, output_tokens=180, cost_usd=0.0004)

        async def pay() -> float:
            runtime = ws.start(f"fill-{secrets.token_hex(3)}", question="q", inputs={"fill": True}, config={})
            start = time.perf_counter()
            for spec in specs:
                result = await runtime.step(spec, work)
                assert not result.replayed
            return time.perf_counter() - start

        paid = asyncio.run(pay())

        async def never() -> Paid:
            raise AssertionError("a cached step was executed")

        def replay_round(n: int) -> float:
            runtime = ws.start(f"replay-{n}-{secrets.token_hex(3)}", question="q", inputs={"n": n}, config={})

            async def go() -> float:
                start = time.perf_counter()
                for spec in specs:
                    # a fresh spec, so the key is hashed again, as a real run does
                    spec = StepSpec(spec.kind, spec.name, spec.provider, spec.endpoint, spec.model, spec.request)
                    assert (await runtime.step(spec, never)).replayed
                ws.journal.flush()  # the deferred replay events are part of the cost
                return time.perf_counter() - start

            return asyncio.run(go())

        replay = min(replay_round(n) for n in range(repeat))
    finally:
        ws.close()
    return paid / len(specs), replay / len(specs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", help="a postgresql:// URL to use instead of a server started here")
    args = parser.parse_args()
    provider = get_provider("local:extractive")
    # One prefix per invocation, so a --store given twice pays again instead of replaying the last bench.
    tag = secrets.token_hex(4)
    specs = [llm_spec(provider, CompletionRequest(prompt=f"[{tag}] Summarize source {i}: " + "lorem ipsum " * 40), f"s{i}")
             for i in range(args.steps)]

    server = None
    url = args.store
    if url is None:
        from tests.test_postgres import PostgresServer

        server = PostgresServer(durable=True)
        why = server.start()
        if why is not None:
            sys.exit(f"cannot start PostgreSQL: {why}")
        url = server.create_database("bench")
        server.create_database("bench_socket")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = measure(str(Path(tmp) / "cache"), specs, args.repeat)
        shared = measure(url, specs, args.repeat)
        socket = measure(server.socket_url("bench_socket"), specs, args.repeat) if server is not None else None
    finally:
        if server is not None:
            from agent.backends.postgres import close_all

            close_all()
            server.stop()

    print(f"steps: {args.steps}, replay best of {args.repeat} rounds")
    print(f"{'backend':<34} {'paid step':>12} {'replayed step':>15}")
    print(f"{'local (diskcache + SQLite)':<34} {local[0] * 1e6:9.0f} us {local[1] * 1e6:12.0f} us")
    print(f"{'PostgreSQL (loopback TCP)':<34} {shared[0] * 1e6:9.0f} us {shared[1] * 1e6:12.0f} us")
    if socket is not None:
        print(f"{'PostgreSQL (unix socket)':<34} {socket[0] * 1e6:9.0f} us {socket[1] * 1e6:12.0f} us")
    print(f"ratio PostgreSQL / local:          {shared[0] / local[0]:9.1f}x {shared[1] / local[1]:12.1f}x")
    print(f"replay target (1 ms per step): {'met' if shared[1] < 1e-3 else 'MISSED'}")


if __name__ == "__main__":
    main()
